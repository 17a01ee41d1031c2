#!/usr/bin/env bash
# bench/interpose.sh: what a VM's disk costs when nothing migrates, and
# what putting the mirror under it costs the guest, in one run.
#
# 1. Everyday I/O through QEMU's block layer (qemu-img bench, as a
#    guest's I/O takes it), on a 1 GiB image in the page cache: QEMU's
#    own file driver - how handoffd runs a VM's disk (--disk-path file,
#    the default), so its ratio to itself is 1 by construction - against
#    nbdkit with the mirror filter, idle (--disk-path nbd): 4k writes
#    and reads at depth 16, 1 MiB sequential writes and reads.
# 2. The switch: fio (nbd engine, 4k random writes, depth 16, a latency
#    log of every write) on a qemu-storage-daemon that runs the disk as
#    handoffd's QEMU does (raw node disk0 over file node file0); at 3 s
#    the mirror goes under it the way vm-disks.c does it (blockdev-add
#    of an NBD node to nbdkit with the filter, the image's dirty pages
#    written back, blockdev-reopen of disk0 over it), at 6 s it comes
#    out again (written back, reopen over file0, blockdev-del).  Printed: the longest gap between two completed
#    writes and the slowest write around each switch, beside the
#    slowest write away from them (goal: a stall <= 50 ms).
#
# ROUNDS rounds (default 3); medians.  Not handoffd itself: the same
# QMP commands it sends, where fio can load the disk (the test guest has
# no fio); handoffd logs how long each switch took.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export O=${O:-build}
source "$top/tests/functions.sh"
requires qemu-img --version
requires qemu-storage-daemon --version
requires fio --version
ROUNDS=${ROUNDS:-3}
make_tmpdir
cd "$tmp"

truncate -s 1G img
dd if=/dev/urandom of=img bs=1M count=1024 conv=notrunc status=none
start_nbdkit "$tmp/mir.sock" --filter="$HANDOFF_FILTER" file "$tmp/img" \
  mirror-control="$tmp/ctl.sock"

# bench_rate OPTS SIZE COUNT [-w]: MB/s of qemu-img bench on the image
# given by --image-opts OPTS.
bench_rate () {
  local opts=$1 size=$2 count=$3 s
  shift 3
  s=$(qemu-img bench --image-opts "$opts" -c "$count" -d 16 -s "$size" \
        -t writeback "$@" 2>&1 | awk '/Run completed in/ {print $4}')
  echo "scale=1; $count * $(numfmt --from=iec "${size^^}") / $s / 1000000" | bc
}
file_opts="driver=raw,file.driver=file,file.filename=$tmp/img"
nbd_opts="driver=raw,file.driver=nbd,file.server.type=unix,file.server.path=$tmp/mir.sock"

echo "Everyday I/O through QEMU's block layer (qemu-img bench, depth 16, page cache):"
for c in "4k write 200000 -w" "4k read 200000" "1m write 4000 -w" "1m read 4000"; do
  read -r size what count flag <<<"$c"
  f=() n=()
  for r in $(seq "$ROUNDS"); do
    f+=("$(bench_rate "$file_opts" "$size" "$count" ${flag:+"$flag"})")
    n+=("$(bench_rate "$nbd_opts" "$size" "$count" ${flag:+"$flag"})")
  done
  fm=$(printf '%s\n' "${f[@]}" | median)
  nm=$(printf '%s\n' "${n[@]}" | median)
  printf '  %-3s %-5s  file driver (handoff, --disk-path file) %8s MB/s = 1.00x   nbdkit + filter idle (--disk-path nbd) %8s MB/s = %sx\n' \
    "$size" "$what" "$fm" "$nm" "$(ratio "$nm" "$fm")"
done

