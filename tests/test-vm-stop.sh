#!/usr/bin/env bash
# 'handoff stop' is the guest's own shutdown, as virsh shutdown: the
# ACPI power button, then a wait (--timeout) for the guest to power
# off, then the VM's disk and share servers stop.  A guest that ignores
# the button keeps running and stop fails with exit 6 (timeout),
# changing nothing; --force powers it off at once (virsh destroy).
# Every record the guest wrote before the button is on its disk.
# 'handoff migrate --offline' then moves the stopped VM, as virsh
# migrate --offline: its disk and directory copied whole, it stays
# stopped on the destination, which can start it (every record there),
# and the source holds nothing of it; a running VM is refused.  Either
# daemon killed during an offline migration: after its restart the VM
# is on exactly one host, stopped - the source's before the destination
# recorded it, the destination's after.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
guest_hosts 2

start_handoffd 1
start_handoffd 2
make_test_vm "$tmp/vm1"
make_test_vm "$tmp/vm2"
define_guest 1 web1 "$tmp/vm1" 128 records
define_guest 1 web2 "$tmp/vm2" 128 "idle handoff.acpi=ignore"
hcli 1 start web1
hcli 1 start web2
s1=$tmp/h1/run/web1/serial.log s2=$tmp/h1/run/web2/serial.log
wait_for 120 "web1's records" grep -q "HANDOFF-REC 5" "$s1"
wait_for 120 "web2 to boot" grep -q "HANDOFF-TICK 3" "$s2"

echo "== stop: the guest powers off by itself, its records are on its disk"
# The run directory (and the console log in it) goes with the VM.
tail -F "$s1" > web1.serial 2>/dev/null &
echo $! > tail.pid
cleanup_fn kill_pidfile "$tmp/tail.pid"
hcli 1 stop web1 --timeout 60s
grep -q "VM web1 powered off [0-9]* ms after the ACPI power button" h1.log ||
  fail "web1 did not power itself off"
kill_pidfile "$tmp/tail.pid"
grep -q HANDOFF-POWER-BUTTON web1.serial || fail "web1 never saw the power button"
acked=$(serial_last REC web1.serial)
last_rec=$(check_records "$tmp/vm1.img") || fail "web1's records after stop"
[ "$acked" -le "$last_rec" ] || fail "web1's disk ends at record $last_rec, it wrote $acked"
[ "$(hcli 1 list --json | jq -r '.vms[] | select(.name == "web1") | .state')" = stopped ] ||
  fail "web1 is not recorded as stopped"
vm_qemu_on 1 web1 && fail "web1's QEMU still runs"
[ ! -e "$tmp/h1/run/web1" ] || fail "web1's run directory is left behind"

echo "== stop of a guest that ignores the button: exit 6, the VM runs on"
t0=$(date +%s%N)
expect_rc 6 "did not power off within 2000 ms.*--force" hcli 1 stop web2 --timeout 2s
t1=$(date +%s%N)
(( (t1 - t0) / 1000000 >= 2000 )) || fail "stop gave up before its timeout"
vm_qemu_on 1 web2 || fail "a failed stop stopped web2"
hcli 1 status web2 | grep -q "QEMU: running" || fail "web2 is not running after a failed stop"
ticks=$(grep -ac HANDOFF-TICK "$s2")
wait_for 20 "web2 to tick on" bash -c "[ \$(grep -ac HANDOFF-TICK '$s2') -gt $ticks ]"
out=$(hcli 1 stop web2 --timeout 1s --json) && fail "stop --json succeeded"
jq -e '.ok == false and .code == 6 and (.error | test("--force"))' <<<"$out" >/dev/null ||
  fail "stop --json failure object: $out"

echo "== --offline refuses a running VM, and more than one destination"
expect_rc 1 "VM web2 is running: --offline moves a stopped VM" \
  hcli 1 migrate web2 --to host2 --offline
expect_rc 1 "an offline migration takes one destination" \
  hcli 1 migrate web1 --to host2,host3 --offline
expect_rc 1 "VM web1 is not running.*--offline" hcli 1 migrate web1 --to host2
vm_qemu_on 1 web2 || fail "a refused offline migration stopped web2"

