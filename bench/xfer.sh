#!/usr/bin/env bash
# bench/xfer.sh: handoff-xfer against its anchors, in one run.
#
# 1. Stream throughput, TCP with TLS, 2 GiB from tmpfs to /dev/null:
#    handoff-xfer send/recv vs iperf3 (one stream, plain TCP) on the same
#    path, over loopback and across a veth link between two network
#    namespaces.  Goal >= 0.9x.
# 2. QEMU live migration of the same guest (GUEST_MEM MiB, dirtying
#    memory) straight into the destination's unix socket vs through a
#    pair of relays (unix -> tcp+TLS -> unix): total time (goal <= 1.05x)
#    and downtime of both.
# 3. RDMA over Soft-RoCE vs TCP inside a test guest (for information;
#    TCG makes both slow).
#
# bench/xfer.sh [stream] [migrate] [rdma]  runs the named parts (all by
# default).
set -euo pipefail
parts=${*:-stream migrate rdma}
want () { [[ " $parts " == *" $1 "* ]]; }
top=$(cd "$(dirname "$0")/.." && pwd)
export O=${O:-build}
source "$top/tests/functions.sh"
ROUNDS=${ROUNDS:-3}
make_tmpdir

handoff keygen "$tmp/k.psk" 2>/dev/null

# Both sides stream from and to memory, as iperf3 does.  The machine's
# busy time over each transfer is kept in $tmp/cpu.log ("PATH WHO
# TICKS"): with TLS on both ends on a few cores, CPU per byte bounds the
# rate.
stream_gib=2
ours_rate () {                  # ours_rate PATH NS-OF-RECEIVER IP PORT
  local path=$1 rns=$2 ip=$3 port=$4 out b0
  ${rns:+ip netns exec $rns} handoff-xfer recv --listen "tcp://$ip:$port" \
    --psk "$tmp/k.psk" - > /dev/null 2>&1 &
  local r=$!
  sleep 0.3
  b0=$(busy_ticks)
  out=$(${SNS:+ip netns exec $SNS} handoff-xfer send /dev/zero --size "${stream_gib}G" \
        --to "tcp://$ip:$port" --psk "$tmp/k.psk" --json)
  wait $r
  echo "$path ours $(( $(busy_ticks) - b0 ))" >> "$tmp/cpu.log"
  echo "$out" | jq '.rate * 8 / 1e9'
}
iperf_rate () {                 # iperf_rate PATH NS-OF-SERVER IP
  local path=$1 rns=$2 ip=$3 b0
  ${rns:+ip netns exec $rns} iperf3 -s -B "$ip" -1 > /dev/null 2>&1 &
  local s=$!
  sleep 0.5
  b0=$(busy_ticks)
  ${SNS:+ip netns exec $SNS} iperf3 -c "$ip" -n "${stream_gib}G" -J 2>/dev/null |
    jq '.end.sum_received.bits_per_second / 1e9'
  wait $s || true
  echo "$path iperf3 $(( $(busy_ticks) - b0 ))" >> "$tmp/cpu.log"
}

if want stream; then
make_hosts 2
: > "$tmp/cpu.log"
for path in loopback veth; do
  o=() i=()
  for r in $(seq "$ROUNDS"); do
    if [ $path = loopback ]; then
      SNS= o+=("$(ours_rate $path "" 127.0.0.1 7100)")
      SNS= i+=("$(iperf_rate $path "" 127.0.0.1)")
    else
      SNS=${HOST_NS[1]} o+=("$(ours_rate $path "${HOST_NS[2]}" "${HOST_IP[2]}" 7100)")
      SNS=${HOST_NS[1]} i+=("$(iperf_rate $path "${HOST_NS[2]}" "${HOST_IP[2]}")")
    fi
  done
  om=$(printf '%s\n' "${o[@]}" | median)
  im=$(printf '%s\n' "${i[@]}" | median)
  printf 'stream over %-8s handoff-xfer (TLS) %6.2f Gbit/s  iperf3 %6.2f Gbit/s  ratio %sx (goal >= 0.9)\n' \
    "$path" "$om" "$im" "$(ratio "$om" "$im")"
  # CPU seconds of the whole machine per GB moved, and the rate our CPU
  # cost allows with every core busy.
  oc=$(awk -v p=$path '$1 == p && $2 == "ours" {print $3}' "$tmp/cpu.log" | median)
  ic=$(awk -v p=$path '$1 == p && $2 == "iperf3" {print $3}' "$tmp/cpu.log" | median)
  gb=$(echo "scale=6; $stream_gib * 1073741824 / 1000000000" | bc)
  opg=$(echo "scale=3; $oc / 100 / $gb" | bc)
  ipg=$(echo "scale=3; $ic / 100 / $gb" | bc)
  bound=$(echo "scale=2; $(nproc) / $opg * 8" | bc)
  printf '  CPU per GB: handoff-xfer %s s, iperf3 %s s; %s CPUs allow handoff-xfer %s Gbit/s = %sx iperf3\n' \
    "$opg" "$ipg" "$(nproc)" "$bound" "$(ratio "$bound" "$im")"
