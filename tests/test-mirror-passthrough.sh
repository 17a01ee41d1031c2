#!/usr/bin/env bash
# With no mirror running the filter is a plain disk: the same size,
# flags and extents as the plugin alone, and data written through it
# (fio with verification, qemu-io zeroes, discards, flushes, several
# connections) reads back right.
source "$(dirname "$0")/functions.sh"
requires fio --version
requires qemu-io --version
requires nbdinfo --version
make_tmpdir

truncate -s 256M "$tmp/disk.img"
dd if=/dev/urandom of="$tmp/disk.img" bs=1M count=16 seek=100 conv=notrunc \
   status=none
start_nbdkit "$tmp/plain.sock" file "$tmp/disk.img"
start_nbdkit "$tmp/f.sock" --filter="$HANDOFF_FILTER" file "$tmp/disk.img" \
  mirror-control="$tmp/ctl.sock"
uri="nbd+unix:///?socket=$tmp/f.sock"

nbdinfo --json "$uri" | jq '.exports[0] | del(."export-name") | del(."is_read_only")' > "$tmp/f.json"
nbdinfo --json "nbd+unix:///?socket=$tmp/plain.sock" |
  jq '.exports[0] | del(."export-name") | del(."is_read_only")' > "$tmp/p.json"
diff <(jq -S "del(.uri)" "$tmp/f.json") \
     <(jq -S "del(.uri)" "$tmp/p.json") ||
  fail "the filter changes what the export advertises"
jq -e '.can_trim and .can_zero and .can_flush and .can_fua and .can_multi_conn' \
  "$tmp/f.json" >/dev/null || fail "flags missing: $(cat "$tmp/f.json")"
diff <(nbdinfo --map "$uri") <(nbdinfo --map "nbd+unix:///?socket=$tmp/plain.sock") ||
  fail "extents differ"

# fio writes and verifies its own data, over 4 connections.
fio --name=v --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k \
    --size=64m --offset=0 --numjobs=4 --offset_increment=64m \
    --verify=crc32c --do_verify=1 --verify_state_save=0 --iodepth=16 --output="$tmp/fio.out" \
    >"$tmp/fio.log" 2>&1 || { cat "$tmp/fio.log"; fail "fio verify"; }

qemu-io -f raw -d unmap "$uri" \
  -c "write -P 0x5a 1000 70000" -c "read -P 0x5a 1000 70000" \
  -c "write -z 2000 1000" -c "read -P 0 2000 1000" \
  -c "discard 0 65536" -c "flush" -c "write -P 1 0 512 -f" \
  -c "read -P 1 0 512" > "$tmp/qio.log" 2>&1
if grep -qiE 'fail|error|mismatch' "$tmp/qio.log"; then
  cat "$tmp/qio.log"
  fail "qemu-io through the filter"
fi
[ "$(handoff mirror status --json "$tmp/ctl.sock" | jq -r .state)" = idle ] ||
  fail "state is not idle"
echo "$0: PASS"
