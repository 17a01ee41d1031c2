#!/usr/bin/env bash
# A live migration under a cut link: the destination's traffic is
# dropped (nft in its namespace) and the link heals only after every
# time limit on the way has run out.  Whatever was lost, when, the VM
# ends running on exactly one host, without a reboot; every record the
# guest was told is written is on that host's disk, its RAM pattern is
# whole, and the other host holds nothing of it.
#
# One guest (records on its disk, a RAM pattern) moves from host to
# host, one case at a time, always cut off at the destination:
#   storage   CUT_SHORT s, from half a second into the disk copy
#   memory    CUT_SHORT s, from half a second into the RAM transfer
#   complete  CUT s, the source's MIGRATION_COMPLETE lost (the source
#             holds it back while the link is cut): the destination
#             gives up, the source asks again on a new connection,
#             learns it was dropped there, and resumes the VM itself
#   ack       CUT s, the destination's ACK lost (it holds it back while
#             the link is cut): it runs the VM; the source asks on a new
#             connection, learns so, and lets go
# CUT (26) outlasts the source's wait for an answer to
# MIGRATION_COMPLETE (one I/O timeout, 3 s here, and 20 s), so that the
# question on a new connection is asked; CUT_SHORT (10) outlasts twice
# the I/O timeout, after which the destination gives up on a silent
# source.
#
# Then daemons killed: the source's in the disk copy; both at once in
# the RAM transfer; the source's there, restarted while the
# destination is cut off.
#
# LIVE_PARTITION_CASES="ack" and LIVE_CRASH_CASES="both" run a subset.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
requires_root
requires nft --version
guest_hosts 2
export HD_IO_TIMEOUT=3s
cut_long=${CUT:-26}
cut_short=${CUT_SHORT:-10}

handoff keygen k.psk >/dev/null 2>&1
start_handoffd 1
start_handoffd 2
make_test_vm "$tmp/vm"
define_guest 1 web1 "$tmp/vm" 160 "records handoff.ram=48"
hcli 1 start web1
wait_for 120 "the guest's records" grep -q "HANDOFF-REC 5" "$tmp/h1/run/web1/serial.log"
# Slow enough that a cut half a second into a phase lands inside it:
# the 64 MiB disk and the 48 MiB pattern take seconds each.
host_rate 1 150mbit
host_rate 2 150mbit
cleanup_fn host_heal 1
cleanup_fn host_heal 2


# The guest runs on host I, only there, without a reboot; its disk
# there holds every record it had written before (ACKED) and it still
# writes; the other host holds nothing of it.
last_tick=0
settled_on ()
{
  local i=$1 acked=$2 other=$(( 3 - $1 )) serial=$tmp/h$1/run/web1/serial.log
  local disk last_rec now
  vm_qemu_on "$other" web1 && fail "web1's QEMU runs on both hosts"
  vm_runs_on "$i" web1
  vm_gone_from "$other" web1
  wait_for 30 "ticks on host $i" bash -c \
    "[ \"\$(serial_last TICK '$serial')\" -gt $last_tick ]"
  now=$(serial_last TICK "$serial")
  grep -aq HANDOFF-BOOT "$serial" && [ "$last_tick" -gt 0 ] &&
    [ "$(grep -ac HANDOFF-BOOT "$serial")" -gt 1 ] && fail "the guest rebooted"
  last_tick=$now
  disk=$(hcli "$i" status web1 --json | jq -r '.def.disks[0].path')
  wait_for 30 "a new record on host $i" bash -c \
    "[ \"\$(serial_last REC '$serial')\" -gt $acked ]"
  last_rec=$(check_records "$disk") || fail "records on host $i"
  [ "$acked" -le "$last_rec" ] ||
    fail "host $i's disk ends at record $last_rec; the guest wrote $acked before the cut"
  ram_intact_on "$i" web1
  echo "  web1 runs on host $i only; records intact up to $last_rec (written before the cut: $acked)"
}

# The destination never ran the guest: its console of this migration
# (kept under logs/ when it dropped it; none if QEMU had not started)
# shows nothing the guest wrote.
never_ran_on ()
{
  local i=$1 id=$2 log=$tmp/h$1/logs/$2/serial.log
  if [ -f "$log" ] && grep -aq "HANDOFF-" "$log"; then
    fail "the guest ran on host $i, which dropped it: $(grep -a HANDOFF- "$log" | tail -n 1)"
  fi
}

# The guest ticks on host I after its daemon answers about it.
guest_ticks_on ()
{
  local serial=$tmp/h$1/run/web1/serial.log before
  hcli "$1" status web1 | grep -q "QEMU: running" || return 1
  before=$(grep -ac HANDOFF-TICK "$serial")
  poll_for 30 "ticks" bash -c "[ \$(grep -ac HANDOFF-TICK '$serial') -gt $before ]"
}

# migrate_ended OUT: the migrate CLI (pid in mig) has ended; its exit
# status in rc, its output shown.
migrate_ended ()
{
  rc=0
  wait "$mig" || rc=$?
  sed 's/^/  | /' "$1"
  echo "  migrate exited $rc"
  tried=$((tried + 1))
}

# migration_id I N: the id of the migration host I began after the
# first N lines of its log.
migration_id ()
{
  local id
  id=$(tail -n +"$(($2 + 1))" "h$1.log" |
         sed -n 's/.*migration \(web1-[^:]*\): admission: .*/\1/p' | head -n 1)
  [ -n "$id" ] || fail "no migration id in host $1's log"
  echo "$id"
}

