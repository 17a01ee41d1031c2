#!/usr/bin/env bash
# bench/prewarm.sh: what pre-warming buys and what it costs, in one run.
#
# The test guest (Debian kernel, busybox, 256 MiB of RAM, a 64 MiB
# virtio disk with 63 MiB of data, appending fsync'ed records and
# ticking on its console) on host 1 of five (network namespaces):
#
#  (a) cold: 'handoff migrate --to host2', from the command to the
#      guest running on host 2, and its downtime;
#  (b) warm: 'handoff migrate --to host2 --prewarm', held until every
#      stream was copied, then 'handoff cutover': from the cutover
#      command to the guest running on host 2 (cutover_ms), and its
#      downtime.
# ROUNDS rounds (default 5), interleaved; medians compared (goal: the
# cutover at least 5x shorter than a cold migration, its downtime at
# most 100 ms).
#
# Then, held warm for WARM_S seconds (default 20) to 1, 2 and 3
# destinations, and to 2 and 3 through a proxy (--via host5): the CPU
# time of the source's processes (QEMU, relay, mirror, share,
# handoffd) and the bytes host 1 sent while warm, against one
# destination (goal with --via: at most 1.3x the CPU of one); the
# bytes host 1 sent until every destination was warm (the copy); and
# the guest's tick rate while warm against the same guest not
# migrating (the cost of holding: QEMU's migration thread keeps passing
# over RAM).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export O=${O:-build}
source "$top/tests/functions.sh"
source "$top/tests/handoffd.sh"
requires_netns
requires_fuse
requires jq --version
guest_build
ROUNDS=${ROUNDS:-5}
WARM_S=${WARM_S:-20}
make_tmpdir
cd "$tmp"
make_hosts 5

handoff keygen k.psk >/dev/null 2>&1
for i in 1 2 3 4 5; do echo "{\"boot_dirs\": [\"$GUEST_DIR\"]}" > "h$i.policy"; done
for i in 1 2 3 4 5; do start_handoffd "$i"; done
append="console=ttyS0 quiet panic=-1 handoff.mode=records"

# start_vm NAME: define and start the guest on host 1.
start_vm ()
{
  truncate -s 64M "$1.img"
  dd if=/dev/urandom of="$1.img" bs=1M seek=1 count=63 conv=notrunc status=none
  hcli 1 define "$1" --memory 256 --vcpus 1 --disk "$tmp/$1.img" \
    --kernel "$GUEST_DIR/vmlinux" --initrd "$GUEST_DIR/initrd.gz" \
    --append "$append" >/dev/null
  hcli 1 start "$1" >/dev/null
  wait_for 120 "the guest" grep -q "HANDOFF-REC 5" "$tmp/h1/run/$1/serial.log"
}

# gone I NAME: the guest moved to host I; stop and forget it there.
gone ()
{
  wait_for 30 "ticks on host $1" grep -q HANDOFF-TICK "$tmp/h$1/run/$2/serial.log"
  hcli "$1" stop "$2" >/dev/null
  hcli "$1" undefine "$2" >/dev/null
  rm -rf "$tmp/$2.img" "$tmp/h$1/images/$2"
}

# warm NAME HOSTS [ARGS...]: a pre-warmed migration from host 1, until
# warm.
warm ()
{
  hcli 1 migrate "$1" --to "$2" --prewarm --detach "${@:3}" >/dev/null
  wait_for 300 "$1 warm" bash -c \
    "[ \"\$(ip netns exec ${HOST_NS[1]} handoff --socket $tmp/h1.sock status $1 --json | jq -r .migration.phase)\" = warm ]"
}

ticks () { grep -ac HANDOFF-TICK "$tmp/h1/run/$1/serial.log"; }

# The CPU ticks of every process in host 1's namespace.
src_cpu ()
{
  local p t=0 v
  for p in $(netns_pids 1); do
    v=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null) || continue
    t=$((t + v))
  done
  echo "$t"
}
tx_bytes () { ip netns exec "${HOST_NS[1]}" cat /sys/class/net/eth0/statistics/tx_bytes; }