echo
echo "The switch under load (fio 4k random writes, depth 16, on qemu-storage-daemon):"
# switch SOCKET: over one QMP session, as handoffd holds it, the steps
# of vm-disks.c: the mirror under disk0 after 3 s, out again 3 s later;
# the image written back before each reopen, the guest going on.
# Prints the epoch ms around each reopen ("IN0 IN1 OUT0 OUT1").
switch () {
  python3 - "$1" "$tmp/mir.sock" "$tmp/img" "$top/tests" <<'PY'
import os, sys, time
sys.path.insert(0, sys.argv[4])
import qmp
f = qmp.connect(sys.argv[1])
call = lambda cmd, args=None: qmp.call(f, cmd, args)
now = lambda: int(time.time() * 1000)
time.sleep(3)
def write_back():                # as vm-disks.c: the guest goes on
    fd = os.open(sys.argv[3], os.O_RDONLY)
    for _ in range(4):
        t = now(); os.fdatasync(fd)
        if now() - t <= 5: break
    os.close(fd)
call('blockdev-add', {'driver': 'nbd', 'node-name': 'nbd0',
                      'server': {'type': 'unix', 'path': sys.argv[2]}})
write_back()
b0 = now()
call('blockdev-reopen', {'options': [{'driver': 'raw', 'node-name': 'disk0', 'file': 'nbd0'}]})
b = now()
time.sleep(3)
write_back()
c = now()
call('blockdev-reopen', {'options': [{'driver': 'raw', 'node-name': 'disk0', 'file': 'file0'}]})
call('blockdev-del', {'node-name': 'nbd0'})
print(b0, b, c, now())
PY
}
gaps=() near=() far=() tin=() tout=()
for r in $(seq "$ROUNDS"); do
  rm -f qsd.sock qsd.qmp lat_lat.1.log
  qemu-storage-daemon \
    --blockdev "{\"driver\":\"file\",\"filename\":\"$tmp/img\",\"node-name\":\"file0\"}" \
    --blockdev '{"driver":"raw","file":"file0","node-name":"disk0"}' \
    --nbd-server "addr.type=unix,addr.path=$tmp/qsd.sock" \
    --export nbd,id=e0,node-name=disk0,writable=on \
    --chardev "socket,path=$tmp/qsd.qmp,server=on,wait=off,id=m" \
    --monitor chardev=m > qsd.log 2>&1 &
  echo $! > qsd.pid
  wait_for_socket "$tmp/qsd.qmp"
  wait_for_socket "$tmp/qsd.sock"
  fio --name=w --ioengine=nbd --uri="nbd+unix:///disk0?socket=$tmp/qsd.sock" \
    --rw=randwrite --bs=4k --iodepth=16 --size=1g --time_based --runtime=9 \
    --write_lat_log=lat --log_avg_msec=0 --log_unix_epoch=1 --output=fio.out &
  fio_pid=$!
  read -r a b c d < <(switch "$tmp/qsd.qmp")
  wait "$fio_pid"
  kill "$(cat qsd.pid)"; wait "$(cat qsd.pid)" 2>/dev/null || true
  # fio's log: "end of the write (epoch ms), its latency (ns), ...".
  # Near a switch: writes that ended from its start to 100 ms after it.
  read -r gap n f < <(awk -F', ' -v a="$a" -v b="$b" -v c="$c" -v d="$d" '
    NR == 1 { first = $1 }
    { lat = $2 / 1e6 }
    NR > 1 && $1 - last > gap { gap = $1 - last }
    { last = $1 }
    ($1 >= a && $1 <= b + 100) || ($1 >= c && $1 <= d + 100) { if (lat > near) near = lat; next }
    $1 > first + 1000 && lat > far { far = lat }
    END { printf "%.1f %.1f %.1f\n", gap, near, far }' lat_lat.1.log)
  echo "  round $r: mirror in in $((b - a)) ms, out in $((d - c)) ms (QMP); longest gap between two writes $gap ms; slowest write near a switch $n ms, away from them $f ms"
  gaps+=("$gap"); near+=("$n"); far+=("$f"); tin+=("$((b - a))"); tout+=("$((d - c))")
done
printf '  median: switch in %s ms, out %s ms; longest gap between writes %s ms; slowest write near a switch %s ms (goal <= 50), away %s ms\n' \
  "$(printf '%s\n' "${tin[@]}" | median)" "$(printf '%s\n' "${tout[@]}" | median)" \
  "$(printf '%s\n' "${gaps[@]}" | median)" "$(printf '%s\n' "${near[@]}" | median)" \
  "$(printf '%s\n' "${far[@]}" | median)"
