#!/usr/bin/env bash
# A pre-warmed migration (handoff migrate --prewarm, then handoff
# cutover): the VM is copied to two hosts at once and held there warm
# - its disk mirrored, its RAM re-sent as the guest dirties it - while
# it keeps running on the source, for as long as nobody cuts over.
# Checked on three hosts (network namespaces) with the test guest
# writing records:
#   - held 30 s: the guest keeps writing on the source, both
#     destinations stay warm, and every record the source acknowledged
#     is already on each destination's disk, every line written to the
#     VM's directory in each one's copy of it;
#   - handoff cutover: the VM runs on exactly one destination with
#     every acknowledged record and line, and no other host holds
#     anything of it;
#   - handoff cutover --to HOST picks that host among the warm ones;
#   - handoff abort while warm: the VM runs on where it was, on its
#     own files again, and neither destination keeps anything;
#   - bad cutovers (no such VM, a host that is not a destination) are
#     refused and the VM stays warm;
#   - a destination's daemon alone restarted while warm: it drops its
#     copy, the source marks it lost, the other takes the VM
#   - a destination killed while warm (its whole host): the other stays
#     warm and takes the VM; the dead one drops what it had once back;
#   - a destination cut off (nft) while copying: the other goes on -
#     the guest goes on writing - and takes the VM; the cut one drops what
#     it had;
#   - the source's daemon restarted while warm: the VM runs on the
#     source and the destinations drop what they had;
#   - a cutover asked for while the copy cannot converge (a guest
#     dirtying RAM faster than its capped link) waits for it.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
guest_hosts 3

handoff keygen k.psk >/dev/null 2>&1
allow_boot='"boot_dirs": ["'$GUEST_DIR'"]'
for i in 1 2 3; do echo "{$allow_boot}" > "h$i.policy"; done
for i in 1 2 3; do start_handoffd "$i"; done
make_test_vm "$tmp/vm"
# web1 has a VM directory (its kernel, initrd and config), shared to
# both destinations at once.
define_guest 1 web1 "$tmp/vm" 128 records
hcli 1 start web1
wait_for 120 "the guest's records" grep -q "HANDOFF-REC 10" \
  "$tmp/h1/run/web1/serial.log"

acked_on ()                     # acked_on I: the last record host I's guest acknowledged
{
  serial_last REC "$tmp/h$1/run/web1/serial.log"
}

# prewarm FROM I J: start a pre-warmed migration to hosts I and J and
# wait until both hold it warm.
prewarm ()
{
  local from=$1
  hcli "$from" migrate web1 --to "host$2,host$3" --prewarm --detach ||
    fail "starting the pre-warmed migration"
  wait_for 180 "both destinations warm" bash -c \
    "[ \"\$(ip netns exec ${HOST_NS[$from]} handoff --socket $tmp/h$from.sock status web1 --json | jq -r '[.migration.phase] + [.migration.destinations[].state] | join(\" \")')\" = 'warm warm warm' ]"
  # No RDMA here: each destination took the RAM stream over TCP.
  [ "$(hcli "$from" status web1 --json | jq -r '[.migration.destinations[].transport] | join(" ")')" = "tcp tcp" ] ||
    fail "status does not say both RAM streams went over TCP"
}

# The disk a warm destination I is receiving.
warm_disk ()
{
  find "$tmp/h$1/images/web1" -maxdepth 1 -type f -name '*.img' | head -n 1
}

echo "== bad cutovers change nothing"
expect_fail () { if "$@" > out.txt 2>&1; then cat out.txt; fail "'$*' succeeded"; fi; cat out.txt; }
expect_fail hcli 1 cutover nosuch
grep -q "no migration of 'nosuch'" out.txt || fail "an unknown VM"
expect_fail hcli 1 cutover web1
grep -q "no migration of 'web1'" out.txt || fail "a VM that is not migrating"

echo "== pre-warm to two hosts, held 30 s"
prewarm 1 2 3
hcli 1 status web1
# A writer in the VM's directory, through the share, while warm.
notes_writer 1 web1 0.05
expect_fail hcli 1 cutover web1 --to host9
grep -q "host9 is not a destination" out.txt || fail "a host that is not a destination"
a0=$(acked_on 1)
sleep 30
a1=$(acked_on 1)
echo "held 30 s: the guest acknowledged records $a0 -> $a1 on host 1"
[ "$a1" -gt "$a0" ] || fail "the guest did not write while warm"
vm_runs_on 1 web1
[ "$(hcli 1 status web1 --json | jq -r .migration.phase)" = warm ] ||
  fail "the migration left the warm phase by itself"
