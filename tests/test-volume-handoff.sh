#!/usr/bin/env bash
# The cold handoff of a SAN volume between two hosts (network and mount
# namespaces) that see the same disks under other names and in another
# order: host A mounts from a descriptor, writes, unmounts (syncfs,
# unmount, detach) and hands the descriptor over; host B mounts from the
# descriptor alone; every file's checksum matches; A holds nothing.
# Done for an ext4 volume and for a btrfs spread over partitions of two
# disks (every member listed, found, mounted together).
source "$(dirname "$0")/functions.sh"
requires_root
source "$top/tests/volume-images.sh"
requires mkfs.btrfs --version
requires_netns
make_tmpdir
cd "$tmp"
make_hosts 2

# Disk 1 (GPT): an ext4 volume and a btrfs member.  Disk 2 (MBR): the
# other btrfs member.
make_disk d1.img 512 gpt 512 "2048 131072" "133120 327680"
make_disk d2.img 320 dos 512 "2048 327680 83"
cleanup_fn detach_loops_of "$tmp/d1.img" "$tmp/d2.img"
cleanup_fn umount_quiet "$tmp/setup" "$tmp/b-ext4" "$tmp/b-btrfs"
mkfs_part d1.img $((2048*512)) $((131072*512)) mkfs.ext4 -q -L data
m1=$(losetup -f --show -o $((133120*512)) --sizelimit $((327680*512)) d1.img)
m2=$(losetup -f --show -o $((2048*512)) --sizelimit $((327680*512)) d2.img)
mkfs.btrfs -q -f -L multi -d single -m raid1 "$m1" "$m2" >/dev/null
btrfs device scan "$m1" "$m2" >/dev/null 2>&1 || true
mkdir setup
mount -t btrfs -o "device=$m1,device=$m2" "$m1" setup
echo seed > setup/seed
handoff volume unmount --output btrfs.json setup >/dev/null
losetup -d "$m1" "$m2" 2>/dev/null || true
jq -e '(.extents | length) == 2 and .fstype == "btrfs"' btrfs.json >/dev/null ||
  fail "the btrfs descriptor does not list both members: $(cat btrfs.json)"
handoff volume identify -p 1 d1.img > ext4.json

# Host A sees the disks as loop devices attached in order d1, d2.
a1=$(losetup -f --show d1.img)
a2=$(losetup -f --show d2.img)
mkdir -p a-ext4 a-btrfs b-ext4 b-btrfs
for v in ext4 btrfs; do
  on_host 1 handoff volume mount "$v.json" "a-$v" --scan "$a1" --scan "$a2"
  on_host 1 sh -c "
    mkdir -p a-$v/dir/sub
    head -c 3M /dev/urandom > a-$v/big
    for i in \$(seq 50); do head -c \$((i * 1000)) /dev/urandom > a-$v/dir/sub/f\$i; done
    ln -s big a-$v/link
    cd a-$v && find . -type f -exec sha256sum {} + | sort -k2 > ../sums-$v"
  on_host 1 handoff volume unmount --output "handed-$v.json" "a-$v" >/dev/null
  if on_host 1 mountpoint -q "a-$v"; then fail "host A still has $v mounted"; fi
done
losetup -d "$a1" "$a2"

# Host B: the same disks, attached the other way round and under other
# names; it scans its block devices, knowing nothing but the descriptor.
ln d2.img other-name-1.img
ln d1.img other-name-2.img
b1=$(losetup -f --show other-name-1.img)
b2=$(losetup -f --show other-name-2.img)
cleanup_fn detach_loops_of "$tmp/other-name-1.img" "$tmp/other-name-2.img"
for v in ext4 btrfs; do
  if mountpoint -q "b-$v"; then fail "B's mount point is already in use"; fi
  on_host 2 handoff volume locate "handed-$v.json"
  # --json: one object, the extents under a name, each on one of B's disks.
  on_host 2 handoff volume locate "handed-$v.json" --json > "loc-$v.json"
  jq -e --arg b1 "$b1" --arg b2 "$b2" '.ok == true and (.fstype | length > 0) and
      (.extents | length > 0) and
      all(.extents[]; .disk == $b1 or .disk == $b2)' "loc-$v.json" >/dev/null ||
    fail "$v: locate --json: $(cat "loc-$v.json")"
  on_host 2 handoff volume mount "handed-$v.json" "b-$v"
  on_host 2 sh -c "cd b-$v && find . -type f -exec sha256sum {} + | sort -k2" > "b-sums-$v"
  diff "sums-$v" "b-sums-$v" || fail "$v: files differ on host B"
  on_host 2 readlink "b-$v/link" | grep -qx big || fail "$v: symlink"
  # Host A does not see B's mount, and has none of its own.
  if on_host 1 mountpoint -q "b-$v"; then fail "A sees B's mount"; fi
  on_host 2 handoff volume unmount "b-$v" >/dev/null
  echo "$v: handed over, $(wc -l < "sums-$v") files verified on host B"
done
echo "$0: PASS"
