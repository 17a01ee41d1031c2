#!/usr/bin/env bash
# bench/xfer.sh: handoff-xfer against its anchors, in one run.
#
# 1. Stream throughput, TCP with TLS, 2 GiB from memory to /dev/null:
#    handoff-xfer send/recv vs socat OPENSSL (what a user would put in
#    front of a stream: TLS 1.2, ECDHE, AES-128-GCM, the cipher we
#    use; goal >= 1.5x) and vs iperf3 (one stream, plain TCP: the
#    wire's bound; goal >= 0.9x), over loopback and across a veth link
#    between two network namespaces.  Beside them, what one core's
#    AES-128-GCM allows (openssl speed).
# 2. Fan-out: one stream relayed to 1, 2 and 3 destinations (the relay
#    of a migration to several hosts, each with its own TLS session):
#    the relay's CPU per GB of the stream, and the bytes it sends.
# 3. QEMU live migration of the same guest (GUEST_MEM MiB, dirtying
#    memory) straight into the destination's unix socket, through a
#    pair of relays (unix -> tcp+TLS -> unix), and over QEMU's own TLS
#    migration channel (tls-creds-psk, tcp): total time (goals: relays
#    <= 1.05x direct, relays >= 1.2x faster than QEMU's TLS) and
#    downtime of each.
# 4. RDMA over Soft-RoCE vs TCP between two test guests on one virtual
#    link (QEMU socket netdev), rxe0 on each guest's NIC: rate, and each
#    guest's own CPU per GB on both sides (for information; TCG makes
#    both slow).
#
# bench/xfer.sh [stream] [fanout] [migrate] [rdma]  runs the named
# parts (all by default).
set -euo pipefail
parts=${*:-stream fanout migrate rdma}
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

# socat_rate PATH NS-OF-RECEIVER IP PORT: the same bytes through socat
# with TLS, certificate-authenticated (socat has no PSK).
socat_rate () {
  local path=$1 rns=$2 ip=$3 port=$4 b0 t0 t1
  local tls=openssl-max-proto-version=TLS1.2,cipher=ECDHE-ECDSA-AES128-GCM-SHA256
  ${rns:+ip netns exec $rns} socat -u -b 262144 \
    "OPENSSL-LISTEN:$port,bind=$ip,reuseaddr,cert=$tmp/tls.crt,key=$tmp/tls.key,verify=0,$tls" \
    - > /dev/null 2>&1 &
  local r=$!
  sleep 0.3
  b0=$(busy_ticks)
  t0=$(date +%s.%N)
  ${SNS:+ip netns exec $SNS} socat -u -b 262144 \
    "OPEN:/dev/zero,readbytes=$((stream_gib << 30))" \
    "OPENSSL:$ip:$port,verify=0,$tls" 2>/dev/null
  wait $r || true
  t1=$(date +%s.%N)
  echo "$path socat $(( $(busy_ticks) - b0 ))" >> "$tmp/cpu.log"
  echo "scale=3; $stream_gib * 1073741824 * 8 / 1000000000 / ($t1 - $t0)" | bc
}

# aes_gbit: one core's AES-128-GCM on 16 KiB blocks (TLS records), in
# Gbit/s.
aes_gbit () {
  openssl speed -evp aes-128-gcm -bytes 16384 -seconds 2 2>/dev/null |
    awk '/^AES-128-GCM|^aes-128-gcm/ {v=$NF; sub(/k$/, "", v); printf "%.2f", v * 1000 * 8 / 1e9}'
}

# Hosts are network namespaces on one bridge: two for the streams,
# four for the fan-out (a relay and three destinations).
if want fanout; then make_hosts 4; elif want stream; then make_hosts 2; fi

if want stream; then
: > "$tmp/cpu.log"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$tmp/tls.key" -out "$tmp/tls.crt" -days 1 -subj /CN=bench \
  >/dev/null 2>&1