# While warm, the guest's writes go through the mirror.
disks_on_mirror 1 web1
sleep 1
for i in 2 3; do
  on=$(check_records "$(warm_disk "$i")") || fail "host $i's warm copy"
  echo "host $i's warm disk has $on records (host 1 acknowledged $a1 a second ago)"
  [ "$on" -ge "$a1" ] || fail "host $i's warm copy lacks acknowledged records"
done
n1=$(cat notes.acked)
sleep 1
for i in 2 3; do
  grep -qx "note $n1" "$tmp/h$i/images/web1/dir.handoff-partial/notes.log" ||
    fail "host $i's warm directory lacks note $n1, acknowledged a second ago"
  echo "host $i's warm directory: $(wc -l < "$tmp/h$i/images/web1/dir.handoff-partial/notes.log") notes" \
       "(note $n1 acknowledged on host 1 a second ago)"
done

echo "== cutover"
hcli 1 cutover web1 --json > cut.json || { cat cut.json; fail "cutover"; }
jq -c 'select(.event == "result" or .event == "destination")' cut.json
w=$(jq -r 'select(.event == "result") | .to' cut.json); w=${w#host}
[ "$w" = 2 ] || [ "$w" = 3 ] || fail "the winner is '$w'"
jq -e 'select(.event == "result") | .ok and .cutover_ms > 0 and .downtime_ms > 0' cut.json >/dev/null ||
  fail "the result lacks the cutover time or the downtime"
echo "host $w won: cutover $(jq -r 'select(.event == "result") | .cutover_ms' cut.json) ms," \
     "downtime $(jq -r 'select(.event == "result") | .downtime_ms' cut.json) ms"
vm_runs_on "$w" web1
serial=$(ls -td "$tmp"/h1/logs/web1-host1-*/ | head -n 1)serial.log
acked=$(serial_last REC "$serial")
on_w=$(check_records "$(hcli "$w" status web1 --json | jq -r '.def.disks[0].path')") ||
  fail "host $w's records"
echo "records: $acked acknowledged on host 1, $on_w on host $w"
[ "$on_w" -ge "$acked" ] || fail "host $w lacks acknowledged records"
for i in 1 2 3; do [ "$i" = "$w" ] || vm_gone_from "$i" web1; done
# The writer ends when the directory leaves host 1 (read-only there).
wait_for 30 "the writer to stop" bash -c "! kill -0 \$(cat '$tmp/writer.pid') 2>/dev/null"
n_acked=$(cat notes.acked)
grep -qx "note $n_acked" "$tmp/h$w/images/web1/dir/notes.log" ||
  fail "acknowledged note $n_acked is not in host $w's directory"
cmp "$tmp/vm/vmlinux" "$tmp/h$w/images/web1/dir/vmlinux" ||
  fail "host $w's copy of the directory differs"
echo "notes: $n_acked acknowledged on host 1, $(wc -l < "$tmp/h$w/images/web1/dir/notes.log") on host $w"

echo "== cutover --to one of the warm hosts"
o=(); for i in 1 2 3; do [ "$i" = "$w" ] || o+=("$i"); done
prewarm "$w" "${o[0]}" "${o[1]}"
hcli "$w" cutover web1 --to "host${o[1]}" > cut2.out || { cat cut2.out; fail "cutover --to"; }
cat cut2.out
grep -q "web1 now runs on host${o[1]}" cut2.out || fail "the VM did not go to host ${o[1]}"
vm_runs_on "${o[1]}" web1
vm_gone_from "$w" web1; vm_gone_from "${o[0]}" web1
disks_on_files "${o[1]}" web1
at=${o[1]}

echo "== abort while warm: the VM stays, the warm copies go"
o=(); for i in 1 2 3; do [ "$i" = "$at" ] || o+=("$i"); done
prewarm "$at" "${o[0]}" "${o[1]}"
hcli "$at" abort web1 || fail "abort of a warm migration"
wait_for 60 "the aborted migration to end" bash -c \
  "! ip netns exec ${HOST_NS[$at]} handoff --socket $tmp/h$at.sock status web1 --json | jq -e .migration >/dev/null"
vm_runs_on "$at" web1
disks_on_files "$at" web1
vm_gone_from "${o[0]}" web1; vm_gone_from "${o[1]}" web1

echo "== a destination dies while warm: the survivor takes the VM"
o=(); for i in 1 2 3; do [ "$i" = "$at" ] || o+=("$i"); done
prewarm "$at" "${o[0]}" "${o[1]}"
crash_host "${o[0]}"
wait_for 60 "host ${o[0]} to be lost" bash -c \
  "ip netns exec ${HOST_NS[$at]} handoff --socket $tmp/h$at.sock status web1 --json | jq -e '.migration.destinations[] | select(.host == \"host${o[0]}\") | .state == \"lost\"' >/dev/null"
vm_runs_on "$at" web1
[ "$(hcli "$at" status web1 --json | jq -r .migration.phase)" = warm ] ||
  fail "the migration left the warm phase when a destination died"
hcli "$at" cutover web1 > cut3.out || { cat cut3.out; fail "cutover to the survivor"; }
grep -q "web1 now runs on host${o[1]}" cut3.out || fail "the survivor did not take the VM"
vm_runs_on "${o[1]}" web1; vm_gone_from "$at" web1
start_handoffd "${o[0]}"
vm_gone_from "${o[0]}" web1
at=${o[1]}

echo "== a destination's daemon alone restarts while warm: it drops its copy, the other takes the VM"
o=(); for i in 1 2 3; do [ "$i" = "$at" ] || o+=("$i"); done
prewarm "$at" "${o[0]}" "${o[1]}"
# The daemon alone (the pid file names the shell that started it): its
# QEMU and helpers are left to the daemon that comes back.
hd_pid=$(pgrep -P "$(cat "$tmp/h${o[0]}.pid")" -x handoffd) ||
  fail "no handoffd on host ${o[0]}"
kill -KILL "$hd_pid"
wait_for 10 "handoffd on host ${o[0]} to die" bash -c "! kill -0 $hd_pid 2>/dev/null"
start_handoffd "${o[0]}"
wait_for 60 "host ${o[0]} to be lost" bash -c \
  "ip netns exec ${HOST_NS[$at]} handoff --socket $tmp/h$at.sock status web1 --json | jq -e '.migration.destinations[] | select(.host == \"host${o[0]}\") | .state == \"lost\"' >/dev/null"
# Its restart found a warm copy it can no longer be part of: gone.
vm_gone_from "${o[0]}" web1
[ "$(hcli "$at" status web1 --json | jq -r .migration.phase)" = warm ] ||
  fail "the migration left the warm phase when a destination's daemon restarted"
vm_runs_on "$at" web1
hcli "$at" cutover web1 > cut5.out || { cat cut5.out; fail "cutover after a destination's restart"; }
grep -q "web1 now runs on host${o[1]}" cut5.out || fail "the other destination did not take the VM"
vm_runs_on "${o[1]}" web1; vm_gone_from "$at" web1; vm_gone_from "${o[0]}" web1
at=${o[1]}

echo "== a destination cut off while copying: the other goes on and takes the VM"
o=(); for i in 1 2 3; do [ "$i" = "$at" ] || o+=("$i"); done
# A slow link, so that the copy still runs when the cut comes.
host_rate "$at" 50mbit
hcli "$at" migrate web1 --to "host${o[0]},host${o[1]}" --prewarm --detach ||
  fail "starting the pre-warmed migration"
wait_for 60 "the disk and the directory copying to both" bash -c \
  "[ \"\$(ip netns exec ${HOST_NS[$at]} handoff --socket $tmp/h$at.sock status web1 --json | jq -r '[.migration.phase] + [.migration.destinations[].state] | join(\" \")')\" = 'storage copying copying' ]"
sleep 2
host_cut "${o[0]}"
cleanup_fn host_heal "${o[0]}"
a0=$(acked_on "$at")
wait_for 90 "host ${o[0]} to be lost" bash -c \
  "ip netns exec ${HOST_NS[$at]} handoff --socket $tmp/h$at.sock status web1 --json | jq -e '.migration.destinations[] | select(.host == \"host${o[0]}\") | .state == \"lost\"' >/dev/null"
# (Shown for the log only; the wait above checked the state.)
hcli "$at" status web1 --json | jq -c '.migration.destinations[]' ||
  echo "(status did not answer this time)"
host_rate "$at" 10gbit
wait_for 180 "host ${o[1]} warm" bash -c \
  "[ \"\$(ip netns exec ${HOST_NS[$at]} handoff --socket $tmp/h$at.sock status web1 --json | jq -r '[.migration.phase] + [.migration.destinations[] | select(.host == \"host${o[1]}\") | .state] | join(\" \")')\" = 'warm warm' ]"
# The guest's writes in flight to the cut-off host wait for the
# mirror's destination timeout (the I/O timeout, 15 s here), which may
# end after the source has already found the host lost: then it goes
# on writing.
poll_for 60 "the guest to write again after the cut" bash -c \
  "[ \"\$(serial_last REC '$tmp/h$at/run/web1/serial.log')\" -gt '$a0' ]" ||
  fail "the guest stopped writing when a destination was cut off"
vm_runs_on "$at" web1
hcli "$at" cutover web1 > cut4.out || { cat cut4.out; fail "cutover to the one left"; }
grep -q "web1 now runs on host${o[1]}" cut4.out || fail "the destination left did not take the VM"
vm_runs_on "${o[1]}" web1; vm_gone_from "$at" web1
cmp "$tmp/vm/vmlinux" "$tmp/h${o[1]}/images/web1/dir/vmlinux" ||
  fail "host ${o[1]}'s copy of the directory differs"
host_heal "${o[0]}"
vm_gone_from "${o[0]}" web1
at=${o[1]}

echo "== the source's daemon restarts while warm"
o=(); for i in 1 2 3; do [ "$i" = "$at" ] || o+=("$i"); done
prewarm "$at" "${o[0]}" "${o[1]}"
stop_handoffd "$at"
start_handoffd "$at"
wait_for 60 "the migration to be rolled back" bash -c \
  "ip netns exec ${HOST_NS[$at]} handoff --socket $tmp/h$at.sock status web1 | grep -q 'QEMU: running'"
vm_runs_on "$at" web1
vm_gone_from "${o[0]}" web1; vm_gone_from "${o[1]}" web1
a0=$(acked_on "$at"); sleep 3
[ "$(acked_on "$at")" -gt "$a0" ] || fail "the guest does not write on host $at after the restart"
echo "== a cutover asked for before the exit condition holds waits for it"
# A guest rewriting 32 MiB of RAM (not zeros) over and over, its
# host's link then capped far below that: the copy cannot converge, and
# the cutover waits until the cap is lifted.
o=(); for i in 1 2 3; do [ "$i" = "$at" ] || o+=("$i"); done
truncate -s 16M dirty.img
hcli "$at" define dirty1 --memory 128 --disk "$tmp/dirty.img" \
  --kernel "$GUEST_DIR/vmlinux" --initrd "$GUEST_DIR/initrd.gz" \
  --append "console=ttyS0 quiet panic=-1 handoff.mode=churn"
hcli "$at" start dirty1
wait_for 120 "the dirtying guest" grep -q "HANDOFF-TICK 3" "$tmp/h$at/run/dirty1/serial.log"
hcli "$at" migrate dirty1 --to "host${o[0]}" --prewarm --detach
wait_for 180 "dirty1 warm" bash -c \
  "[ \"\$(ip netns exec ${HOST_NS[$at]} handoff --socket $tmp/h$at.sock status dirty1 --json | jq -r .migration.phase)\" = warm ]"
host_rate "$at" 8mbit
sleep 3
hcli "$at" cutover dirty1 --json > cutd.json &
cut=$!
sleep 10
kill -0 "$cut" 2>/dev/null || { cat cutd.json; fail "the cutover did not wait for the copy to converge"; }
[ "$(hcli "$at" status dirty1 --json | jq -r .migration.phase)" = warm ] ||
  fail "dirty1 left the warm phase before the exit condition held"
hcli "$at" status dirty1 | grep -q "QEMU: running" || fail "dirty1 paused while waiting"
echo "after 10 s on the capped link the cutover still waits; lifting the cap"
host_rate "$at" 10gbit
wait "$cut" || { cat cutd.json; fail "the cutover after the cap was lifted"; }
jq -c 'select(.event == "phase" or .event == "result")' cutd.json
jq -e 'select(.event == "result") | .ok and .cutover_ms >= 10000' cutd.json >/dev/null ||
  fail "the cutover did not wait"
hcli "${o[0]}" status dirty1 | grep -q "QEMU: running" || fail "dirty1 does not run on host ${o[0]}"
echo "$0: PASS"
