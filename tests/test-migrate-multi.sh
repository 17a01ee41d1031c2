#!/usr/bin/env bash
# One VM copied to several hosts at once (handoff migrate --to A,B):
# its disk is mirrored to every destination and its RAM stream teed to
# each; every destination loads the VM and keeps it paused; the first
# to report it loaded is told to resume it, the others drop everything
# they received.  Checked, over several migrations between three
# hosts (network namespaces) with the test guest writing records:
# exactly one host runs the VM afterwards, every record acknowledged
# before the pause is on its disk, and every other host holds nothing
# of it: no files, no processes in its namespace, no rows.  A refusing
# destination, a destination that dies while copying, destinations
# that all refuse, and bad --to lists each get their own case; then
# --cascade: the winner of one migration moves the VM on by itself;
# last, --quorum, and destinations slow to answer: none holds up the
# others.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
guest_hosts 3

handoff keygen k.psk >/dev/null 2>&1
# The guest has no VM directory: its kernel is shared, outside it.
allow_boot='"boot_dirs": ["'$GUEST_DIR'"]'
for i in 1 2 3; do echo "{$allow_boot}" > "h$i.policy"; done
for i in 1 2 3; do start_handoffd "$i"; done
make_test_vm "$tmp/vm"
hcli 1 define web1 --memory 192 --disk "$tmp/vm.img" \
  --kernel "$GUEST_DIR/vmlinux" --initrd "$GUEST_DIR/initrd.gz" \
  --append "console=ttyS0 quiet panic=-1 handoff.mode=records handoff.ram=32"
hcli 1 start web1
wait_for 120 "the guest's records" grep -q "HANDOFF-REC 10" \
  "$tmp/h1/run/web1/serial.log"

# The one host that lists web1.
owner () { vm_owner web1 3; }

