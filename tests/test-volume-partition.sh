#!/usr/bin/env bash
# Volume mode under a cut link: the SAN volume must never be mounted on
# two hosts, and the VM never run on two, whatever is lost when.
#
# The setup of test-migrate-volume.sh (a SAN disk both hosts see, each
# host its own mount namespace).  Host 2's traffic is dropped (nft in
# its namespace) for CUT seconds, starting DELAY ms after host 1 enters
# phase 'handoff' (0, 200); then with each message of the
# handoff lost in turn (a test hook holds the step before it while the
# link is cut): VOLUME_HANDOFF, READY, VOLUME_COMMIT, and the ACK alone
# (cut once host 2 was told to commit).  Every half second
# while cut and for a while after healing: the volume is mounted on at
# most one host and web1's QEMU runs on at most one.  After healing
# web1 runs on exactly one host, with its volume mounted there only;
# both journals are closed; e2fsck -n finds the file system clean; and
# the disk holds every record the guest wrote before the handoff.
#
# Then host 1's daemon and every process of it killed (-9) in each
# phase of the handoff and restarted while host 2 is cut off, then
# healed: the same checks; from phase 'handoff' on, host 1 reports web1
# in doubt while cut off.
#
# Then a second crash during recovery: host 1 killed in a phase, then
# again at a step of its recovery, then started for good.
#
# PARTITION_CASES="0 ack", CRASH_PHASES="handoff" and
# RECOVER_CRASHES="handoff:recover_aborting" (or "") run a subset.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
requires_root
source "$top/tests/volume-images.sh"
requires nft --version
requires e2fsck -V
guest_hosts 2
export HD_IO_TIMEOUT=2s
cut_s=${CUT:-7}

make_disk san.img 320 gpt 512 "2048 614400"
cleanup_fn detach_loops_of "$tmp/san.img"
mkfs_part san.img $((2048 * 512)) $((614400 * 512)) mkfs.ext4 -q -L vmvol
san=$(losetup -f --show san.img)
handoff volume identify -p 1 san.img > vol.json
mkdir vol
for i in 1 2; do
  cleanup_fn on_host "$i" sh -c "! mountpoint -q '$tmp/vol' || umount -l '$tmp/vol'"
done
on_host 1 handoff volume mount vol.json "$tmp/vol" --scan "$san"
on_host 1 sh -c "
  mkdir -p '$tmp/vol/web1'
  cp '$GUEST_DIR/vmlinux' '$GUEST_DIR/initrd.gz' '$tmp/vol/web1/'
  truncate -s 64M '$tmp/vol/web1.img'"

handoff keygen k.psk >/dev/null 2>&1
echo "{\"volume_roots\": [\"$tmp\"]}" > h1.policy
cp h1.policy h2.policy
start_handoffd 1
start_handoffd 2
define_guest 1 web1 "$tmp/vol/web1" 128 records
hcli 1 start web1
wait_for 120 "the guest on host 1" grep -q "HANDOFF-REC 5" "$tmp/h1/run/web1/serial.log"

cleanup_fn host_heal 2

