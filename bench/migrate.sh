#!/usr/bin/env bash
# bench/migrate.sh: a live migration by handoff against QEMU's own path,
# in one run.
#
# The same guest (the test guest: Debian kernel, busybox, 256 MiB of
# RAM, a 64 MiB virtio disk with 63 MiB of data, appending fsync'ed
# records to its disk and ticking on its console) moves from host 1 to
# host 2 (network namespaces joined by a veth pair):
#
#  (a) handoff: 'handoff migrate' between two handoffds (disk through
#      the mirror filter, RAM through the relay, TLS-PSK everywhere);
#  (b) QEMU's own path, as libvirt's --copy-storage-all does it:
#      blockdev-mirror to an NBD export on host 2, then 'migrate', the
#      mirror completed while the source is paused, then 'cont' on host
#      2 (bench/qemu-migrate.py).  TLS-PSK with the same key on NBD and
#      on the migration stream.
#
# Both with a maximum downtime of MAX_DOWNTIME ms (default 300).  For
# each: total time (start to the guest running on host 2) and downtime
# (paused on host 1 to resumed on host 2, from QMP event timestamps).
# ROUNDS rounds (default 3), interleaved; medians compared, and where
# the time goes: handoff's phases from the source's journal, QEMU's
# disk copy and the rest.  LINK_RATE
# (e.g. 1gbit) shapes host 1's link; unset, the veth runs at memory
# speed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export O=${O:-build}
source "$top/tests/functions.sh"
source "$top/tests/handoffd.sh"
requires_netns
requires_fuse
requires jq --version
requires sqlite3 --version
guest_build
ROUNDS=${ROUNDS:-3}
MAX_DOWNTIME=${MAX_DOWNTIME:-300}
make_tmpdir
cd "$tmp"
make_hosts 2
[ -z "${LINK_RATE:-}" ] || host_rate 1 "$LINK_RATE"


handoff keygen k.psk >/dev/null 2>&1
mkdir -p psk && cp k.psk psk/keys.psk
# The guest's kernel is shared by every VM: host 2 boots them from there.
echo "{\"boot_dirs\": [\"$GUEST_DIR\"]}" > h2.policy
start_handoffd 1
start_handoffd 2
# QEMU's path runs with the accelerator handoffd chose here.
accel=$(hcli 1 host --json | jq -r .accel)
append="console=ttyS0 quiet panic=-1 handoff.mode=records"

make_disk ()
{
  truncate -s 64M "$1"
  dd if=/dev/urandom of="$1" bs=1M seek=1 count=63 conv=notrunc status=none
}

# (a) handoff: writes "TOTAL_S DOWNTIME_MS" to a.res.
run_handoff ()
{
  local r=$1 name=bench$1
  make_disk "a$r.img"
  hcli 1 define "$name" --memory 256 --vcpus 1 --disk "$tmp/a$r.img" \
    --kernel "$GUEST_DIR/vmlinux" --initrd "$GUEST_DIR/initrd.gz" \
    --append "$append" >/dev/null
  hcli 1 start "$name" >/dev/null
  wait_for 120 "the guest" grep -q "HANDOFF-REC 5" "$tmp/h1/run/$name/serial.log"
  hcli 1 migrate "$name" --to host2 --max-downtime "$MAX_DOWNTIME" \
    > "a$r.out" 2>&1 || { cat "a$r.out" >&2; fail "handoff migrate"; }
  # Where the time went: each phase of the source's journal, from its
  # step to the next one (ms), as "PHASE MS" lines in a.phases.
  sqlite3 "$tmp/h1/state.db" "select phase, at from steps where mid =
      (select id from journal where vm = '$name' and role = 'source'
       order by started desc limit 1) order by at, rowid" |
    awk -F'|' 'NR > 1 { print p, $2 - t } { p = $1; t = $2 }' |
    grep -v '^acked ' >> a.phases
  wait_for 30 "ticks on host 2" grep -q HANDOFF-TICK "$tmp/h2/run/$name/serial.log"
  hcli 2 stop "$name" >/dev/null
  hcli 2 undefine "$name" >/dev/null
  rm -rf "a$r.img" "$tmp/h2/images/$name"
  echo "$(sed -n 's/^total time: .* after \([0-9.]*\) s;.*/\1/p' "a$r.out")" \
       "$(sed -n 's/^downtime: \([0-9.]*\) ms.*/\1/p' "a$r.out")" > a.res
}