aes=$(aes_gbit)
echo "one core's AES-128-GCM (openssl speed, 16 KiB): ${aes:-?} Gbit/s"
for path in loopback veth; do
  o=() i=() t=()
  for r in $(seq "$ROUNDS"); do
    if [ $path = loopback ]; then
      SNS= o+=("$(ours_rate $path "" 127.0.0.1 7100)")
      SNS= t+=("$(socat_rate $path "" 127.0.0.1 7101)")
      SNS= i+=("$(iperf_rate $path "" 127.0.0.1)")
    else
      SNS=${HOST_NS[1]} o+=("$(ours_rate $path "${HOST_NS[2]}" "${HOST_IP[2]}" 7100)")
      SNS=${HOST_NS[1]} t+=("$(socat_rate $path "${HOST_NS[2]}" "${HOST_IP[2]}" 7101)")
      SNS=${HOST_NS[1]} i+=("$(iperf_rate $path "${HOST_NS[2]}" "${HOST_IP[2]}")")
    fi
  done
  om=$(printf '%s\n' "${o[@]}" | median)
  tm=$(printf '%s\n' "${t[@]}" | median)
  im=$(printf '%s\n' "${i[@]}" | median)
  printf 'stream over %-8s handoff-xfer (TLS) %6.2f Gbit/s  socat (TLS) %6.2f Gbit/s  ratio %sx (goal >= 1.5)\n' \
    "$path" "$om" "$tm" "$(ratio "$om" "$tm")"
  printf '                     iperf3 (plain) %6.2f Gbit/s  ratio %sx (goal >= 0.9); one core of AES-GCM: %s Gbit/s\n' \
    "$im" "$(ratio "$om" "$im")" "${aes:-?}"
  # CPU seconds of the whole machine per GB moved, and the rate our CPU
  # cost allows with every core busy.
  oc=$(awk -v p=$path '$1 == p && $2 == "ours" {print $3}' "$tmp/cpu.log" | median)
  ic=$(awk -v p=$path '$1 == p && $2 == "iperf3" {print $3}' "$tmp/cpu.log" | median)
  tc=$(awk -v p=$path '$1 == p && $2 == "socat" {print $3}' "$tmp/cpu.log" | median)
  gb=$(echo "scale=6; $stream_gib * 1073741824 / 1000000000" | bc)
  opg=$(echo "scale=3; $oc / 100 / $gb" | bc)
  tpg=$(echo "scale=3; $tc / 100 / $gb" | bc)
  ipg=$(echo "scale=3; $ic / 100 / $gb" | bc)
  bound=$(echo "scale=2; $(nproc) / $opg * 8" | bc)
  printf '  CPU per GB: handoff-xfer %s s, socat %s s, iperf3 %s s; %s CPUs allow handoff-xfer %s Gbit/s = %sx iperf3\n' \
    "$opg" "$tpg" "$ipg" "$(nproc)" "$bound" "$(ratio "$bound" "$im")"
  # An estimate of what a TLS stream costs per GB at least: what the
  # plain stream costs (iperf3: copies and syscalls) plus sealing and
  # opening each byte once at one core's AES-GCM speed.  When both are
  # CPU-bound (all cores busy), socat's cost over it is roughly the
  # ratio to socat a stream at that cost would reach.  (A stream that
  # copies less than iperf3 does can go below it.)
  if [ -n "${aes:-}" ]; then
    floor=$(echo "scale=3; $ipg + 2 * 8 / $aes" | bc)
    printf '  TLS cost per GB, estimated: iperf3 %s s + AES-GCM seal and open %s s = %s s (handoff-xfer costs %sx of it); a stream at that cost, CPU-bound, would be %sx socat\n' \
      "$ipg" "$(echo "scale=3; 2 * 8 / $aes" | bc)" "$floor" \
      "$(ratio "$opg" "$floor")" "$(ratio "$tpg" "$floor")"
  fi
done
fi