mounted_on () { on_host "$1" mountpoint -q "$tmp/vol"; }
qemu_on () { vm_qemu_on "$1" web1; }
# One sample: never two of either.
sample ()
{
  local m=0 q=0 i
  for i in 1 2; do
    mounted_on "$i" && m=$((m + 1))
    qemu_on "$i" && q=$((q + 1))
  done
  [ "$m" -le 1 ] || fail "$1: the volume is mounted on both hosts"
  [ "$q" -le 1 ] || fail "$1: web1's QEMU runs on both hosts"
  echo "$m $q"
}
# sample_for SECONDS WHAT: sample every half second.
sample_for ()
{
  local end=$(( $(date +%s) + $1 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    sample "$2" > /dev/null
    sleep 0.5
  done
}
# Where web1 runs now (1 or 2), once settled.
settled_on ()
{
  local i n=0 where=
  for i in 1 2; do
    if qemu_on "$i"; then n=$((n + 1)); where=$i; fi
  done
  [ "$n" = 1 ] && journals_closed && mounted_on "$where" && echo "$where"
}
# After healing: exactly one host runs web1 from the volume; the file
# system is clean and the records are there.  Ends with web1 on host 1.
check_settled ()
{
  local what=$1 acked=$2 where last_rec
  sample_for 5 "$what, healed"
  wait_for 90 "$what: web1 to settle on one host" settled_on
  where=$(settled_on)
  sample "$what, settled" > /dev/null
  [ "$(sqlite3 "$tmp/h$where/state.db" "select state from vms where name = 'web1'")" = running ] ||
    fail "$what: host $where does not record web1 as running"
  [ "$(sqlite3 "$tmp/h$((3 - where))/state.db" "select count(*) from vms where name = 'web1'")" = 0 ] ||
    fail "$what: host $((3 - where)) still has web1"
  # The records the guest wrote before the handoff, on the disk.
  last_rec=$(on_host "$where" python3 -c '
import sys; sys.stdout.write(open(sys.argv[1], "rb").read(1 << 20).decode("latin1"))' \
        "$tmp/vol/web1.img" > disk.head; check_records disk.head) ||
    fail "$what: records"
  [ "$acked" -le "$last_rec" ] || fail "$what: the disk ends at record $last_rec, the guest wrote $acked"
  # A clean file system: stop the VM, unmount, check, mount again.
  hcli "$where" stop web1 --force
  on_host "$where" handoff volume unmount "$tmp/vol" > /dev/null
  e2fsck -fn "$(losetup -f --show -o $((2048 * 512)) --sizelimit $((614400 * 512)) san.img)" \
    > fsck.out 2>&1 || { cat fsck.out; fail "$what: e2fsck found errors"; }
  detach_loops_of "$tmp/san.img"
  san=$(losetup -f --show san.img)
  on_host "$where" handoff volume mount vol.json "$tmp/vol" --scan "$san" > /dev/null
  hcli "$where" start web1
  wait_for 120 "$what: the guest on host $where" \
    grep -q "HANDOFF-REC 3" "$tmp/h$where/run/web1/serial.log"
  echo "  $what: web1 runs on host $where only; records intact up to $last_rec; e2fsck clean"
  if [ "$where" = 2 ]; then
    hcli 2 migrate web1 --to host1 --mode volume --shutdown-timeout 1s \
      > back.out 2>&1 || { cat back.out; fail "$what: back to host 1"; }
    wait_for 120 "$what: the guest back on host 1" \
      grep -q "HANDOFF-REC 3" "$tmp/h1/run/web1/serial.log"
  fi
}

for c in ${PARTITION_CASES:-0 200 handoff ready commit ack}; do
  # Which host holds which step, and the log line that says it is held.
  hold= holder=1 pat=": handoff: "
  case $c in
    handoff) hold=handoff:500 pat="test hook: holding handoff" ;;
    ready) hold=mounted:500 holder=2 pat="test hook: holding mounted" ;;
    commit) hold=committed:500 pat="test hook: holding committed" ;;
    ack) holder=2 pat="the source committed the handoff" ;;
  esac
  echo "== host 2 cut off $(case $c in [0-9]*) echo "$c ms into the handoff" ;;
    ack) echo "once it was told to commit" ;; *) echo "with $c lost" ;; esac) for ${cut_s}s"
  if [ -n "$hold" ]; then
    stop_handoffd "$holder"
    HANDOFF_TEST_DELAY_AT=$hold start_handoffd "$holder"
  fi
  acked=$(serial_last REC "$tmp/h1/run/web1/serial.log")
  n=$(wc -l < "h$holder.log")
  hcli 1 migrate web1 --to host2 --mode volume --timeout 20 --shutdown-timeout 1s \
    > "cut-$c.out" 2>&1 &
  mig=$!
  wait_log "$holder" "$n" "$pat"
  case $c in [0-9]*) sleep "$(echo "$c / 1000" | bc -l)" ;; esac
  host_cut 2
  sample_for "$cut_s" "cut at $c"
  host_heal 2
  rc=0
  wait "$mig" || rc=$?
  sed 's/^/  | /' "cut-$c.out"
  echo "  migrate exited $rc"
  if [ -n "$hold" ]; then
    stop_handoffd "$holder"
    start_handoffd "$holder"
  fi
  check_settled "cut at $c" "${acked:-0}"
