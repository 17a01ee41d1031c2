#!/usr/bin/env bash
# Shared body of the test-xfer-migrate-*.sh tests: a live QEMU migration
# of a running guest through a pair of handoff-xfer relays between two
# hosts (network namespaces).
#
#   xfer-migrate.sh single    one destination, return path on
#   xfer-migrate.sh multifd   one destination, multifd with 2 channels:
#                             three streams through the relays
#   xfer-migrate.sh fanout    one stream to two destination QEMUs at
#                             once (return path off); both complete, one
#                             is resumed and the other quits
#   xfer-migrate.sh hold      fanout with every return path merged and
#                             the switch-over held (--hold-switchover,
#                             switchover-ack): the guest runs on, the
#                             migration stays active, both destinations
#                             keep receiving; SIGUSR1 releases it
#
# Host 1 runs the source QEMU and its relay (QEMU migrates into the
# relay's unix socket); host 2 runs the destination relay(s), listening
# on TCP with TLS, feeding QEMU -incoming.  The guest dirties memory and
# prints a counter; on the destination the counter must go on from
# where it was, without a reboot, and the guest must find the pattern
# it keeps in 48 MiB of its RAM intact.
source "$(dirname "$0")/functions.sh"
requires_netns
guest_build
make_tmpdir
variant=${1:?variant}
# 48 MiB of the guest's RAM hold a pattern it checks whole, round after
# round: on the destination it must find every byte as it wrote it.
export GUEST_APPEND=handoff.ram=48

make_hosts 2
handoff keygen "$tmp/k.psk" 2>/dev/null
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$tmp/token"
sec=(--psk "$tmp/k.psk" --token-file "$tmp/token")

ndest=1 streams=1
hold=()
case $variant in
  fanout) ndest=2 ;;
  hold) ndest=2; hold=(--hold-switchover) ;;
  multifd) streams=3 ;;
esac

# Destinations: QEMU -incoming on a unix socket, fed by a relay.
for (( d=1; d<=ndest; d++ )); do
  GUEST_NS=2 start_guest "dst$d" dirty -S -incoming defer
  on_host 2 handoff-xfer relay --listen "tcp://${HOST_IP[2]}:$((7000 + d))" \
    --to "unix:$tmp/dst$d.in" "${sec[@]}" --streams $streams --json \
    > "$tmp/relay-dst$d.json" 2> "$tmp/relay-dst$d.log" &
  echo $! > "$tmp/relay-dst$d.pid"
  cleanup_fn kill_pidfile "$tmp/relay-dst$d.pid"
done
# The source relay: QEMU connects to its unix socket.
to=()
for (( d=1; d<=ndest; d++ )); do to+=(--to "tcp://${HOST_IP[2]}:$((7000 + d))"); done
on_host 1 handoff-xfer relay --listen "unix:$tmp/src.out" "${to[@]}" \
  "${sec[@]}" "${hold[@]}" --streams $streams --json \
  > "$tmp/relay-src.json" 2> "$tmp/relay-src.log" &
echo $! > "$tmp/relay-src.pid"
cleanup_fn kill_pidfile "$tmp/relay-src.pid"
wait_for_socket "$tmp/src.out"

GUEST_NS=1 start_guest src dirty
wait_serial src "HANDOFF-TICK 3" 120
wait_serial src "HANDOFF-RAM filled" 120
caps='[{"capability":"events","state":true}'
for (( d=1; d<=ndest; d++ )); do
  qmp "dst$d" migrate-set-capabilities "{\"capabilities\":$caps]}" >/dev/null
done
case $variant in
  single) caps="$caps,{\"capability\":\"return-path\",\"state\":true}" ;;
  hold) caps="$caps,{\"capability\":\"return-path\",\"state\":true}"
        caps="$caps,{\"capability\":\"switchover-ack\",\"state\":true}"
        for (( d=1; d<=ndest; d++ )); do
          qmp "dst$d" migrate-set-capabilities "{\"capabilities\":$caps]}" >/dev/null
        done ;;
  multifd) caps="$caps,{\"capability\":\"multifd\",\"state\":true}"
           for (( d=1; d<=ndest; d++ )); do
             qmp "dst$d" migrate-set-capabilities '{"capabilities":[{"capability":"multifd","state":true}]}' >/dev/null
             qmp "dst$d" migrate-set-parameters '{"multifd-channels":2}' >/dev/null
           done
           qmp src migrate-set-parameters '{"multifd-channels":2}' >/dev/null ;;
esac
qmp src migrate-set-capabilities "{\"capabilities\":$caps]}" >/dev/null
for (( d=1; d<=ndest; d++ )); do
  qmp "dst$d" migrate-incoming "{\"uri\":\"unix:$tmp/dst$d.in\"}" >/dev/null
done
qmp src migrate-set-parameters '{"max-bandwidth":1073741824,"downtime-limit":300}' >/dev/null

