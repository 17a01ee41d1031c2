#!/usr/bin/env bash
# A host that crashes with running VMs - handoffd, QEMU, nbdkit and the
# share all killed at once, the state directory left as a power loss
# leaves it (stale sockets, pid files, a dead FUSE mount) - must be able
# to start its VMs again: after handoffd restarts, the VM is listed as
# crashed, 'handoff start' boots it (QEMU runs, its disk has every
# record the guest wrote before the crash), and a start whose QEMU does
# not come up fails with the reason instead of claiming success.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
guest_hosts 1

handoff keygen k.psk >/dev/null 2>&1
start_handoffd 1
make_test_vm "$tmp/vm"
define_guest 1 web1 "$tmp/vm" 128 records
hcli 1 start web1
serial=$tmp/h1/run/web1/serial.log
wait_for 120 "the guest" grep -q "HANDOFF-REC 10" "$serial"

for round in 1 2; do
  echo "== the host crashes (round $round)"
  acked=$(serial_last REC "$serial")
  crash_host 1
  [ -z "$(netns_pids 1)" ] || fail "processes survived the crash: $(netns_pids 1)"
  # What a dead run leaves behind.
  for f in qmp.sock share.ctl qemu.pid; do
    [ -e "$tmp/h1/run/web1/$f" ] || fail "the crash did not leave $f (the test is wrong)"
  done
  on_host 1 awk -v d="$tmp/h1/run/web1/dir" '$2 == d { f = 1 } END { exit !f }' \
    /proc/self/mounts || fail "the crash did not leave the share's mount (the test is wrong)"

  start_handoffd 1
  state=$(hcli 1 list --json | jq -r '.vms[] | select(.name == "web1") | .state')
  [ "$state" = crashed ] || fail "web1 is '$state' after the crash, not crashed"
  grep -q "VM web1 was running, but its QEMU is gone" h1.log ||
    fail "the daemon does not say what it found"
  last_rec=$(check_records "$tmp/vm.img") || fail "records after the crash"
  [ "$acked" -le "$last_rec" ] || fail "the disk ends at record $last_rec, the guest wrote $acked"

  clear_records "$tmp/vm.img" "$last_rec"
  n=$(boots "$serial")
  hcli 1 start web1
  hcli 1 status web1 | grep -q "QEMU: running" || fail "web1 does not run after start"
  wait_reboot "$serial" "$n" 5
  [ "$(hcli 1 list --json | jq -r '.vms[0].state')" = running ] ||
    fail "web1 is not recorded as running"
  # Its files through the share, as before the crash.
  on_host 1 cat "$tmp/h1/run/web1/dir/config" | grep -q name=web1 ||
    fail "the share over web1's directory does not work after the restart"
done

echo "== a start whose QEMU does not come up fails, and says why"
hcli 1 stop web1 --force
stop_handoffd 1
start_handoffd 1 --qemu /bin/false
rc=0
hcli 1 start web1 > start.out 2>&1 || rc=$?
cat start.out
[ "$rc" != 0 ] || fail "start claimed success without QEMU"
grep -q "QEMU did not" start.out || fail "the failure does not name QEMU"
[ "$(hcli 1 list --json | jq -r '.vms[0].state')" != running ] ||
  fail "web1 is recorded as running"
host_idle 1
# Its logs stay for the operator.
[ -f "$tmp/h1/run/web1/qemu.log" ] || fail "the failed start's log is gone"
stop_handoffd 1
start_handoffd 1
hcli 1 start web1
hcli 1 status web1 | grep -q "QEMU: running" || fail "web1 does not run"
echo "$0: PASS"