echo "== stop --force powers it off at once"
hcli 1 stop web2 --force
vm_qemu_on 1 web2 && fail "web2's QEMU still runs after --force"
[ "$(hcli 1 list --json | jq -r '.vms[] | select(.name == "web2") | .state')" = stopped ] ||
  fail "web2 is not recorded as stopped"

echo "== migrate --offline: web1, stopped, moves to host 2 and starts there"
hcli 1 migrate web1 --to host2 --offline > offline.out ||
  { cat offline.out; fail "the offline migration failed"; }
cat offline.out
grep -q "web1 is now on host2, stopped" offline.out || fail "offline: the result"
[ -z "$(hcli 1 list --json | jq -r '.vms[] | select(.name == "web1") | .name')" ] ||
  fail "host 1 still lists web1"
row=$(hcli 2 list --json | jq -c '.vms[] | select(.name == "web1")')
[ "$(jq -r .state <<<"$row")" = stopped ] || fail "web1 on host 2: $row"
disk2=$(hcli 2 status web1 --json | jq -r '.vm.def.disks[0].path // .def.disks[0].path')
dir2=$(hcli 2 status web1 --json | jq -r '.vm.def.dir // .def.dir')
cmp "$tmp/vm1.img" "$disk2" || fail "web1's disk on host 2 differs from host 1's"
diff -r "$tmp/vm1" "$dir2" || fail "web1's directory on host 2 differs"
vm_qemu_on 2 web1 && fail "an offline migration started web1"
hcli 2 start web1
wait_for 120 "web1 to boot on host 2" grep -q "HANDOFF-REC 5" "$tmp/h2/run/web1/serial.log"
vm_runs_on 2 web1
hcli 2 stop web1 --force

# offline_crash HOST PHASE FROM EXPECT: HOST's daemon killed at PHASE
# of an offline migration of web1 from host FROM, then started again:
# once both journals close, web1 is on host EXPECT only, stopped, and
# nothing of it runs anywhere.
offline_crash ()
{
  local d=$1 phase=$2 from=$3 expect=$4 dpid mig
  echo "== offline: host $d killed at '$phase' (web1 must end on host $expect, stopped)"
  stop_handoffd "$d"
  HANDOFF_TEST_CRASH_AT=$phase start_handoffd "$d"
  dpid=$(pgrep -P "$(cat "$tmp/h$d.pid")" | head -n 1)
  hcli "$from" migrate web1 --to "host$((3 - from))" --offline > "crash-$phase.out" 2>&1 &
  mig=$!
  wait_for 60 "host $d to die at $phase" bash -c "! kill -0 $dpid 2>/dev/null"
  grep -q "crashing at $phase" "h$d.log" || fail "host $d died, but not at $phase"
  rm -f "$tmp/h$d.sock"
  start_handoffd "$d"
  wait "$mig" || true
  sed 's/^/  | /' "crash-$phase.out"
  wait_for 90 "both journals closed" journals_closed
  local other=$((3 - expect))
  [ "$(hcli "$expect" list --json | jq -r '.vms[] | select(.name == "web1") | .state')" = stopped ] ||
    fail "$phase: web1 is not on host $expect, stopped"
  [ -z "$(hcli "$other" list --json | jq -r '.vms[] | select(.name == "web1") | .name')" ] ||
    fail "$phase: host $other still lists web1"
  vm_qemu_on 1 web1 && fail "$phase: web1 runs on host 1"
  vm_qemu_on 2 web1 && fail "$phase: web1 runs on host 2"
  return 0
}
# Before the destination is asked: the VM stays where it was.
offline_crash 2 storage 2 2
offline_crash 2 complete_sent 2 2
# Once the destination has recorded it, it is the destination's,
# whether the source (after the ACK) or the destination dies then.
offline_crash 2 acked 2 1
offline_crash 2 resumed 1 2

echo "== bad input changes nothing"
expect_rc 1 "at most 10m" hcli 1 stop web2 --timeout 11m
expect_rc 1 "timeout" hcli 1 stop web2 --timeout soon
expect_rc 8 "no VM named" hcli 1 stop nosuch
hcli 1 help stop | grep -q -- "--force" || fail "'handoff help stop' does not describe --force"
host_idle 1
echo "$0: PASS"