before=$(last_tick src)
echo "source guest at tick $before; migrating ($variant)"
qmp src migrate '{"uri":"unix:'"$tmp"'/src.out"}' >/dev/null
if [ "$variant" = hold ]; then
  # Held: QEMU copies and re-sends dirtied RAM but never switches over.
  poll_for 120 "the first pass to reach both destinations" bash -c \
    "$top/tests/qmp.py '$tmp/src.qmp' query-migrate | jq -e '.ram[\"dirty-sync-count\"] >= 3'" ||
    fail "the migration did not iterate: $(qmp src query-migrate)"
  t0=$(last_tick src); b0=$(jq -r 'select(.event == "stats") | .to[1].bytes' "$tmp/relay-src.json" | tail -n 1)
  sleep 8
  t1=$(last_tick src); b1=$(jq -r 'select(.event == "stats") | .to[1].bytes' "$tmp/relay-src.json" | tail -n 1)
  st=$(qmp src query-migrate | jq -r .status)
  echo "held 8 s: migration $st, guest ticks $t0 -> $t1, destination 2 bytes $b0 -> $b1"
  [ "$st" = active ] || fail "the held migration is $st"
  [ "$t1" -gt "$t0" ] || fail "the guest did not run while held"
  [ "$(qmp src query-status | jq -r .status)" = running ] || fail "the source paused while held"
  [ "$b1" -gt "$b0" ] || fail "dirtied RAM did not reach destination 2 while held"
  pkill -USR1 -f "handoff-xfer relay --listen unix:$tmp/src.out" ||
    fail "cannot signal the source relay"
fi
qmp src --wait-migration 300 > "$tmp/mig.json" || {
  cat "$tmp/mig.json" "$tmp"/relay-*.log
  fail "migration failed"
}
echo "source: $(jq -c '{status, "total-time", downtime, "mb": (.ram.transferred/1048576|floor)}' "$tmp/mig.json")"
[ "$(qmp src query-status | jq -r .status)" = postmigrate ] ||
  fail "the source is not in postmigrate"

dump () {
  for (( d=1; d<=ndest; d++ )); do
    echo "dst$d: $(qmp "dst$d" query-migrate)"; cat "$tmp/dst$d.log"
  done
  tail -n 3 "$tmp"/relay-*.json
  cat "$tmp"/relay-*.log
}
for (( d=1; d<=ndest; d++ )); do
  poll_for 60 "destination $d to receive everything" bash -c \
    "$top/tests/qmp.py '$tmp/dst$d.qmp' query-migrate | jq -e '.status == \"completed\"'" ||
    { dump; fail "destination $d did not complete"; }
  st=$(qmp "dst$d" query-status | jq -r .status)
  echo "destination $d: migration completed, guest $st"
done

# Resume the first destination; with several, the others quit.
qmp dst1 cont >/dev/null
for (( d=2; d<=ndest; d++ )); do qmp "dst$d" quit >/dev/null || true; done
wait_for 60 "ticks on the destination" bash -c \
  "[ -n \"\$(grep -a HANDOFF-TICK '$tmp/dst1.serial' | tail -n 2 | head -n 1)\" ]"
sleep 2
first=$(grep -a HANDOFF-TICK "$tmp/dst1.serial" | head -n 1 | awk '{print $2}' | tr -dc 0-9)
last=$(last_tick dst1)
src_last=$(last_tick src)
echo "source ended at tick $src_last; destination went on from $first to $last"
if grep -aq HANDOFF-BOOT "$tmp/dst1.serial"; then fail "the destination booted"; fi
[ "$first" -ge "$before" ] || fail "counter went back: $first < $before"
[ "$first" -le $((src_last + 1)) ] || fail "counter jumped: $first > $src_last + 1"
[ "$last" -gt "$first" ] || fail "the guest is not running on the destination"
[ "$(qmp dst1 query-status | jq -r .status)" = running ] || fail "dst1 not running"
# Two whole rounds of the RAM check: the second began on the destination.
wait_for 180 "two full checks of the guest's RAM on the destination" bash -c \
  "[ \$(grep -ac 'HANDOFF-RAM ok' '$tmp/dst1.serial') -ge 2 ]"
if grep -a "HANDOFF-RAM BAD" "$tmp"/*.serial; then fail "the guest's RAM changed"; fi
grep -q "HANDOFF-RAM filled mib=48" "$tmp/src.serial" ||
  fail "the guest did not fill its RAM before it moved"
echo "RAM: 48 MiB checked whole on the destination," \
  "$(grep -ac 'HANDOFF-RAM ok' "$tmp/dst1.serial") rounds, none bad"

# The relays carried every stream and exit cleanly.
for f in "$tmp"/relay-*.pid; do
  wait_for 30 "relay $(basename "$f") to finish" bash -c "! kill -0 \$(cat '$f') 2>/dev/null"
done
for f in "$tmp"/relay-*.json; do
  jq -e "select(.event == \"summary\") | .streams_done == $streams and .streams_failed == 0" "$f" >/dev/null ||
    { cat "$f"; fail "$(basename "$f"): not every stream finished"; }
done
echo "$0 $variant: PASS"
