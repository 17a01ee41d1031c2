#!/usr/bin/env bash
# bench/fleet.sh: what fleet mode (handoffd --cluster) costs a migration
# and how many migrations a fleet carries, in one run.
#
# Three etcd members, one on each of hosts 1-3 (network namespaces).
#
#  (a) etcd's cost on one migration: the test guest (128 MiB of RAM, a
#      64 MiB disk, writing records) goes host 1 -> host 2 -> host 1,
#      ROUNDS times (default 5) with both daemons in the cluster and
#      ROUNDS times with the same daemons restarted without it,
#      interleaved.  Medians of the downtime and of the time to running
#      compared (goal: etcd adds at most 5 ms to the downtime), and the
#      median of the cutover's etcd transaction (the source's log).
#  (b) migrations per minute across N hosts (N in FLEET_SIZES, default
#      "2 4 6"): one small guest (128 MiB, a 16 MiB disk, idle) per host,
#      every guest moving to the next host of the ring at once, RING
#      rounds (default 3).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export O=${O:-build}
source "$top/tests/functions.sh"
source "$top/tests/handoffd.sh"
requires_netns
requires_fuse
requires jq --version
requires etcd --version
guest_build
ROUNDS=${ROUNDS:-5}
RING=${RING:-3}
FLEET_SIZES=${FLEET_SIZES:-2 4 6}
max_n=3
for n in $FLEET_SIZES; do [ "$n" -gt "$max_n" ] && max_n=$n; done
make_tmpdir
cd "$tmp"
make_hosts "$max_n"

etcd_cluster 3
eps=$ETCD_EPS

# The machine's bound for (a): one write through the same gateway
# (a put is one raft commit, as the cutover's transaction is) with
# nothing else running, 20 times.
key=$(printf /bench/x | base64 -w0)
for (( k=0; k<20; k++ )); do
  on_host 1 curl -s -o /dev/null -w '%{time_total}\n' \
    "http://${ETCD_EP[1]}/v3/kv/put" \
    -d "{\"key\":\"$key\",\"value\":\"$(printf %s "$k" | base64 -w0)\"}"
done | awk '{printf "%d\n", $1 * 1000000}' > idle.us

handoff keygen k.psk >/dev/null 2>&1
for (( i=1; i<=max_n; i++ )); do echo "{\"boot_dirs\": [\"$GUEST_DIR\"]}" > "h$i.policy"; done

# daemons MODE I...: (re)start hosts I... in the cluster or not.
daemons ()
{
  local mode=$1 i
  shift
  for i in "$@"; do
    if [ -f "h$i.pid" ]; then stop_handoffd "$i"; fi
  done
  for i in "$@"; do
    if [ "$mode" = cluster ]; then
      HD_NO_PEERS=1 start_handoffd "$i" --cluster "etcd://$eps"
    else
      start_handoffd "$i"
    fi
  done
}

# ---- (a) ----
daemons plain 1 2
truncate -s 64M web.img
dd if=/dev/urandom of=web.img bs=1M seek=1 count=63 conv=notrunc status=none
hcli 1 define web --memory 128 --vcpus 1 --disk "$tmp/web.img" \
  --kernel "$GUEST_DIR/vmlinux" --initrd "$GUEST_DIR/initrd.gz" \
  --append "console=ttyS0 quiet panic=-1 handoff.mode=records" >/dev/null
hcli 1 start web >/dev/null
wait_for 120 "the guest" grep -q "HANDOFF-REC 5" "$tmp/h1/run/web/serial.log"

: > cluster.down; : > plain.down; : > cluster.total; : > plain.total
echo "(a) etcd's cost: the guest there and back, ROUNDS=$ROUNDS, in the cluster and not"
printf "%-6s %-8s %-22s %-22s\n" round mode "1->2 total/downtime" "2->1 total/downtime"
for (( r=1; r<=ROUNDS; r++ )); do
  for mode in cluster plain; do
    daemons "$mode" 1 2
    line=()
    for hop in "1 2" "2 1"; do
      set -- $hop
      hcli "$1" migrate web --to "host$2" --json > "m.json" ||
        { cat m.json >&2; fail "migration $1 -> $2 ($mode)"; }
      t=$(jq -r 'select(.event == "result") | .running_after_ms' m.json)
      d=$(jq -r 'select(.event == "result") | .downtime_ms * 10 | round / 10' m.json)
      echo "$t" >> "$mode.total"
      echo "$d" >> "$mode.down"
      line+=("$t/$d ms")
    done
    printf "%-6s %-8s %-22s %-22s\n" "$r" "$mode" "${line[0]}" "${line[1]}"
  done
done
grep -ho "now belongs to host[0-9]* ([0-9]* us)" h1.log h2.log |
  grep -o "([0-9]*" | tr -d '(' > txn.us
cd_=$(median < cluster.down); pd=$(median < plain.down)
ct=$(median < cluster.total); pt=$(median < plain.total)
echo "median downtime: in the cluster $cd_ ms, without $pd ms: etcd adds" \
     "$(echo "$cd_ - $pd" | bc) ms (goal <= 5)"
echo "median time to running: in the cluster $ct ms, without $pt ms"
echo "the cutover's etcd transaction: median $(median < txn.us) us over" \
     "$(wc -l < txn.us) migrations (beside the disks' completion, not after it)"
echo "bound: one etcd write through the gateway on this machine with nothing" \
     "else running: median $(median < idle.us) us; during a migration the" \
     "guest's TCG vCPU holds one of the two cores and etcd's three members" \
     "share the other with the migration"
hcli 1 stop web >/dev/null

# ---- (b) ----
echo "(b) migrations per minute: one guest per host, each to the next host at once, RING=$RING rounds"
guest_n=0
declare -A on=()
for n in $FLEET_SIZES; do
  hosts=$(seq 1 "$n")
  # shellcheck disable=SC2086
  daemons cluster $hosts
  for i in $hosts; do
    guest_n=$((guest_n + 1))
    g=g$guest_n
    truncate -s 16M "$g.img"
    hcli "$i" define "$g" --memory 128 --vcpus 1 --disk "$tmp/$g.img" \
      --kernel "$GUEST_DIR/vmlinux" --initrd "$GUEST_DIR/initrd.gz" \
      --append "console=ttyS0 quiet panic=-1 handoff.mode=idle" >/dev/null
    hcli "$i" start "$g" >/dev/null
    on[$g]=$i
  done
  for g in "${!on[@]}"; do
    wait_for 300 "$g" grep -q HANDOFF-BOOT "$tmp/h${on[$g]}/run/$g/serial.log"
  done
  t0=$(date +%s%N)
  for (( r=1; r<=RING; r++ )); do
    pids=()
    for g in "${!on[@]}"; do
      from=${on[$g]} to=$(( ${on[$g]} % n + 1 ))
      hcli "$from" migrate "$g" --to "host$to" > "$g.out" 2>&1 &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || fail "a migration of round $r failed (N=$n)"; done
    for g in "${!on[@]}"; do on[$g]=$(( ${on[$g]} % n + 1 )); done
  done
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "N=$n hosts: $((n * RING)) migrations in $ms ms = $(echo "scale=1; $n * $RING * 60000 / $ms" | bc) per minute"
  for g in "${!on[@]}"; do
    hcli "${on[$g]}" stop "$g" >/dev/null
    hcli "${on[$g]}" undefine "$g" >/dev/null
    unset "on[$g]"
  done
done
echo "bound: 2 cores for every guest (TCG), its QEMU and the helpers of every host; etcd's three members share them"
