#!/usr/bin/env bash
# A 64 GiB sparse disk holding 256 MiB of data mirrors as holes and
# data: the destination is allocated only where the source has data,
# and reads back equal.
source "$(dirname "$0")/functions.sh"
requires qemu-img --version
make_tmpdir

size=$((64 << 30))
truncate -s $size "$tmp/src.img" "$tmp/dst.img"
# 16 pieces of 16 MiB spread across the disk.
for i in $(seq 0 15); do
  dd if=/dev/urandom of="$tmp/src.img" bs=1M count=16 \
     seek=$(( i * 4096 + 7 )) conv=notrunc status=none
done
start_nbdkit "$tmp/src.sock" --filter="$HANDOFF_FILTER" file "$tmp/src.img" \
  mirror-control="$tmp/ctl.sock"
start_nbdkit "$tmp/dst.sock" file "$tmp/dst.img"

start=$(date +%s.%N)
handoff mirror start "$tmp/ctl.sock" --to "nbd+unix:///?socket=$tmp/dst.sock"
handoff mirror complete --verify "$tmp/ctl.sock"
secs=$(echo "$(date +%s.%N) - $start" | bc)
echo "mirrored and verified 64 GiB (256 MiB of data) in ${secs}s"

kill_pidfile "$tmp/src.sock.pid"
kill_pidfile "$tmp/dst.sock.pid"
alloc=$(du -B1 "$tmp/dst.img" | cut -f1)
echo "destination allocation: $alloc bytes"
[ "$alloc" -lt $((320 << 20)) ] || fail "holes were written as data"
[ "$alloc" -ge $((256 << 20)) ] || fail "data is missing"
qemu-img compare -f raw -F raw "$tmp/src.img" "$tmp/dst.img" ||
  fail "destination differs"
# A generous bound (the allocation above is the real check): copying
# 64 GiB as data would take the better part of an hour here.
[ "$(echo "$secs < 600" | bc)" = 1 ] || fail "took ${secs}s: not sparse-aware"
echo "$0: PASS"
