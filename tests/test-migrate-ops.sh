#!/usr/bin/env bash
# What an operator may do to a VM while it moves, on two hosts with the
# test guest writing records over a capped link (so that each phase
# lasts seconds):
#   - a second migrate, a stop and an undefine of the moving VM are
#     refused, say why, and the first migration goes on and succeeds;
#     'handoff job' shows it while it runs, '--watch' follows it to its
#     end from another terminal, and afterwards each host shows the
#     last job from its journal;
#   - handoff abort during the disk copy, and Ctrl-C answered y on the
#     migrate command's terminal during the RAM transfer, roll back
#     (5): the VM goes on running and writing on the source with every
#     record intact, and the destination holds nothing of it; Ctrl-C
#     answered n goes on; Ctrl-C off a terminal lets go of the
#     migration, which goes on ('handoff job --watch' follows it);
#   - bad aborts (no such VM, no migration) are refused and change
#     nothing;
#   - either daemon stopped (SIGTERM) during the disk copy, and again
#     during the RAM transfer: the migration rolls back (the source's
#     daemon first rolls it back and tells its CLI, then exits), the VM
#     runs on the source, the destination holds nothing;
#   - either daemon stopped past the point of no return (the source
#     about to send MIGRATION_COMPLETE; the destination having resumed
#     the VM, before its ACK), and started again: the VM runs on the
#     destination, its RAM pattern whole, the source holds nothing.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
guest_hosts 2

handoff keygen k.psk >/dev/null 2>&1
start_handoffd 1
start_handoffd 2
make_test_vm "$tmp/vm"
# 64 MiB of RAM that is not zeros: the RAM transfer takes seconds.
define_guest 1 web1 "$tmp/vm" 256 "records handoff.ram=64"
hcli 1 start web1
wait_for 120 "the guest's records" grep -q "HANDOFF-REC 5" "$tmp/h1/run/web1/serial.log"
wait_for 120 "the guest's RAM pattern" grep -q "HANDOFF-RAM filled" "$tmp/h1/run/web1/serial.log"

acked_on ()             # acked_on I: the last record host I's guest acknowledged
{
  serial_last REC "$tmp/h$1/run/web1/serial.log"
}

# still_writes_on I: the guest runs on host I, writes new records, and
# its disk holds every one it acknowledged.
still_writes_on ()
{
  local before last_rec disk
  vm_runs_on "$1" web1
  # Just after a migration the destination's console may show no
  # record yet: wait for its first.
  wait_for 30 "a record on host $1's console" bash -c \
    "grep -aq HANDOFF-REC '$tmp/h$1/run/web1/serial.log'"
  before=$(acked_on "$1")
  wait_for 30 "new records on host $1" bash -c \
    "[ \"\$(serial_last REC '$tmp/h$1/run/web1/serial.log')\" -gt '$before' ]"
  disk=$(hcli "$1" status web1 --json | jq -r '.def.disks[0].path')
  last_rec=$(check_records "$disk") || fail "a broken record on host $1"
  [ "$last_rec" -ge "$before" ] || fail "host $1's disk ends at $last_rec, the guest wrote $before"
}

# migrate_in_background OUT: host 1 moves web1 to host 2; the pid in mig.
migrate_in_background ()
{
  hcli 1 migrate web1 --to host2 > "$1" 2>&1 &
  mig=$!
}

echo "== bad aborts change nothing"
expect_rc 8 "no migration of 'web1' runs here" hcli 1 abort web1
expect_rc 8 "no migration of 'nosuch' runs here" hcli 1 abort nosuch
vm_runs_on 1 web1

host_rate 1 100mbit

echo "== while web1 moves: a second migrate, stop and undefine are refused"
migrate_in_background first.out
wait_for 60 "the disk copy" grep -q "storage" first.out
expect_rc 1 "VM web1 is busy (migrating" hcli 1 migrate web1 --to host2
expect_rc 1 "VM web1 is busy (migrating" hcli 1 stop web1
expect_rc 1 "VM web1 is busy (migrating" hcli 1 undefine web1
# The job, from another terminal: its summary, and followed to its end.
hcli 1 job web1 --json > job.json
jq -e '.active and .job.vm == "web1" and .job.to == "host2" and (.job.phase | length > 0)' \
  job.json > /dev/null || fail "job --json: $(cat job.json)"