done

# crash_host1_at PHASE OUT: host 1 starts moving web1 (volume mode, its
# output in OUT, the CLI's pid in mig) and dies at PHASE with every
# process of it; acked is the last record the guest wrote before.
crash_host1_at ()
{
  local dpid
  stop_handoffd 1
  HANDOFF_TEST_CRASH_AT=$1 start_handoffd 1
  dpid=$(pgrep -P "$(cat h1.pid)" | head -n 1)
  acked=$(serial_last REC "$tmp/h1/run/web1/serial.log")
  hcli 1 migrate web1 --to host2 --mode volume --timeout 20 --shutdown-timeout 1s \
    > "$2" 2>&1 &
  mig=$!
  wait_for 60 "host 1 to die at $1" bash -c "! kill -0 $dpid 2>/dev/null"
  grep -q "crashing at $1" h1.log || fail "host 1 died, but not at $1"
  crash_host 1 "$mig"
}

# The source killed with its children in each phase, restarted while
# the destination is cut off.
for ph in ${CRASH_PHASES:-identify power_off unregister unmount handoff committed}; do
  echo "== host 1 crashes in phase '$ph'; it restarts while host 2 is cut off"
  crash_host1_at "$ph" "crash-$ph.out"
  host_cut 2
  start_handoffd 1
  sample_for 8 "crash at $ph, cut"
  # Once the descriptor may have gone out, the restarted source cannot
  # know what host 2 did: web1 stays in doubt there - stopped, the
  # volume unmounted - and 'status' says so.
  case $ph in
    handoff|committed)
      st=$(hcli 1 status web1 --json | jq -r .state)
      [ "$st" = in_doubt ] ||
        fail "crash at $ph: host 1 says web1 is '$st', not in_doubt"
      if mounted_on 1 || qemu_on 1; then
        fail "crash at $ph: host 1 mounted the volume or ran web1 in doubt"
      fi
      echo "  host 1, cut off: web1 in_doubt, not mounted, not running" ;;
  esac
  host_heal 2
  wait "$mig" || true
  check_settled "crash at $ph" "${acked:-0}"
done

# A second crash while recovering: host 1 killed with its children in
# phase PH, restarted with a kill at step R of its recovery (the
# volume mounted again; the journal's decision written; restore_recorded,
# the VM recorded, is a third), and restarted again: recovery, done
# twice, settles as once.
for pr in ${RECOVER_CRASHES-unmount:restore_mounted handoff:recover_aborting}; do
  ph=${pr%%:*} r=${pr#*:}
  echo "== host 1 crashes in phase '$ph', and again at '$r' while it recovers"
  crash_host1_at "$ph" "recover-$ph-$r.out"
  n=$(wc -l < h1.log)
  HD_NO_WAIT=1 HANDOFF_TEST_CRASH_AT=$r start_handoffd 1
  dpid=$(pgrep -P "$(cat h1.pid)" | head -n 1)
  wait_log 1 "$n" "crashing at $r"
  wait_for 30 "host 1 to die at $r" bash -c "! kill -0 $dpid 2>/dev/null"
  rm -f h1.sock
  sample "crash at $ph, again at $r" > /dev/null
  start_handoffd 1
  wait "$mig" || true
  check_settled "crash at $ph, again at $r" "${acked:-0}"
done
echo "$0: PASS"
