#!/usr/bin/env bash
# A daemon killed (SIGKILL) at each step of a live migration, on the
# source and on the destination, then started again: its recovery must
# leave the VM on exactly one host - host 1 for a crash before the
# destination took the VM in, host 2 after - with every record the
# guest wrote intact, nothing of the VM left on the other host, and no
# migration left open in either journal.
#
# Then the same with the whole host crashing (host:SIDE:STEP): the
# daemon and every process of its namespace - QEMU, nbdkit, the share,
# the relays - killed at once.  Where the VM's QEMU died with its host,
# the VM stays defined there, stopped ("crashed"), its disk intact, and
# 'handoff start' boots it: past the point of no return that host owns
# it even though its QEMU is gone.
#
# CRASH_POINTS="source:memory host:destination:resumed" runs a subset.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
guest_hosts 2
export HD_IO_TIMEOUT=5s

steps="source:admission source:prepare source:storage source:start_vm
  source:memory source:cutover source:complete_sent source:acked
  source:released destination:admitted destination:prepared
  destination:vm_started destination:completing destination:resumed
  destination:settling destination:share_mounted"
points=${CRASH_POINTS:-"$steps $(for s in $steps; do echo "host:$s"; done)"}

# Where the VM must end: the destination once it was taken in.
expected_host ()
{
  case ${1#host:} in
    source:acked|source:released|destination:resumed|destination:settling|\
    destination:share_mounted) echo 2 ;;
    *) echo 1 ;;
  esac
}

handoff keygen k.psk >/dev/null 2>&1
start_handoffd 1
start_handoffd 2
make_test_vm "$tmp/vm"
define_guest 1 web1 "$tmp/vm" 256 records
hcli 1 start web1
wait_for 120 "the guest" grep -q "HANDOFF-REC 5" "$tmp/h1/run/web1/serial.log"

qemu_runs_on ()             # qemu_runs_on I: web1's QEMU is alive on I
{
  local f=$tmp/h$1/run/web1/qemu.pid
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}



# Nothing of web1 on host I: no row, no run directory, no process, no
# received images.
host_clean ()
{
  local i=$1
  host_idle "$i"
  [ ! -e "$tmp/h$i/run/web1" ] || fail "host $i kept web1's run directory"
  [ "$i" = 1 ] || [ ! -e "$tmp/h$i/images/web1" ] ||
    fail "host $i kept web1's images"
  [ "$(sqlite3 "$tmp/h$i/state.db" "select count(*) from vms where name = 'web1'")" = 0 ] ||
    fail "host $i still lists web1"
}

# The guest runs on host I: its console goes on and its disk holds
# every record it wrote, intact.
guest_runs_on ()
{
  local i=$1 serial=$tmp/h$1/run/web1/serial.log before disk last_rec now acked
  hcli "$i" status web1 | grep -q "QEMU: running" ||
    fail "web1 is not running on host $i"
  before=$(serial_last TICK "$serial")
  wait_for 30 "ticks on host $i" bash -c \
    "[ \"\$(serial_last TICK '$serial')\" -gt '${before:-0}' ]"
  # The guest's counter never goes back: no reboot anywhere.
  now=$(serial_last TICK "$serial")
  [ "$now" -ge "$last_tick" ] ||
    fail "the counter went back from $last_tick to $now: the guest rebooted"
  last_tick=$now
  disk=$(hcli "$i" status web1 --json | jq -r '.def.disks[0].path')
  # Acknowledged first, read after: the disk may only hold more.
  acked=$(serial_last REC "$serial")
  last_rec=$(check_records "$disk") || fail "records on host $i"
  [ "${acked:-0}" -le "$last_rec" ] ||
    fail "host $i's disk ends at record $last_rec, the guest wrote $acked"
  # The guest still writes: every check sees records it had not seen.
  [ "${acked:-0}" -gt "$last_acked" ] ||
    fail "no record since the last check (record $last_acked): the guest stopped writing"
  last_acked=$acked
  # No migration runs: the mirror is not under its disk.
  disks_on_files "$i" web1
  echo "  web1 runs on host $i; records intact up to $last_rec"
}
last_tick=0 last_acked=0

