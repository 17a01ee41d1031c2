#!/usr/bin/env bash
# Migrations that fail half way must end cleanly: host 2's QEMU fails
# to start; it fails to load the stream; host 2's disk fills up; the
# link between the hosts is cut mid-copy; the mirror cannot be put
# under the VM's disk on host 1.  Each time the VM goes on
# running on host 1 (its counter still ticking) on its disk's file again
# (the mirror taken from under it), the CLI exits with
# "rolled back" (5) and the reason, and host 2 keeps no files, exports,
# processes or rows.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
guest_hosts 2
export HD_IO_TIMEOUT=5s

handoff keygen k.psk >/dev/null 2>&1
start_handoffd 1
make_test_vm "$tmp/vm"
define_guest 1 web1 "$tmp/vm" 256 records
hcli 1 start web1
serial=$tmp/h1/run/web1/serial.log
wait_for 120 "the guest" grep -q "HANDOFF-REC 5" "$serial"
disks_on_files 1 web1

host2_clean () {
  wait_for 40 "host 2 to clean up" bash -c \
    "[ -z \"\$(find '$tmp/h2/images' '$tmp/h2/run' -mindepth 1 2>/dev/null)\" ]"
  host_idle 2
  [ "$(sqlite3 "$tmp/h2/state.db" 'select count(*) from vms; select count(*) from objects; select count(*) from events;' | tr '\n' ' ')" = "0 0 0 " ] ||
    fail "host 2 kept rows"
  [ "$(sqlite3 "$tmp/h2/state.db" "select count(*) from journal where result is null")" = 0 ] ||
    fail "host 2 left a migration open"
}
host1_runs () {
  local before
  hcli 1 status web1 | grep -q "QEMU: running" || fail "web1 does not run on host 1"
  before=$(serial_last REC "$serial")
  wait_for 30 "new records on host 1" bash -c \
    "[ \$(serial_last REC '$serial') -gt $before ]"
  check_records "$tmp/vm.img" >/dev/null || fail "host 1's disk holds a broken record"
  # The rollback took the mirror from under the disk again.
  disks_on_files 1 web1
}
expect_rollback () {          # expect_rollback TEXT
  local rc=0
  hcli 1 migrate web1 --to host2 > out.txt 2>&1 || rc=$?
  cat out.txt
  [ "$rc" = 5 ] || fail "exit $rc, expected 5 (rolled back)"
  grep -qi -- "$1" out.txt || fail "the failure does not say '$1'"
}

echo "== host 2's QEMU does not start"
start_handoffd 2 --qemu /bin/false
expect_rollback "QEMU did not start"
host2_clean; host1_runs
# The evidence stays where the log says it is.
logs=$(grep -o "logs in [^)]*" h2.log | tail -n 1 | cut -d' ' -f3)
[ -n "$logs" ] && [ -f "$logs/qemu.log" ] ||
  fail "host 2's log points to '$logs', which holds no qemu.log"
stop_handoffd 2

echo "== host 2's QEMU cannot load the stream"
cat > bad-qemu <<'EOF'
#!/bin/sh
# Another RAM size than the source's: the stream does not fit.
exec qemu-system-x86_64 "$@" -m 384M
EOF
chmod +x bad-qemu
start_handoffd 2 --qemu "$tmp/bad-qemu"
expect_rollback "migration"
host2_clean; host1_runs
stop_handoffd 2

echo "== host 2's disk fills up"
mkdir -p h2/images
on_host 2 mount -t tmpfs -o size=40M tmpfs "$tmp/h2/images"
cleanup_fn on_host 2 sh -c "! mountpoint -q '$tmp/h2/images' || umount -l '$tmp/h2/images'"
echo '{"check_disk": false}' > h2.policy
start_handoffd 2
expect_rollback "No space left on device"
host2_clean; host1_runs
stop_handoffd 2
on_host 2 umount "$tmp/h2/images"
rm -f h2.policy

echo "== the link is cut mid-copy"
start_handoffd 2
host_rate 1 40mbit
hcli 1 migrate web1 --to host2 > cut.txt 2>&1 &
mig=$!
wait_for 30 "the copy to begin" grep -q "storage" cut.txt
sleep 1
host_link 1 down
rc=0
wait $mig || rc=$?
cat cut.txt
[ "$rc" = 5 ] || fail "exit $rc after the link went down, expected 5"
grep -q "failed: .*no valid answer in time" cut.txt ||
  fail "the failure does not say that host 2 stopped answering"
host_link 1 up
host_rate 1 10gbit
host2_clean; host1_runs

echo "== the mirror cannot be put under the disk (its nbdkit does not start)"
stop_handoffd 1
HANDOFF_FILTER=$tmp/no-such-filter.so start_handoffd 1
expect_rollback "nbdkit for disk 0 did not start"
host2_clean; host1_runs
stop_handoffd 1
start_handoffd 1

echo "== and then it works"
hcli 1 migrate web1 --to host2 > ok.txt || { cat ok.txt; fail "migration"; }
hcli 2 status web1 | grep -q "QEMU: running" || fail "web1 does not run on host 2"
echo "$0: PASS"
