#!/usr/bin/env bash
# Shared body of the test-mirror-concurrent-*.sh tests.
#
#   mirror-concurrent.sh CHUNK NDEST [slow]
#
# A 1 GiB source (data, holes and zeroes) is mirrored to NDEST fresh
# destinations that start out full of garbage, while fio (random writes
# of 512 B to 1 MiB, several connections) and qemu-io (unaligned writes,
# write-zeroes, discards, flushes, overlapping async writes) run against
# the source.  'slow' slows the last destination with nbdkit's rate
# filter.  After 'complete --verify' every destination must equal the
# source byte for byte.  MIRROR_PARAMS adds filter parameters.
source "$(dirname "$0")/functions.sh"
requires nbdkit --version
requires fio --version
requires qemu-io --version
requires qemu-img --version
[ -f "$HANDOFF_FILTER" ] || fail "filter not built: $HANDOFF_FILTER"
make_tmpdir

chunk=${1:?chunk size}
ndest=${2:?number of destinations}
slow=${3:-}
size=$((1 << 30))

# Source: 256 MiB of pattern data, a hole, 128 MiB of random data at the
# end, zeroes written explicitly in between.
truncate -s $size "$tmp/src.img"
make_pattern_file "$tmp/pat.img" 256M
dd if="$tmp/pat.img" of="$tmp/src.img" conv=notrunc,sparse bs=1M status=none
rm "$tmp/pat.img"
dd if=/dev/urandom of="$tmp/src.img" bs=1M seek=896 count=128 conv=notrunc \
   status=none
fallocate -z -o $((512 << 20)) -l $((64 << 20)) "$tmp/src.img"

start_nbdkit "$tmp/src.sock" --filter="$HANDOFF_FILTER" file "$tmp/src.img" \
  mirror-control="$tmp/ctl.sock" mirror-chunk-size="$chunk" ${MIRROR_PARAMS:-}

dests=()
for (( i=1; i<=ndest; i++ )); do
  truncate -s $size "$tmp/dst$i.img"
  # Garbage where the source has holes and zeroes: the copier must
  # overwrite it, not skip it.
  dd if=/dev/urandom of="$tmp/dst$i.img" bs=1M seek=300 count=32 \
     conv=notrunc status=none
  dd if=/dev/urandom of="$tmp/dst$i.img" bs=1M seek=530 count=8 \
     conv=notrunc status=none
  filters=() params=()
  if [ "$slow" = slow ] && [ $i -eq $ndest ]; then
    filters=(--filter=rate) params=(rate=1200M)  # bits per second: ~150 MB/s
  fi
  start_nbdkit "$tmp/dst$i.sock" "${filters[@]}" file "$tmp/dst$i.img" \
    "${params[@]}"
  dests+=(--to "nbd+unix:///?socket=$tmp/dst$i.sock")
done

src_uri="nbd+unix:///?socket=$tmp/src.sock"

# Writers start before the mirror, so they run across the whole copy.
fio --name=w --ioengine=nbd --uri="$src_uri" --rw=randwrite \
    --bsrange=512-1m --bs_unaligned=1 --size=$size --numjobs=3 \
    --iodepth=8 --runtime=8 --time_based --fsync=64 \
    --output="$tmp/fio.out" >"$tmp/fio.log" 2>&1 &
fio_pid=$!
cleanup_fn kill_quiet $fio_pid
"$top/tests/gen-io-script.py" $size 1500 $RANDOM > "$tmp/io.txt"
qemu-io -f raw -d unmap "$src_uri" < "$tmp/io.txt" > "$tmp/qemu-io.log" 2>&1 &
qio_pid=$!
cleanup_fn kill_quiet $qio_pid

sleep 1
handoff mirror start "$tmp/ctl.sock" "${dests[@]}"
handoff mirror status "$tmp/ctl.sock"

wait $fio_pid || { cat "$tmp/fio.log"; fail "fio failed"; }
wait $qio_pid || { tail "$tmp/qemu-io.log"; fail "qemu-io failed"; }
if grep -qiE 'error|failed' "$tmp/qemu-io.log"; then
  grep -iE 'error|failed' "$tmp/qemu-io.log" | head
  fail "qemu-io reported an error"
fi

handoff mirror status --json "$tmp/ctl.sock" > "$tmp/status.json"
jq -e '.guest_writes > 0' "$tmp/status.json" >/dev/null ||
  fail "no guest writes were seen during the mirror"
handoff mirror complete --verify "$tmp/ctl.sock"
handoff mirror status --json "$tmp/ctl.sock" > "$tmp/final.json"
jq -e '.state == "completed"' "$tmp/final.json" >/dev/null ||
  fail "state is not completed: $(cat "$tmp/final.json")"
echo "guest writes during the mirror: $(jq .guest_writes "$tmp/final.json"), mirrored: $(jq .mirrored_writes "$tmp/final.json")"

# Byte for byte, with every server stopped and flushed.
kill_pidfile "$tmp/src.sock.pid"
for (( i=1; i<=ndest; i++ )); do
  kill_pidfile "$tmp/dst$i.sock.pid"
  cmp "$tmp/src.img" "$tmp/dst$i.img" || fail "destination $i differs"
done
echo "$0: $ndest destination(s) equal the source (chunk $chunk${slow:+, slow})"
