#!/usr/bin/env bash
# QEMU uses the filter's export as its disk (-blockdev driver=nbd) and
# writes through it (qemu-io over the monitor) while the disk is being
# mirrored; the destination ends equal to the source.
source "$(dirname "$0")/functions.sh"
requires qemu-system-x86_64 --version
requires python3 --version
make_tmpdir

size=$((256 << 20))
truncate -s $size "$tmp/src.img" "$tmp/dst.img"
dd if=/dev/urandom of="$tmp/src.img" bs=1M count=64 seek=32 conv=notrunc \
   status=none
start_nbdkit "$tmp/src.sock" --filter="$HANDOFF_FILTER" file "$tmp/src.img" \
  mirror-control="$tmp/ctl.sock"
# A slow destination, so the copy is still running while QEMU writes.
start_nbdkit "$tmp/dst.sock" --filter=rate file "$tmp/dst.img" rate=100M

timeout 120 qemu-system-x86_64 -machine none -nodefaults -display none \
  -qmp "unix:$tmp/qmp.sock,server=on,wait=off" \
  -blockdev "driver=nbd,server.type=unix,server.path=$tmp/src.sock,node-name=disk0,cache.direct=off" \
  >"$tmp/qemu.log" 2>&1 &
echo $! > "$tmp/qemu.pid"
cleanup_fn kill_pidfile "$tmp/qemu.pid"
wait_for_socket "$tmp/qmp.sock"
qmp () { "$top/tests/qmp.py" "$tmp/qmp.sock" "$@"; }
qmp query-block >/dev/null

handoff mirror start "$tmp/ctl.sock" --to "nbd+unix:///?socket=$tmp/dst.sock"
during=$(handoff mirror status --json "$tmp/ctl.sock" | jq -r .state)
[ "$during" = copying ] || fail "the copy finished before QEMU wrote ($during)"
for i in $(seq 0 39); do
  off=$(( (i * 6151 * 4096) % (size - (1 << 20)) ))
  qmp --hmp "qemu-io disk0 \"write -P $((i + 1)) $off 65536\"" >/dev/null ||
    fail "QEMU write $i failed"
  if [ $((i % 10)) -eq 9 ]; then
    qmp --hmp "qemu-io disk0 \"write -z $((off + 131072)) 65536\"" >/dev/null
    qmp --hmp "qemu-io disk0 flush" >/dev/null
  fi
done
state=$(handoff mirror status --json "$tmp/ctl.sock" | jq -r .state)
echo "state after QEMU's writes: $state"
handoff mirror status --json "$tmp/ctl.sock" | jq -e '.guest_writes >= 40' >/dev/null ||
  fail "QEMU's writes were not seen by the mirror"
# Read back through QEMU what it wrote.
qmp --hmp "qemu-io disk0 \"read -P 1 0 65536\"" >/dev/null ||
  fail "QEMU read back the wrong data"

handoff mirror complete --verify "$tmp/ctl.sock"
qmp quit >/dev/null || true
kill_pidfile "$tmp/src.sock.pid"
kill_pidfile "$tmp/dst.sock.pid"
cmp "$tmp/src.img" "$tmp/dst.img" || fail "destination differs"
echo "$0: PASS"