if want fanout; then
echo
echo "Fan-out: one ${stream_gib} GiB stream relayed to 1, 2, 3 destinations (TLS each):"
# fan_once N: the relay (in host 1) sends the stream to hosts 2..N+1;
# prints "CPU-SECONDS BYTES-SENT" of the relay.
fan_once () {
  local n=$1 to=() k pids=() tx0 tx1
  for (( k = 2; k <= n + 1; k++ )); do
    ip netns exec "${HOST_NS[$k]}" handoff-xfer recv \
      --listen "tcp://${HOST_IP[$k]}:7400" --psk "$tmp/k.psk" - > /dev/null \
      2> "$tmp/fan$k.log" &
    pids+=($!)
    to+=(--to "tcp://${HOST_IP[$k]}:7400?tls-psk-file=$tmp/k.psk")
  done
  sleep 0.3
  rm -f "$tmp/fan.sock"
  tx0=$(ip netns exec "${HOST_NS[1]}" cat /sys/class/net/eth0/statistics/tx_bytes)
  ( TIMEFORMAT='%3U %3S'
    time ip netns exec "${HOST_NS[1]}" handoff-xfer relay \
      --listen "unix:$tmp/fan.sock" "${to[@]}" --lagging drop --streams 1 \
      > /dev/null 2>&1 ) 2> "$tmp/fan.cpu" &
  local relay=$!
  wait_for_socket "$tmp/fan.sock"
  # (Relaying to several, the relay confirms nothing to the sender:
  # its sender is QEMU, which expects no confirmation.  Each receiver
  # says what it received instead.)
  handoff-xfer send /dev/zero --size "${stream_gib}G" --to "unix:$tmp/fan.sock" \
    > /dev/null 2>&1 || [ "$n" -gt 1 ]
  wait $relay
  for k in "${pids[@]}"; do wait "$k" || true; done
  for (( k = 2; k <= n + 1; k++ )); do
    grep -q "received ${stream_gib}.0 GiB" "$tmp/fan$k.log" ||
      fail "host $k did not receive the whole stream: $(cat "$tmp/fan$k.log")"
  done
  tx1=$(ip netns exec "${HOST_NS[1]}" cat /sys/class/net/eth0/statistics/tx_bytes)
  echo "$(tail -n 1 "$tmp/fan.cpu" | awk '{print $1 + $2}') $((tx1 - tx0))"
}
gb=$(echo "scale=6; $stream_gib * 1073741824 / 1000000000" | bc)
one=
for n in 1 2 3; do
  c=() b=()
  for r in $(seq "$ROUNDS"); do
    read -r cpu bytes < <(fan_once "$n")
    c+=("$cpu"); b+=("$bytes")
  done
  cm=$(printf '%s\n' "${c[@]}" | median)
  bm=$(printf '%s\n' "${b[@]}" | median)
  cpg=$(echo "scale=3; $cm / $gb" | bc)
  [ -n "$one" ] || one=$cpg
  printf '  %s destination%s  relay CPU %s s per GB (%sx one destination), sent %s GB\n' \
    "$n" "$([ "$n" = 1 ] && echo " " || echo s)" "$cpg" "$(ratio "$cpg" "$one")" \
    "$(echo "scale=2; $bm / 1000000000" | bc)"
done
# What sealing the stream once for every destination could save: at
# most the encryption of each further copy; the rest of a further
# destination's cost (its socket, its records' framing) stays.
[ -n "${aes:-}" ] || aes=$(aes_gbit)
more=$(echo "scale=3; ($cpg - $one) / 2" | bc)
seal=$(echo "scale=3; 8 / $aes" | bc)
printf '  each further destination: +%s s per GB; sealing it once would save at most %s s per GB of that (one core AES-128-GCM, %s Gbit/s) = %s%%\n' \
  "$more" "$seal" "$aes" "$(echo "scale=0; 100 * $seal / $more" | bc)"
fi