# (b) QEMU's own path: writes "TOTAL_S DOWNTIME_MS" to b.res.
run_qemu ()
{
  local r=$1 common
  make_disk "b$r.img"
  truncate -s 64M "b$r-dst.img"
  common=(-nodefaults -no-user-config -display none -accel "$accel"
          -m 256M -smp 1 -kernel "$GUEST_DIR/vmlinux"
          -initrd "$GUEST_DIR/initrd.gz" -append "$append"
          -device virtio-blk-pci,drive=disk0,id=vd0)
  on_host 1 qemu-system-x86_64 "${common[@]}" \
    -object "tls-creds-psk,id=tls0,endpoint=client,dir=$tmp/psk,username=handoff" \
    -blockdev "driver=file,filename=$tmp/b$r.img,node-name=disk0" \
    -qmp "unix:$tmp/b$r-src.qmp,server=on,wait=off" \
    -serial "file:$tmp/b$r-src.serial" 2> "b$r-src.log" &
  echo $! > "b$r-src.pid"
  cleanup_fn kill_pidfile "$tmp/b$r-src.pid"
  on_host 2 qemu-system-x86_64 "${common[@]}" \
    -object "tls-creds-psk,id=tls0,endpoint=server,dir=$tmp/psk" \
    -blockdev "driver=file,filename=$tmp/b$r-dst.img,node-name=disk0" \
    -qmp "unix:$tmp/b$r-dst.qmp,server=on,wait=off" \
    -serial "file:$tmp/b$r-dst.serial" -S -incoming defer 2> "b$r-dst.log" &
  echo $! > "b$r-dst.pid"
  cleanup_fn kill_pidfile "$tmp/b$r-dst.pid"
  wait_for 120 "the guest" grep -q "HANDOFF-REC 5" "b$r-src.serial"
  python3 "$top/bench/qemu-migrate.py" "$tmp/b$r-src.qmp" "$tmp/b$r-dst.qmp" \
    "${HOST_IP[2]}" "$MAX_DOWNTIME" > "b$r.json" ||
    { cat "b$r-src.log" "b$r-dst.log" >&2; fail "QEMU's migration"; }
  wait_for 30 "ticks on host 2" grep -q HANDOFF-TICK "b$r-dst.serial"
  cmp -n $((1 << 20)) "b$r.img" "b$r-dst.img" >/dev/null ||
    echo "note: the first MiB differs (the guest wrote after the switch)" >&2
  kill_pidfile "$tmp/b$r-src.pid"
  kill_pidfile "$tmp/b$r-dst.pid"
  rm -f "b$r.img" "b$r-dst.img"
  jq -r '"\(.total_s) \(.downtime_ms)"' "b$r.json" > b.res
  jq -r '"disk_ready \(.disk_ready_s * 1000 | round)",
         "migrate_to_running \((.total_s - .disk_ready_s) * 1000 | round)"' \
    "b$r.json" >> b.phases
}

echo "guest: 256 MiB RAM, 64 MiB disk, accelerator $accel; link ${LINK_RATE:-unshaped}"
printf "%-6s %-22s %-22s\n" round "handoff total/downtime" "QEMU total/downtime"
for (( r=1; r<=ROUNDS; r++ )); do
  # In this shell, not a subshell: a failure must run the cleanups.
  run_handoff "$r"
  run_qemu "$r"
  read -r at ad < a.res
  read -r bt bd < b.res
  echo "$at" >> a.total; echo "$ad" >> a.down
  echo "$bt" >> b.total; echo "$bd" >> b.down
  printf "%-6s %8s s %8s ms   %8s s %8s ms\n" "$r" "$at" "$ad" "$bt" "$bd"
done
at=$(median < a.total); ad=$(median < a.down)
bt=$(median < b.total); bd=$(median < b.down)
echo
echo "median total time: handoff $at s, QEMU $bt s:" \
     "QEMU/handoff = $(ratio "$bt" "$at")x (higher: handoff faster)"
echo "median downtime:   handoff $ad ms, QEMU $bd ms:" \
     "QEMU/handoff = $(ratio "$bd" "$ad")x (higher: handoff shorter)"
# Per phase, medians over the rounds: where the next step is.
phases () {
  awk '{ print $1 }' "$1" | awk '!seen[$0]++' | while read -r ph; do
    printf ' %s %s' "$ph" "$(awk -v p="$ph" '$1 == p { print $2 }' "$1" | median)"
  done
}
echo "where the time goes (median ms per phase, to the VM running there):"
echo "  handoff:$(phases a.phases)"
echo "  QEMU:   $(phases b.phases)"
