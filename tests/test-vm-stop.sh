#!/usr/bin/env bash
# 'handoff stop' is the guest's own shutdown, as virsh shutdown: the
# ACPI power button, then a wait (--timeout) for the guest to power
# off, then the VM's disk and share servers stop.  A guest that ignores
# the button keeps running and stop fails with exit 6 (timeout),
# changing nothing; --force powers it off at once (virsh destroy).
# Every record the guest wrote before the button is on its disk.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
guest_hosts 1

start_handoffd 1
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
acked=$(grep -a HANDOFF-REC web1.serial | tail -n 1 | tr -dc 0-9)
top=$(check_records "$tmp/vm1.img") || fail "web1's records after stop"
[ "$acked" -le "$top" ] || fail "web1's disk ends at record $top, it wrote $acked"
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

echo "== stop --force powers it off at once"
hcli 1 stop web2 --force
vm_qemu_on 1 web2 && fail "web2's QEMU still runs after --force"
[ "$(hcli 1 list --json | jq -r '.vms[] | select(.name == "web2") | .state')" = stopped ] ||
  fail "web2 is not recorded as stopped"

echo "== bad input changes nothing"
expect_rc 1 "at most 10m" hcli 1 stop web2 --timeout 11m
expect_rc 1 "timeout" hcli 1 stop web2 --timeout soon
expect_rc 8 "no VM named" hcli 1 stop nosuch
hcli 1 help stop | grep -q -- "--force" || fail "'handoff help stop' does not describe --force"
host_idle 1
echo "$0: PASS"