if want migrate; then
echo
echo "QEMU migration, ${GUEST_MEM:=1024} MiB guest dirtying memory:"
guest_build
export GUEST_MEM
# migrate_once direct|relay: sets mig_total and mig_down (ms).  Runs in
# this shell (no subshell), so its cleanup hooks stay registered.
mkdir -p "$tmp/psk" && cp "$tmp/k.psk" "$tmp/psk/keys.psk"
migrate_once () {
  local how=$1 dst_in=unix:$tmp/dst.in target tls_dst=() tls_src=()
  rm -f "$tmp/dst.in" "$tmp/src.out"
  if [ "$how" = qemutls ]; then
    # QEMU's own TLS channel, keyed as handoff's (PSK).
    tls_dst=(-object "tls-creds-psk,id=tls0,endpoint=server,dir=$tmp/psk")
    tls_src=(-object "tls-creds-psk,id=tls0,endpoint=client,dir=$tmp/psk,username=handoff")
    dst_in=tcp:127.0.0.1:7201
  fi
  start_guest dst dirty -incoming defer "${tls_dst[@]}"
  start_guest src dirty "${tls_src[@]}"
  wait_serial src "HANDOFF-TICK 2" 120
  if [ "$how" = qemutls ]; then
    qmp dst migrate-set-parameters '{"tls-creds":"tls0"}' >/dev/null
    qmp src migrate-set-parameters '{"tls-creds":"tls0"}' >/dev/null
  fi
  qmp dst migrate-incoming "{\"uri\":\"$dst_in\"}" >/dev/null
  target=$dst_in
  if [ "$how" = relay ]; then
    handoff-xfer relay --listen tcp://127.0.0.1:7200 --to "$dst_in" \
      --psk "$tmp/k.psk" --streams 1 2>/dev/null &
    handoff-xfer relay --listen "unix:$tmp/src.out" --to tcp://127.0.0.1:7200 \
      --psk "$tmp/k.psk" --streams 1 2>/dev/null &
    wait_for_socket "$tmp/src.out"
    target=unix:$tmp/src.out
  fi
  qmp src migrate-set-parameters '{"max-bandwidth":4294967296,"downtime-limit":300}' >/dev/null
  qmp src migrate "{\"uri\":\"$target\"}" >/dev/null
  qmp src --wait-migration 600 > "$tmp/mig.json" || fail "migration failed"
  mig_total=$(jq '."total-time"' "$tmp/mig.json")
  mig_down=$(jq .downtime "$tmp/mig.json")
  qmp src quit >/dev/null 2>&1 || true
  qmp dst quit >/dev/null 2>&1 || true
  kill_pidfile "$tmp/src.pid"
  kill_pidfile "$tmp/dst.pid"
}
dt=() dd=() rt=() rd=() qt=() qd=()
for r in $(seq "$ROUNDS"); do
  migrate_once direct; dt+=("$mig_total"); dd+=("$mig_down")
  migrate_once relay; rt+=("$mig_total"); rd+=("$mig_down")
  migrate_once qemutls; qt+=("$mig_total"); qd+=("$mig_down")
  echo "round $r: direct ${dt[-1]} ms (downtime ${dd[-1]} ms)  relay ${rt[-1]} ms (downtime ${rd[-1]} ms)  QEMU TLS ${qt[-1]} ms (downtime ${qd[-1]} ms)"
done
a=$(printf '%s\n' "${dt[@]}" | median)
b=$(printf '%s\n' "${rt[@]}" | median)
q=$(printf '%s\n' "${qt[@]}" | median)
printf '  direct unix socket  total %s ms, downtime %s ms\n' "$a" "$(printf '%s\n' "${dd[@]}" | median)"
printf '  through the relays  total %s ms, downtime %s ms\n' "$b" "$(printf '%s\n' "${rd[@]}" | median)"
printf "  QEMU's TLS channel  total %s ms, downtime %s ms\n" "$q" "$(printf '%s\n' "${qd[@]}" | median)"
echo "  time ratio relay/direct: $(ratio "$b" "$a")x (goal <= 1.05)"
echo "  speed-up of the relays over QEMU's TLS: $(ratio "$q" "$b")x (goal >= 1.2)"
fi

if want rdma; then
echo
echo "RDMA (Soft-RoCE) vs TCP between two TCG test guests on one virtual link,"
echo "${RDMA_MIB:=64} MiB from memory to memory, ${ROUNDS} rounds each (medians):"
guest_build --rdma
# guest_script ROLE: what guest ROLE (send or recv) runs.  Each guest
# measures its own busy CPU (/proc/stat) over each transfer; the
# receiver listens first, the sender retries until it is there.
guest_script ()
{
  cat <<GUEST
ip link set lo up
ip link set eth0 up
ip addr add 10.0.9.$([ "$1" = recv ] && echo 2 || echo 1)/24 dev eth0
rdma link add rxe0 type rxe netdev eth0 || { echo "HANDOFF-RDMA-NO-LINK"; exit 1; }
busy () { read -r _ u n s i w x y _ < /proc/stat; echo \$((u + n + s + x + y)); }
i=0
while [ \$i -lt $ROUNDS ]; do
  i=\$((i + 1))
  for t in rdma tcp; do
    case \$t in rdma) auth="--token-file /token" port=7100 ;; tcp) auth="--psk /k.psk" port=7200 ;; esac
    uri=\$t://10.0.9.2:\$((port + i))
    b0=\$(busy)