# migrate_multi FROM I,J: web1 goes from host FROM to host I and J;
# prints the winner's number.
migrate_multi ()
{
  local from=$1 a=${2%,*} b=${2#*,} w serial acked on_w disk
  hcli "$from" migrate web1 --to "host$a,host$b" --json > mig.json ||
    { cat mig.json; fail "migrating from host $from to hosts $a and $b"; }
  w=$(jq -r 'select(.event == "result") | .to' mig.json)
  w=${w#host}
  [ "$w" = "$a" ] || [ "$w" = "$b" ] || fail "the winner is '$w'"
  [ "$(owner)" = "$w" ] || fail "the result names host $w, another host lists web1"
  vm_runs_on "$w" web1
  for i in 1 2 3; do [ "$i" = "$w" ] || vm_gone_from "$i" web1; done
  jq -c 'select(.event == "destination")' mig.json >&2
  [ "$(jq -r 'select(.event == "destination" and .state == "running") | .host' mig.json)" = "host$w" ] ||
    fail "the events do not show host $w running the VM"
  [ "$(jq -r 'select(.event == "destination" and .state == "discarded") | .host' mig.json | wc -l)" = 1 ] ||
    fail "the loser was not discarded"
  serial=$(ls -td "$tmp/h$from"/logs/web1-host"$from"-*/ | head -n 1)serial.log
  acked=$(serial_last REC "$serial")
  disk=$(hcli "$w" status web1 --json | jq -r '.def.disks[0].path')
  on_w=$(check_records "$disk") || fail "host $w's records"
  echo "host $from -> hosts $a,$b: host $w won; records: $acked acknowledged," \
       "$on_w on host $w's disk" >&2
  [ "$on_w" -ge "$acked" ] || fail "host $w lacks acknowledged records"
  wait_for 60 "the guest to write on host $w" \
    grep -q "HANDOFF-REC $((on_w + 2))" "$tmp/h$w/run/web1/serial.log"
  echo "$w"
}

echo "== bad destination lists change nothing"
expect_rc 1 "names host2 twice" hcli 1 migrate web1 --to host2,host2
expect_rc 8 "unknown host 'host9'" hcli 1 migrate web1 --to host2,host9
expect_rc 1 "expected HOST" hcli 1 migrate web1 --to host2,
expect_rc 1 "host1 is this host" hcli 1 migrate web1 --to host1,host2
vm_runs_on 1 web1; vm_gone_from 2 web1; vm_gone_from 3 web1

echo "== every destination refuses: the VM stays"
for i in 2 3; do echo "{$allow_boot, \"allowed_sources\": [\"host9\"]}" > "h$i.policy"; done
expect_rc 4 "not allowed" hcli 1 migrate web1 --to host2,host3
vm_runs_on 1 web1; vm_gone_from 2 web1; vm_gone_from 3 web1

echo "== one destination refuses: the other takes the VM"
echo "{$allow_boot}" > h2.policy
hcli 1 migrate web1 --to host3,host2 --json > mig.json ||
  { cat mig.json; fail "the migration with one refusal"; }
jq -c 'select(.event == "destination")' mig.json
jq -se 'any(.[]; .event == "destination" and .host == "host3" and .state == "failed" and (.reason | test("not allowed")))' mig.json >/dev/null ||
  fail "host 3's refusal is not reported"
[ "$(jq -r 'select(.event == "result") | .to' mig.json)" = host2 ] || fail "the VM did not go to host 2"
[ "$(owner)" = 2 ] || fail "host 2 does not own web1"
vm_runs_on 2 web1; vm_gone_from 1 web1; vm_gone_from 3 web1
echo "{$allow_boot}" > h3.policy

echo "== races: both destinations load, one runs the VM"
# Each round the two destinations answer after a random delay once
# loaded, and the source waits a random time between choosing and
# telling the winner: whoever is first, exactly one host runs the VM.
rounds=${RACE_ROUNDS:-20}
at=2
declare -A wins
for i in 1 2 3; do
  stop_handoffd "$i"
  HANDOFF_TEST_DELAY_AT=loaded:~200,complete_sent:~100 start_handoffd "$i"
done
for (( round=1; round<=rounds; round++ )); do
  others=$(for i in 1 2 3; do [ "$i" = "$at" ] || echo -n "$i,"; done)
  at=$(migrate_multi "$at" "${others%,}")
  wins[$at]=$(( ${wins[$at]:-0} + 1 ))
  echo "round $round: the VM runs on host $at"
done
echo "$rounds races: won by host 1 ${wins[1]:-0}, host 2 ${wins[2]:-0}, host 3 ${wins[3]:-0} times"
ram_intact_on "$at" web1
for i in 1 2 3; do stop_handoffd "$i"; start_handoffd "$i"; done

echo "== fallback: the named destination refuses, the fallback host takes the VM"
o=(); for i in 1 2 3; do [ "$i" = "$at" ] || o+=("$i"); done
deny="{$allow_boot, \"allowed_sources\": [\"host9\"]}"
echo "$deny" > "h${o[0]}.policy"
hcli "$at" migrate web1 --to "host${o[0]}" --fallback "host${o[1]}" --json > fb.json ||
  { cat fb.json; fail "the migration with a fallback"; }
jq -c 'select(.event == "attempt" or .event == "result")' fb.json
jq -se "any(.[]; .event == \"attempt\" and .attempt == 2 and .to == \"host${o[1]}\" and (.previous_error | test(\"not allowed\")))" fb.json >/dev/null ||
  fail "no second attempt to the fallback host"
jq -e "select(.event == \"result\") | .ok and .to == \"host${o[1]}\" and .attempt == 2 and .attempts == 2" fb.json >/dev/null ||
  fail "the result does not name the fallback host and the attempt"
[ "$(sqlite3 "$tmp/h$at/state.db" "select group_concat(result, ' ') from (select result from journal where vm = 'web1' and role = 'source' order by started desc limit 2)")" = "done refused" ] ||
  fail "the journal does not show both attempts"
[ "$(owner)" = "${o[1]}" ] || fail "web1 is not on the fallback host"
vm_runs_on "${o[1]}" web1; vm_gone_from "$at" web1; vm_gone_from "${o[0]}" web1
at=${o[1]}

echo "== every attempt refused: the VM stays, and says why"
o=(); for i in 1 2 3; do [ "$i" = "$at" ] || o+=("$i"); done
for i in "${o[@]}"; do echo "$deny" > "h$i.policy"; done
expect_rc 4 "attempt 3 of 3.*not allowed" \
  hcli "$at" migrate web1 --to "host${o[0]}" --fallback "host${o[1]}" --retries 1
vm_runs_on "$at" web1; vm_gone_from "${o[0]}" web1; vm_gone_from "${o[1]}" web1
for i in 1 2 3; do echo "{$allow_boot}" > "h$i.policy"; done
expect_rc 1 "--retries" hcli "$at" migrate web1 --to "host${o[0]}" --retries 11
expect_rc 8 "unknown host 'host9'" hcli "$at" migrate web1 --to "host${o[0]}" --fallback host9

echo "== status shows each destination while the VM moves"
others=$(for i in 1 2 3; do [ "$i" = "$at" ] || echo -n "host$i,"; done)
host_rate "$at" 100mbit
hcli "$at" migrate web1 --to "${others%,}" --json > mig.json &
mig=$!
wait_for 60 "both destinations copying" bash -c \
  "[ \"\$(ip netns exec ${HOST_NS[$at]} handoff --socket $tmp/h$at.sock status web1 --json | jq -r '[.migration.destinations[] | select(.state == \"copying\")] | length')\" = 2 ]"
# A destination dies while copying: the other takes the VM.
lost=${others%%,*}; lost=${lost#host}
crash_host "$lost"
wait_for 60 "host $lost reported lost" bash -c \
  "ip netns exec ${HOST_NS[$at]} handoff --socket $tmp/h$at.sock status web1 --json | jq -e '.migration.destinations[] | select(.host == \"host$lost\") | .state == \"lost\" or .state == \"failed\"' >/dev/null"
# status --watch joining now shows where each destination stands, then
# follows the migration live to its result.
hcli "$at" status web1 --watch --json > watch.json &
watcher=$!
wait $mig || { cat mig.json; fail "the migration with a destination lost"; }
jq -c 'select(.event == "destination")' mig.json
jq -se "any(.[]; .event == \"destination\" and .host == \"host$lost\" and (.state == \"lost\" or .state == \"failed\"))" mig.json >/dev/null ||
  fail "host $lost is not reported lost"
host_rate "$at" 10gbit
wait "$watcher" || { cat watch.json; fail "status --watch"; }
jq -se "any(.[]; .event == \"destination\" and .host == \"host$lost\" and (.state == \"lost\" or .state == \"failed\")) and any(.[]; .event == \"phase\") and any(.[]; .event == \"progress\") and (.[-1] | .event == \"result\" and .ok)" watch.json >/dev/null ||
  { cat watch.json; fail "status --watch did not follow the migration to its result"; }
new=$(owner)
[ "$new" != "$lost" ] && [ "$new" != "$at" ] || fail "web1 is on host $new"
vm_runs_on "$new" web1
vm_gone_from "$at" web1
# The lost host comes back and drops what it had received.
start_handoffd "$lost"
wait_for 30 "host $lost to drop what it received" bash -c \
  "[ ! -e '$tmp/h$lost/images/web1' ]"
vm_gone_from "$lost" web1

echo "== --cascade: the winner migrates the VM on by itself"
o=(); for i in 1 2 3; do [ "$i" = "$new" ] || o+=("$i"); done
expect_rc 1 "already a destination" \
  hcli "$new" migrate web1 --to "host${o[0]}" --cascade "host${o[0]}"
expect_rc 1 "names host${o[1]} twice" \
  hcli "$new" migrate web1 --to "host${o[0]}" --cascade "host${o[1]},host${o[1]}"
expect_rc 1 "--cascade is for live migrations" \
  hcli "$new" migrate web1 --to "host${o[0]}" --cascade "host${o[1]}" --mode volume
vm_runs_on "$new" web1
hcli "$new" migrate web1 --to "host${o[0]}" --cascade "host${o[1]}" > cas.out ||
  { cat cas.out; fail "the migration with --cascade"; }
cat cas.out
grep -q "host${o[0]} migrates it on to host${o[1]}" cas.out ||
  fail "the result does not name the cascade"
wait_for 120 "web1 to go on to host ${o[1]}" bash -c \
  "ip netns exec ${HOST_NS[${o[1]}]} handoff --socket $tmp/h${o[1]}.sock status web1 2>/dev/null | grep -q 'QEMU: running'"
wait_for 60 "host ${o[0]} to release web1" bash -c \
  "! ip netns exec ${HOST_NS[${o[0]}]} handoff --socket $tmp/h${o[0]}.sock list --json | jq -r '.vms[].name' | grep -qx web1"
[ "$(owner)" = "${o[1]}" ] || fail "web1 is not on host ${o[1]} after the cascade"
vm_runs_on "${o[1]}" web1; vm_gone_from "$new" web1; vm_gone_from "${o[0]}" web1
grep -q "goes on to host${o[1]} (--cascade)" "$tmp/h${o[0]}.log" ||
  fail "host ${o[0]}'s log does not show the cascade"
serial=$(ls -td "$tmp/h${o[0]}"/logs/web1-host"${o[0]}"-*/ | head -n 1)serial.log
acked=$(serial_last REC "$serial")
on=$(check_records "$(hcli "${o[1]}" status web1 --json | jq -r '.def.disks[0].path')") ||
  fail "host ${o[1]}'s records"
echo "after the cascade: $acked records acknowledged on host ${o[0]}, $on on host ${o[1]}"
[ "$on" -ge "$acked" ] || fail "host ${o[1]} lacks acknowledged records"

echo "== --quorum: a slow destination is left behind, or waited for"
at=${o[1]}
o=(); for i in 1 2 3; do [ "$i" = "$at" ] || o+=("$i"); done
both="host${o[0]},host${o[1]}"
expect_rc 1 "--quorum" hcli "$at" migrate web1 --to "$both" --quorum 0
expect_rc 1 "--quorum" hcli "$at" migrate web1 --to "$both" --quorum 101
expect_rc 1 "--quorum is for several destinations" \
  hcli "$at" migrate web1 --to "host${o[0]}" --quorum 50
# Any one (the default): host o[0] has every stream copied long before
# the slow host o[1] has its disk, and takes the VM without it.
host_inrate "${o[1]}" 4mbit
hcli "$at" migrate web1 --to "$both" --json > q.json ||
  { host_inrate "${o[1]}" off; cat q.json; fail "the migration leaving a slow host behind"; }
host_inrate "${o[1]}" off
jq -c 'select(.event == "destination")' q.json
jq -e "select(.event == \"result\") | .ok and .to == \"host${o[0]}\"" q.json >/dev/null ||
  fail "the fast host did not take the VM"
jq -se "all(.[]; .event != \"destination\" or .host != \"host${o[1]}\" or (.state | IN(\"admitting\", \"copying\", \"discarded\", \"lost\")))" q.json >/dev/null ||
  fail "the slow host was waited for (it loaded the VM)"
jq -se "any(.[]; .event == \"destination\" and .host == \"host${o[1]}\" and (.state == \"discarded\" or .state == \"lost\"))" q.json >/dev/null ||
  fail "the slow host was not left behind"
[ "$(owner)" = "${o[0]}" ] || fail "web1 is not on host ${o[0]}"
vm_gone_from "$at" web1
wait_for 30 "host ${o[1]} to drop what it received" bash -c \
  "[ ! -e '$tmp/h${o[1]}/images/web1' ]"
vm_gone_from "${o[1]}" web1
# --quorum 100: nothing moves on while the slow host is behind.
at=${o[0]}
o=(); for i in 1 2 3; do [ "$i" = "$at" ] || o+=("$i"); done
both="host${o[0]},host${o[1]}"
host_inrate "${o[1]}" 4mbit
hcli "$at" migrate web1 --to "$both" --quorum 100 --json > q.json &
mig=$!
st ()
{
  ip netns exec "${HOST_NS[$at]}" handoff --socket "$tmp/h$at.sock" status web1 --json
}
wait_for 60 "host ${o[0]} to have the disk" bash -c \
  "ip netns exec ${HOST_NS[$at]} handoff --socket $tmp/h$at.sock status web1 --json | jq -e '.migration.destinations[] | select(.host == \"host${o[0]}\") | .remaining < 1048576' >/dev/null"
sleep 3
st | jq -c '.migration | {phase, destinations}'
st | jq -e ".migration.phase == \"storage\" and any(.migration.destinations[]; .host == \"host${o[1]}\" and .state == \"copying\" and .remaining > 1048576)" >/dev/null ||
  { host_inrate "${o[1]}" off; fail "--quorum 100 did not wait for the slow host"; }
host_inrate "${o[1]}" off
wait $mig || { cat q.json; fail "the migration with --quorum 100"; }
jq -c 'select(.event == "destination")' q.json
for h in "${o[@]}"; do
  jq -se "any(.[]; .event == \"destination\" and .host == \"host$h\" and .state == \"loading\")" q.json >/dev/null ||
    fail "host $h did not load the VM under --quorum 100"
done
w=$(jq -r 'select(.event == "result") | .to' q.json); w=${w#host}
[ "$(owner)" = "$w" ] || fail "web1 is not on the winner, host $w"
vm_runs_on "$w" web1
ram_intact_on "$w" web1

# TO=LIST past_slow_host SLOW HOOK FROM FAST: host SLOW's daemon
# restarted to hold HOOK (PHASE:MS); web1 goes from host FROM to the
# hosts of LIST (SLOW and FAST), and host FAST must take it; the events
# are in slow.json.
past_slow_host ()
{
  local slow=$1 hook=$2 from=$3 fast=$4
  stop_handoffd "$slow"
  HANDOFF_TEST_DELAY_AT=$hook start_handoffd "$slow"
  hcli "$from" migrate web1 --to "$TO" --json > slow.json ||
    { cat slow.json; fail "the migration with host $slow held at $hook"; }
  jq -c 'select(.event == "destination" or .event == "result")' slow.json
  jq -e "select(.event == \"result\") | .ok and .to == \"host$fast\"" slow.json >/dev/null ||
    fail "the VM did not go to host $fast"
  [ "$(owner)" = "$fast" ] || fail "web1 is not on host $fast"
  vm_runs_on "$fast" web1; vm_gone_from "$from" web1
}

echo "== a destination slow to answer in the blackout holds no one up"
# It takes 12 s to accept the VM's held events (its I/O timeout is
# 15 s): the other destination loads and runs the VM meanwhile.
at=$w
o=(); for i in 1 2 3; do [ "$i" = "$at" ] || o+=("$i"); done
TO=host${o[0]},host${o[1]} past_slow_host "${o[1]}" events_received:12000 "$at" "${o[0]}"
jq -e 'select(.event == "result") | .downtime_ms < 6000 and .downtime_seen_ms < 6000' slow.json >/dev/null ||
  fail "the slow destination held up the blackout"
vm_gone_from "${o[1]}" web1
stop_handoffd "${o[1]}"; start_handoffd "${o[1]}"

echo "== a destination slow to start QEMU is left behind"
# Its START_VM answer comes 25 s late: once the other destination has
# its QEMU the source waits 10 s more, no longer, then goes on without
# it (asked in turn, every later destination waited behind it).
at=${o[0]}
o=(); for i in 1 2 3; do [ "$i" = "$at" ] || o+=("$i"); done
TO=host${o[0]},host${o[1]} past_slow_host "${o[0]}" vm_started:25000 "$at" "${o[1]}"
jq -se "any(.[]; .event == \"destination\" and .host == \"host${o[0]}\" and .state == \"failed\" and (.reason | test(\"START_VM: no answer within 10 s\")))" slow.json >/dev/null ||
  fail "host ${o[0]} was not left behind at START_VM"
wait_for 90 "host ${o[0]} to drop what it received" bash -c \
  "[ ! -e '$tmp/h${o[0]}/images/web1' ]"
vm_gone_from "${o[0]}" web1
stop_handoffd "${o[0]}"; start_handoffd "${o[0]}"
echo "$0: PASS"
