#!/usr/bin/env bash
# Cold volume mode: a VM whose disk and directory sit on a SAN volume
# (a partitioned disk image attached as a loop device, which both hosts
# see; each host has its own mount namespace).  'handoff migrate
# --mode volume' identifies the volume, powers the VM off, unregisters
# it, flushes and unmounts, and host 2 finds the volume by signature,
# mounts it at the same place, registers the VM and starts it.  Nothing
# is copied.  First the failing case: host 2 cannot start QEMU, so the
# volume goes back to host 1 and the VM starts there again.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
requires_root
source "$top/tests/volume-images.sh"
guest_hosts 2
export HD_IO_TIMEOUT=10s

# The SAN disk: GPT, one ext4 partition of 300 MiB.
make_disk san.img 320 gpt 512 "2048 614400"
cleanup_fn detach_loops_of "$tmp/san.img"
mkfs_part san.img $((2048 * 512)) $((614400 * 512)) mkfs.ext4 -q -L vmvol
san=$(losetup -f --show san.img)
handoff volume identify -p 1 san.img > vol.json
mkdir vol
cleanup_fn on_host 1 sh -c "! mountpoint -q '$tmp/vol' || umount -l '$tmp/vol'"
cleanup_fn on_host 2 sh -c "! mountpoint -q '$tmp/vol' || umount -l '$tmp/vol'"
on_host 1 handoff volume mount vol.json "$tmp/vol" --scan "$san"
on_host 1 sh -c "
  mkdir -p '$tmp/vol/web1'
  cp '$GUEST_DIR/vmlinux' '$GUEST_DIR/initrd.gz' '$tmp/vol/web1/'
  echo name=web1 > '$tmp/vol/web1/config'
  truncate -s 64M '$tmp/vol/web1.img'
  dd if=/dev/urandom of='$tmp/vol/web1.img' bs=1M seek=1 count=31 conv=notrunc status=none"

handoff keygen k.psk >/dev/null 2>&1
# Where a peer may have volumes mounted here.
echo "{\"volume_roots\": [\"$tmp\"]}" > h1.policy
cp h1.policy h2.policy
start_handoffd 1
define_guest 1 web1 "$tmp/vol/web1" 128 records
hcli 1 start web1
wait_for 120 "the guest on host 1" grep -q "HANDOFF-REC 5" "$tmp/h1/run/web1/serial.log"
# A file written through the share while the VM runs on host 1.
on_host 1 sh -c "echo 'written on host 1' > '$tmp/h1/run/web1/dir/note'"

vol_sums ()                 # vol_sums I: checksums of the volume on host I
{
  on_host "$1" sh -c "cd '$tmp/vol' && find . -path ./lost+found -prune -o -type f -print |
    LC_ALL=C sort | xargs sha256sum"
}

echo "== host 2 cannot start QEMU: the volume and the VM come back to host 1"
start_handoffd 2 --qemu /bin/false
rc=0
hcli 1 migrate web1 --to host2 --mode volume > fail.out 2>&1 || rc=$?
cat fail.out
[ "$rc" = 5 ] || fail "exit $rc, expected 5 (rolled back)"
grep -qi "QEMU" fail.out || fail "the failure does not name QEMU"
wait_for 60 "web1 to run on host 1 again" bash -c \
  "[ -f '$tmp/h1/run/web1/qemu.pid' ] && kill -0 \$(cat '$tmp/h1/run/web1/qemu.pid')"
hcli 1 status web1 | grep -q "QEMU: running" || fail "web1 does not run on host 1"
on_host 1 mountpoint -q "$tmp/vol" || fail "host 1 did not mount the volume again"
if on_host 2 mountpoint -q "$tmp/vol"; then fail "host 2 kept the volume mounted"; fi
host_idle 2
[ "$(sqlite3 h2/state.db "select count(*) from vms")" = 0 ] || fail "host 2 kept a row"
wait_for 120 "the guest on host 1" grep -q "HANDOFF-REC 5" "$tmp/h1/run/web1/serial.log"
stop_handoffd 2

echo "== the volume handoff"
start_handoffd 2
# The volume's files as host 1 leaves them (all but the running
# guest's disk, compared by its records below).
vol_sums 1 | grep -v 'web1.img$' > sums1
acked=$(serial_last REC "$tmp/h1/run/web1/serial.log")
hcli 1 migrate web1 --to host2 --mode volume --json > ok.json ||
  { cat ok.json; fail "volume migration"; }
jq -c 'select(.event == "phase") | .phase' ok.json | tr '\n' ' '; echo
jq -e 'select(.event == "result") | .ok == true and .copied_bytes == 0' ok.json >/dev/null ||
  fail "no successful result with nothing copied: $(tail -n 1 ok.json)"
# Host 1: nothing mounted, no VM, no process.
if on_host 1 mountpoint -q "$tmp/vol"; then fail "host 1 still has the volume mounted"; fi
[ -z "$(hcli 1 list --json | jq -r '.vms[].name')" ] || fail "host 1 still lists web1"
host_idle 1
# Host 2: the volume at the same place, the VM running from it.
on_host 2 mountpoint -q "$tmp/vol" || fail "host 2 has not mounted the volume"
hcli 2 status web1 | grep -q "QEMU: running" || fail "web1 does not run on host 2"
wait_for 120 "the guest on host 2" grep -q "HANDOFF-REC 5" "$tmp/h2/run/web1/serial.log"
[ "$(on_host 2 cat "$tmp/vol/web1/note")" = "written on host 1" ] ||
  fail "the note written on host 1 is not on the volume at host 2"
[ ! -e "$tmp/h2/images/web1" ] || fail "host 2 copied images"
hcli 2 status web1 --json | jq -e --arg p "$tmp/vol/web1.img" '.def.disks[0].path == $p' >/dev/null ||
  fail "host 2 does not use the volume's disk"
# The files as host 1 left them, apart from what the running guest
# writes (its disk).
vol_sums 2 | grep -v 'web1.img$' > sums2
on_host 2 sh -c "cd '$tmp/vol/web1' && sha256sum vmlinux initrd.gz" > k2
(cd "$GUEST_DIR" && sha256sum vmlinux initrd.gz) > k0
diff k0 k2 || fail "the kernel on the volume differs"
diff sums1 sums2 || fail "the volume's files changed on the way to host 2"
[ "$(wc -l < sums2)" -ge 4 ] || fail "only $(wc -l < sums2) files compared"
echo "$(wc -l < sums2) files on the volume at host 2, as host 1 left them"
# Every record the guest had written on host 1 is on the volume at
# host 2 (records past it may be in flight: they are not read).
on_host 2 head -c $(( (acked + 1) * 512 )) "$tmp/vol/web1.img" > disk2.head
[ "$(check_records disk2.head)" = "$acked" ] ||
  fail "the volume at host 2 does not hold records 1 to $acked intact"
echo "records 1 to $acked, acknowledged on host 1, intact on host 2"
echo "$0: PASS"