GUEST
  if [ "$1" = recv ]; then
    cat <<'GUEST'
    out=$(handoff-xfer recv --listen "$uri" $auth --accept-timeout 120s --json /dev/null 2>/dev/null)
GUEST
  else
    cat <<GUEST
    n=0
    until out=\$(handoff-xfer send /dev/zero --size ${RDMA_MIB}M --to "\$uri" \$auth --json 2>/dev/null); do
      n=\$((n + 1)); [ \$n -lt 600 ] || break; sleep 0.2
    done
GUEST
  fi
  cat <<'GUEST'
    echo "HANDOFF-BENCH $t $((  $(busy) - b0 )) $out"
  done
done
GUEST
}
mkdir -p "$tmp/gs" "$tmp/gr"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$tmp/token"
for r in gs gr; do
  cp "$tmp/token" "$tmp/$r/token"; cp "$tmp/k.psk" "$tmp/$r/k.psk"
done
guest_script send > "$tmp/gs/test.sh"
guest_script recv > "$tmp/gr/test.sh"
for r in gs gr; do
  (cd "$tmp/$r" && find . | cpio -o -H newc --quiet | gzip -1) > "$tmp/$r.gz"
  cat "$GUEST_DIR/initrd-rdma.gz" "$tmp/$r.gz" > "$tmp/$r-initrd.gz"
done
lport=$(( 20000 + $$ % 20000 ))
GUEST_MEM=768 GUEST_INITRD=$tmp/gr-initrd.gz start_guest recv script \
  -netdev "socket,id=n0,listen=127.0.0.1:$lport" \
  -device virtio-net-pci,netdev=n0,mac=52:54:00:09:00:02
sleep 1
GUEST_MEM=768 GUEST_INITRD=$tmp/gs-initrd.gz start_guest send script \
  -netdev "socket,id=n0,connect=127.0.0.1:$lport" \
  -device virtio-net-pci,netdev=n0,mac=52:54:00:09:00:01
wait_for 900 "the two guests to finish" bash -c \
  "grep -q HANDOFF-SCRIPT-DONE '$tmp/send.serial' && grep -q HANDOFF-SCRIPT-DONE '$tmp/recv.serial'"
hz=100
# side_stat ROLE T FIELD: the median over the rounds, FIELD rate (MB/s)
# or cpu (CPU seconds per GB moved, in that guest).
side_stat ()
{
  grep -a "^HANDOFF-BENCH $2 " "$tmp/$1.serial" | while read -r _ _ ticks json; do
    bytes=$(echo "$json" | jq -r '.bytes // .received // .sent // empty')
    secs=$(echo "$json" | jq -r '.seconds // empty')
    [ -n "$bytes" ] || continue
    case $3 in
      rate) [ -n "$secs" ] && echo "scale=1; $bytes / $secs / 1000000" | bc ;;
      cpu) echo "scale=2; $ticks / $hz / ($bytes / 1000000000)" | bc ;;
    esac
  done | median
}
printf '  %-6s %10s %18s %18s\n' "" "MB/s" "sender CPU s/GB" "receiver CPU s/GB"
for t in rdma tcp; do
  printf '  %-6s %10s %18s %18s\n' "$t" "$(side_stat send $t rate)" \
    "$(side_stat send $t cpu)" "$(side_stat recv $t cpu)"
done
echo "  (TCG guests, Soft-RoCE: these show that both work and what each"
echo "   costs in a guest's own CPU, not what the hardware does; see"
echo "   bench/README.md for RoCE and InfiniBand)"
fi