src=1 tried=0
for c in ${LIVE_PARTITION_CASES:-storage memory complete ack}; do
  dst=$(( 3 - src ))
  holder= hold= cut_s=$cut_short
  case $c in
    storage) pat=": storage: " ;;
    memory) pat=": memory: " ;;
    complete) holder=$src hold=complete_sent pat="test hook: holding complete_sent" cut_s=$cut_long ;;
    ack) holder=$dst hold=resumed pat="test hook: holding resumed" cut_s=$cut_long ;;
    *) fail "unknown case '$c'" ;;
  esac
  echo "== host $src -> host $dst, host $dst cut off for ${cut_s}s: $c"
  if [ -n "$holder" ]; then
    stop_handoffd "$holder"
    HANDOFF_TEST_DELAY_AT=$hold:1500 start_handoffd "$holder"
  fi
  n=$(wc -l < "h${holder:-$src}.log")
  nsrc=$(wc -l < "h$src.log")
  hcli "$src" migrate web1 --to "host$dst" > "cut-$c.out" 2>&1 &
  mig=$!
  wait_log "${holder:-$src}" "$n" "$pat"
  [ -n "$holder" ] || sleep 0.5
  acked=$(serial_last REC "$tmp/h$src/run/web1/serial.log")
  host_cut "$dst"
  sleep "$cut_s"
  host_heal "$dst"
  migrate_ended "cut-$c.out"
  id=$(migration_id "$src" "$nsrc")
  if [ -n "$holder" ]; then
    stop_handoffd "$holder"
    start_handoffd "$holder"
  fi
  wait_for 90 "both journals closed" journals_closed
  case $c in
    storage|memory|complete)
      # Rolled back: the source said why, and runs the VM.
      [ "$rc" = 5 ] || fail "$c: migrate exited $rc, expected 5 (rolled back)"
      case $c in
        complete)
          tail -n +"$((nsrc + 1))" "h$src.log" |
            grep -q "asking it on a new connection whether it runs web1" ||
            fail "$c: the source did not ask on a new connection"
          grep -q "failed: host$dst did not resume the VM (asked again, it says the migration is aborted there)" \
            "cut-$c.out" || fail "$c: the reason is not the destination's answer" ;;
        *)
          grep -Eq "failed: .*(no valid answer in time|timed out|the peer is gone|closed the connection)" \
            "cut-$c.out" || fail "$c: the reason does not say the destination was lost" ;;
      esac
      never_ran_on "$dst" "$id"
      settled_on "$src" "${acked:-0}" ;;
    ack)
      [ "$rc" = 0 ] || fail "ack: migrate exited $rc; host $dst runs the VM"
      tail -n +"$((nsrc + 1))" "h$src.log" |
        grep -q "asking it on a new connection whether it runs web1" ||
        fail "ack: the source did not ask on a new connection"
      grep -q "note: the acknowledgement was lost; asked on a new connection, host$dst confirmed it runs the VM" \
        "cut-$c.out" || fail "ack: the result does not say the acknowledgement was lost"
      settled_on "$dst" "${acked:-0}"
      src=$dst ;;
  esac
done
# Daemons killed (SIGKILL; the VM's QEMU and helpers live on) half a
# second into a phase: the source's in the disk copy, restarted; both
# in the RAM transfer, then restarted; the source's in the RAM
# transfer, restarted while the destination is cut off (CUT_SHORT s) -
# it runs the VM on on its own: before MIGRATION_COMPLETE the
# destination was never told to run it.  The CLI loses its daemon (7).
for c in ${LIVE_CRASH_CASES:-copy both cut}; do
  dst=$(( 3 - src )) pat=": memory: "
  case $c in
    copy) echo "== host $src -> host $dst: host $src's daemon killed in the disk copy"
          pat=": storage: " ;;
    both) echo "== host $src -> host $dst: both daemons killed in the RAM transfer" ;;
    cut) echo "== host $src -> host $dst: host $src's daemon killed in the RAM transfer, restarted while host $dst is cut off" ;;
    *) fail "unknown case '$c'" ;;
  esac
  nsrc=$(wc -l < "h$src.log")
  hcli "$src" migrate web1 --to "host$dst" > "crash-$c.out" 2>&1 &
  mig=$!
  wait_log "$src" "$nsrc" "$pat"
  sleep 0.5
  acked=$(serial_last REC "$tmp/h$src/run/web1/serial.log")
  if [ "$c" = copy ]; then
    crash_handoffd "$src"
    start_handoffd "$src"
  elif [ "$c" = both ]; then
    crash_handoffd "$src" & k1=$!
    crash_handoffd "$dst" & k2=$!
    wait "$k1" "$k2"
    start_handoffd "$src"
    start_handoffd "$dst"
  else
    crash_handoffd "$src"
    host_cut "$dst"
    start_handoffd "$src"
    wait_for 60 "web1 to run on host $src, its daemon back, while host $dst is cut off" \
      guest_ticks_on "$src"
    sleep "$cut_short"
    host_heal "$dst"
  fi
  migrate_ended "crash-$c.out"
  [ "$rc" = 7 ] && grep -q "lost handoffd" "crash-$c.out" ||
    fail "$c: exit $rc, expected 7 and 'lost handoffd'"
  id=$(migration_id "$src" "$nsrc")
  wait_for 90 "both journals closed" journals_closed
  never_ran_on "$dst" "$id"
  settled_on "$src" "${acked:-0}"
done
echo "$tried cut cases, each ending with web1 on one host, nothing lost"
echo "$0: PASS"