# Its progress: every stream, and the whole migration's ETA.
for _ in $(seq 30); do
  hcli 1 job web1 --json > job.json
  jq -e '.job.progress.eta_s | type == "number"' job.json > /dev/null && break
  sleep 1
done
jq -e '(.job.progress.streams | length > 0) and (.job.progress.eta_s | type == "number")' \
  job.json > /dev/null || fail "job --json has no progress with an ETA: $(cat job.json)"
hcli 1 job web1 > job.txt
grep -q "^migration web1-host1-.*: web1 to host2, phase " job.txt || fail "job: $(cat job.txt)"
grep -q "overall ETA" job.txt || fail "job shows no overall ETA: $(cat job.txt)"
hcli 1 job web1 --watch > watch.out 2>&1 &
watcher=$!
vm_runs_on 1 web1
wait "$mig" || { cat first.out; fail "the first migration failed"; }
grep -q "web1 now runs on host2" first.out || fail "the first migration"
wait "$watcher" || { cat watch.out; fail "job --watch did not end with success"; }
grep -q "web1 now runs on host2" watch.out || fail "job --watch: $(cat watch.out)"
# Afterwards each side shows the last job from its journal.
hcli 1 job web1 --json | jq -e '.active == false and .last.role == "source" and
  .last.peer == "host2" and .last.result == "done" and (.last.steps | length > 3)' > /dev/null ||
  fail "host 1's last job"
hcli 2 job web1 --json | jq -e '.last.role == "destination" and .last.result == "done"' > /dev/null ||
  fail "host 2's last job"
expect_rc 8 "no migration of 'nosuch' on this host" hcli 1 job nosuch
still_writes_on 2
vm_gone_from 1 web1

echo "== Ctrl-C off a terminal: the command lets go, the migration goes on"
hcli 2 migrate web1 --to host1 > back.out 2>&1 &
mig=$!
wait_for 120 "the disk copy" grep -q "^  disk0  copying" back.out
pkill -INT -f "handoff --socket $tmp/h2.sock migrate web1" ||
  fail "no migrate command to interrupt"
rc=0; wait "$mig" || rc=$?
cat back.out
[ "$rc" = 0 ] || fail "an interrupted migrate exited $rc, expected 0 (detached)"
grep -q "the migration of web1 goes on in handoffd" back.out ||
  fail "the interrupted command does not say the migration goes on"
hcli 2 job web1 --watch > back-job.out || { cat back-job.out; fail "the job after Ctrl-C"; }
grep -q "web1 now runs on host1" back-job.out || fail "the migration did not go on: $(cat back-job.out)"

# interrupt_while OUT PHASE-REGEX CMD...: start a migration, run CMD
# once its output shows PHASE-REGEX; the migration must roll back (5).
interrupt_while ()
{
  local out=$1 phase=$2 rc=0
  shift 2
  migrate_in_background "$out"
  wait_for 120 "the phase '$phase'" grep -q "$phase" "$out"
  "$@"
  wait "$mig" || rc=$?
  cat "$out"
  [ "$rc" = 5 ] || fail "exit $rc after '$*', expected 5 (rolled back)"
}

# abort_while OUT PHASE-REGEX: handoff abort at that phase; the VM stays.
abort_while ()
{
  interrupt_while "$1" "$2" hcli 1 abort web1
  grep -q "aborted by request" "$1" || fail "the result does not say it was aborted"
  grep -q "now runs on host2" "$1" && fail "web1 moved despite the abort"
  vm_gone_from 2 web1
  still_writes_on 1
}

echo "== abort during the disk copy"
abort_while abort1.out "^  disk0  copying .* [1-9][0-9.]* MiB / "
grep -q "^\[.*\] memory " abort1.out && fail "the abort came too late: RAM was already moving"

echo "== Ctrl-C on a terminal during the RAM transfer, answered y: it rolls back"
rc=0
on_host 1 python3 "$top/tests/tty-drive.py" --cols 100 --log abort2.out \
  --expect "  ram    active [^\r\n]* [1-9][0-9.]* MiB / " --send '\x03' \
  --expect "Abort the migration of web1\\? .*\\[y/N\\]" --send 'y\n' -- \
  handoff --socket "$tmp/h1.sock" migrate web1 --to host2 || rc=$?