echo "guest: 256 MiB RAM, 64 MiB disk; accelerator $(hcli 1 host --json | jq -r .accel); link unshaped (memory speed)"
printf "%-6s %-24s %-24s\n" round "cold total/downtime" "warm cutover/downtime"
for (( r=1; r<=ROUNDS; r++ )); do
  start_vm "cold$r"
  hcli 1 migrate "cold$r" --to host2 --json > "cold$r.json" ||
    { cat "cold$r.json" >&2; fail "cold migration"; }
  ct=$(jq -r 'select(.event == "result") | .running_after_ms' "cold$r.json")
  cd_=$(jq -r 'select(.event == "result") | .downtime_ms' "cold$r.json")
  gone 2 "cold$r"

  start_vm "warm$r"
  warm "warm$r" host2
  hcli 1 cutover "warm$r" --json > "warm$r.json" ||
    { cat "warm$r.json" >&2; fail "cutover"; }
  wt=$(jq -r 'select(.event == "result") | .cutover_ms' "warm$r.json")
  wd=$(jq -r 'select(.event == "result") | .downtime_ms' "warm$r.json")
  gone 2 "warm$r"
  echo "$ct" >> cold.total; echo "$cd_" >> cold.down
  echo "$wt" >> warm.total; echo "$wd" >> warm.down
  printf "%-6s %9s ms %9.1f ms  %9s ms %9.1f ms\n" "$r" "$ct" "$cd_" "$wt" "$wd"
done
ct=$(median < cold.total); cd_=$(median < cold.down)
wt=$(median < warm.total); wd=$(median < warm.down)
echo
echo "median: cold migration $ct ms to running, warm cutover $wt ms:" \
     "cold/warm = $(ratio "$ct" "$wt")x (goal >= 5)"
printf "median downtime: cold %.1f ms, warm cutover %.1f ms (goal <= 100 ms)\n" "$cd_" "$wd"

echo
echo "held warm $WARM_S s (source: every process in host 1's namespace):"
printf "%-16s %10s %14s %14s %12s\n" destinations "CPU (s)" "bytes sent" "bytes to warm" "guest ticks/s"
start_vm idle
t0=$(ticks idle); sleep "$WARM_S"; t1=$(ticks idle)
base_rate=$(echo "scale=2; ($t1 - $t0) / $WARM_S" | bc)
hcli 1 stop idle >/dev/null; hcli 1 undefine idle >/dev/null
printf "%-16s %10s %14s %14s %12s\n" "none" "-" "-" "-" "$base_rate"
declare -A cpu bytes copy
n=0
for spec in 1:host2 2:host2,host3 3:host2,host3,host4 2v:host2,host3 \
            3v:host2,host3,host4; do
  key=${spec%%:*}; to=${spec#*:}
  via=(); label=$key
  if [[ $key == *v ]]; then via=(--via host5); label="${key%v} via host5"; fi
  n=$((n + 1))
  start_vm "held$n"
  b_start=$(tx_bytes)
  warm "held$n" "$to" "${via[@]}"
  c0=$(src_cpu); b0=$(tx_bytes); t0=$(ticks "held$n")
  sleep "$WARM_S"
  c1=$(src_cpu); b1=$(tx_bytes); t1=$(ticks "held$n")
  cpu[$key]=$(echo "scale=2; ($c1 - $c0) / 100" | bc)
  bytes[$key]=$((b1 - b0))
  copy[$key]=$((b0 - b_start))
  rate=$(echo "scale=2; ($t1 - $t0) / $WARM_S" | bc)
  printf "%-16s %10s %14s %14s %12s\n" "$label" "${cpu[$key]}" "${bytes[$key]}" "${copy[$key]}" "$rate"
  hcli 1 abort "held$n" >/dev/null
  wait_for 60 "held$n to roll back" bash -c \
    "ip netns exec ${HOST_NS[1]} handoff --socket $tmp/h1.sock status held$n --json | jq -e '.migration == null' >/dev/null"
  hcli 1 stop "held$n" >/dev/null; hcli 1 undefine "held$n" >/dev/null
  rm -f "$tmp/held$n.img"
done
for n in 2 3; do
  echo "$n destinations vs 1: CPU $(ratio "${cpu[$n]}" "${cpu[1]}")x," \
       "bytes while warm $(ratio "${bytes[$n]}" "${bytes[1]}")x, bytes to warm" \
       "$(ratio "${copy[$n]}" "${copy[1]}")x (the source sends each stream to" \
       "each destination)"
  echo "$n destinations via a proxy vs 1: CPU $(ratio "${cpu[${n}v]}" "${cpu[1]}")x" \
       "(goal <= 1.3), bytes while warm $(ratio "${bytes[${n}v]}" "${bytes[1]}")x," \
       "bytes to warm $(ratio "${copy[${n}v]}" "${copy[1]}")x (every stream" \
       "goes once, to the proxy)"
done
echo "bound: 2 cores shared by the guest (TCG), its QEMU's migration thread and every helper"