for p in $points; do
  crash=daemon
  case $p in host:*) crash=host p=${p#host:} ;; esac
  side=${p%%:*} phase=${p#*:}
  [ "$side" = source ] && d=1 || d=2
  want=$(expected_host "$p")
  echo "== $side ${crash} killed at '$phase' (the VM must end on host $want)"
  # The VM is on host 1.  Start the daemon to crash with the hook set.
  stop_handoffd "$d"
  HANDOFF_TEST_CRASH_AT=$phase start_handoffd "$d"
  dpid=$(pgrep -P "$(cat "$tmp/h$d.pid")" | head -n 1)
  hcli 1 migrate web1 --to host2 > "mig-$phase.out" 2>&1 &
  mig=$!
  wait_for 180 "handoffd $d to die at $phase (or the migration to end)" \
    bash -c "! kill -0 $dpid 2>/dev/null || ! kill -0 $mig 2>/dev/null"
  if kill -0 "$dpid" 2>/dev/null; then
    sed 's/^/  | /' "mig-$phase.out"
    fail "the migration ended before reaching '$phase'"
  fi
  grep -q "crashing at $phase" "$tmp/h$d.log" || fail "host $d died, but not at $phase"
  if [ "$crash" = host ]; then
    # Everything of the host goes with it - but the migrate command of
    # this test, which host 1 runs for us.
    acked=$(serial_last REC "$tmp"/h[12]/run/web1/serial.log)
    crash_host "$d" "$mig"
  fi
  rm -f "$tmp/h$d.sock"
  start_handoffd "$d"
  rc=0
  wait $mig || rc=$?
  sed 's/^/  | /' "mig-$phase.out"
  echo "  migrate exited $rc"
  wait_for 90 "both journals closed" journals_closed
  other=$((3 - want))
  wait_for 30 "host $other to let go" bash -c "[ ! -e '$tmp/h$other/run/web1' ]"
  # What the operator is told: the CLI loses its daemon when the
  # source dies (7); a destination that dies before the VM runs there
  # is a rollback (5) that says the destination stopped answering or
  # did not resume; one that dies after is a success.
  case $d:$want in
    1:*) [ "$rc" = 7 ] && grep -q "lost handoffd" "mig-$phase.out" ||
           fail "the source died: exit $rc, expected 7 and 'lost handoffd'" ;;
    2:1) [ "$rc" = 5 ] && grep -Eq "failed: (.*no valid answer in time|host2 did not resume the VM)" \
           "mig-$phase.out" ||
           fail "host 2 died before the VM ran there: exit $rc, expected 5 with the reason" ;;
    2:2) [ "$rc" = 0 ] || fail "the VM runs on host 2, but migrate exited $rc" ;;
  esac
  [ "$(sqlite3 "$tmp/h$want/state.db" "select count(*) from vms where name = 'web1'")" = 1 ] ||
    fail "host $want does not have web1 defined"
  if [ "$crash" = host ] && [ "$d" = "$want" ]; then
    # Its QEMU died with the host: kept, stopped, and it boots again.
    state=$(hcli "$want" list --json | jq -r '.vms[] | select(.name == "web1") | .state')
    [ "$state" = crashed ] || fail "web1 on host $want is '$state', not crashed"
    disk=$(hcli "$want" status web1 --json | jq -r '.def.disks[0].path')
    last_rec=$(check_records "$disk") || fail "records on host $want after the crash"
    [ "${acked:-0}" -le "$last_rec" ] ||
      fail "host $want's disk ends at record $last_rec, the guest wrote $acked before the crash"
    echo "  web1 kept on host $want (crashed), records intact up to $last_rec; starting it"
    clear_records "$disk" "$last_rec"
    n=$(boots "$tmp/h$want/run/web1/serial.log")
    hcli "$want" start web1
    wait_reboot "$tmp/h$want/run/web1/serial.log" "$n" 3
    # A new boot counts its records from 1 again.
    last_tick=0 last_acked=0
  else
    wait_for 30 "web1 to run on host $want only" bash -c \
      "[ -f '$tmp/h$want/run/web1/qemu.pid' ] && kill -0 \$(cat '$tmp/h$want/run/web1/qemu.pid') 2>/dev/null"
  fi
  guest_runs_on "$want"
  host_clean "$other"
  if [ "$want" = 2 ]; then
    hcli 2 migrate web1 --to host1 > back.out 2>&1 ||
      { cat back.out; fail "migrating back to host 1"; }
    guest_runs_on 1
    host_clean 2
  fi
done
echo "$0: PASS"