cat abort2.out
[ "$rc" = 5 ] || fail "Ctrl-C and y: exit $rc, expected 5 (rolled back)"
grep -q "aborted by request" abort2.out || fail "the result does not say it was aborted"
grep -q "now runs on host2" abort2.out && fail "web1 moved despite the abort"
vm_gone_from 2 web1
still_writes_on 1

echo "== the destination's daemon stopped (SIGTERM) during the disk copy"
interrupt_while term2.out "^\[.*\] storage " stop_handoffd 2
still_writes_on 1
start_handoffd 2
vm_gone_from 2 web1

echo "== the source's daemon stopped (SIGTERM) during the disk copy"
# It rolls back before it exits, and tells its CLI why.
interrupt_while term1.out "^\[.*\] storage " stop_handoffd 1
grep -q "aborted because handoffd is stopping" term1.out ||
  fail "the CLI was not told why the migration ended"
[ -z "$(sqlite3 h1/state.db 'select id from journal where result is null')" ] ||
  fail "host 1's daemon left the migration open"
kill -0 "$(cat "$tmp/h1/run/web1/qemu.pid")" ||
  fail "web1's QEMU died with its daemon"
start_handoffd 1
still_writes_on 1
vm_gone_from 2 web1

echo "== the destination's daemon stopped (SIGTERM) during the RAM transfer"
interrupt_while term3.out "^  ram    active .* [1-9][0-9.]* MiB / " stop_handoffd 2
still_writes_on 1
start_handoffd 2
vm_gone_from 2 web1

echo "== the source's daemon stopped (SIGTERM) during the RAM transfer"
interrupt_while term4.out "^  ram    active .* [1-9][0-9.]* MiB / " stop_handoffd 1
grep -q "aborted because handoffd is stopping" term4.out ||
  fail "the CLI was not told why the migration ended"
kill -0 "$(cat "$tmp/h1/run/web1/qemu.pid")" ||
  fail "web1's QEMU died with its daemon"
start_handoffd 1
still_writes_on 1
vm_gone_from 2 web1
host_rate 1 10gbit

# stop_past_no_return I PHASE OUT: host I's daemon, holding PHASE (past
# the point of no return: the destination decides), is stopped there;
# the migration still ends with web1 on host 2, and says so.
stop_past_no_return ()
{
  local i=$1 phase=$2 out=$3 n rc=0
  stop_handoffd "$i"
  HANDOFF_TEST_DELAY_AT=$phase:3000 start_handoffd "$i"
  n=$(wc -l < "h$i.log")
  migrate_in_background "$out"
  wait_log "$i" "$n" "test hook: holding $phase"
  stop_handoffd "$i"
  start_handoffd "$i"
  wait "$mig" || rc=$?
  cat "$out"
  [ "$rc" = 0 ] && grep -q "web1 now runs on host2" "$out" ||
    fail "host $i stopped at $phase: exit $rc; web1 runs on host 2"
  still_writes_on 2
  vm_gone_from 1 web1
  ram_intact_on 2 web1
}

echo "== the source's daemon stopped (SIGTERM) once MIGRATION_COMPLETE is due"
stop_past_no_return 1 complete_sent term5.out
grep -q "stopping (signal 15)" h1.log || fail "host 1 did not stop"
# On an 80-column terminal: the progress drawn fits, nothing wraps;
# Ctrl-C answered n (or nothing) lets the migration go on.
on_host 2 python3 "$top/tests/tty-drive.py" --cols 80 --log back2.tty \
  --expect "  disk0  copying" --send '\x03' \
  --expect "Abort the migration of web1" --send 'n\n' -- \
  handoff --socket "$tmp/h2.sock" migrate web1 --to host1 ||
  { cat back2.tty; fail "migrating back"; }
grep -aq "going on" back2.tty || fail "the answer n was not taken: $(cat back2.tty)"
grep -aq "web1 now runs on host1" back2.tty || fail "migrating back: $(cat back2.tty)"
fits_columns back2.tty 80 || fail "migrate drew lines wider than an 80-column terminal"

echo "== the destination's daemon stopped (SIGTERM) once it resumed web1, before its ACK"
stop_past_no_return 2 resumed term6.out
echo "$0: PASS"