done
fi

if want migrate; then
echo
echo "QEMU migration, ${GUEST_MEM:=1024} MiB guest dirtying memory:"
guest_build
export GUEST_MEM
# migrate_once direct|relay: sets mig_total and mig_down (ms).  Runs in
# this shell (no subshell), so its cleanup hooks stay registered.
migrate_once () {
  local how=$1 dst_in=$tmp/dst.in target
  rm -f "$dst_in" "$tmp/src.out"
  start_guest dst dirty -incoming defer
  start_guest src dirty
  wait_serial src "HANDOFF-TICK 2" 120
  qmp dst migrate-incoming "{\"uri\":\"unix:$dst_in\"}" >/dev/null
  target=$dst_in
  if [ "$how" = relay ]; then
    handoff-xfer relay --listen tcp://127.0.0.1:7200 --to "unix:$dst_in" \
      --psk "$tmp/k.psk" --streams 1 2>/dev/null &
    handoff-xfer relay --listen "unix:$tmp/src.out" --to tcp://127.0.0.1:7200 \
      --psk "$tmp/k.psk" --streams 1 2>/dev/null &
    wait_for_socket "$tmp/src.out"
    target=$tmp/src.out
  fi
  qmp src migrate-set-parameters '{"max-bandwidth":4294967296,"downtime-limit":300}' >/dev/null
  qmp src migrate "{\"uri\":\"unix:$target\"}" >/dev/null
  qmp src --wait-migration 600 > "$tmp/mig.json" || fail "migration failed"
  mig_total=$(jq '."total-time"' "$tmp/mig.json")
  mig_down=$(jq .downtime "$tmp/mig.json")
  qmp src quit >/dev/null 2>&1 || true
  qmp dst quit >/dev/null 2>&1 || true
  kill_pidfile "$tmp/src.pid"
  kill_pidfile "$tmp/dst.pid"
}
dt=() dd=() rt=() rd=()
for r in $(seq "$ROUNDS"); do
  migrate_once direct; dt+=("$mig_total"); dd+=("$mig_down")
  migrate_once relay; rt+=("$mig_total"); rd+=("$mig_down")
  echo "round $r: direct ${dt[-1]} ms (downtime ${dd[-1]} ms)  relay ${rt[-1]} ms (downtime ${rd[-1]} ms)"
done
a=$(printf '%s\n' "${dt[@]}" | median)
b=$(printf '%s\n' "${rt[@]}" | median)
printf '  direct unix socket  total %s ms, downtime %s ms\n' "$a" "$(printf '%s\n' "${dd[@]}" | median)"
printf '  through the relays  total %s ms, downtime %s ms\n' "$b" "$(printf '%s\n' "${rd[@]}" | median)"
echo "  time ratio relay/direct: $(ratio "$b" "$a")x (goal <= 1.05)"
fi

if want rdma; then
echo
echo "RDMA (Soft-RoCE) vs TCP inside a TCG test guest:"
bash "$top/tests/test-xfer-rdma.sh" 2>/dev/null | grep "inside the TCG guest" || echo "  (guest test failed)"
fi
