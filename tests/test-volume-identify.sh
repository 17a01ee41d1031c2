#!/usr/bin/env bash
# handoff volume identify: MBR and GPT disks with 512- and 4096-byte
# sectors, several partitions, ext4, xfs and btrfs; the same descriptor
# for an image, a device and a mounted path; a GPT's protective MBR is
# never taken for an MBR.
source "$(dirname "$0")/functions.sh"
requires_root
source "$top/tests/volume-images.sh"
requires mkfs.xfs -V
requires mkfs.btrfs --version
make_tmpdir
cd "$tmp"
vol () { handoff volume "$@"; }

# dos, 512: ext4 + xfs
make_disk mbr.img 420 dos 512 "2048 131072 83" "133120 655360 83"
mkfs_part mbr.img $((2048*512)) $((131072*512)) mkfs.ext4 -q -L one
mkfs_part mbr.img $((133120*512)) $((655360*512)) mkfs.xfs -f -L two
# gpt, 512: ext4, ext4, btrfs
make_disk gpt.img 512 gpt 512 "2048 65536" "67584 65536" "133120 327680"
mkfs_part gpt.img $((2048*512)) $((65536*512)) mkfs.ext4 -q
mkfs_part gpt.img $((67584*512)) $((65536*512)) mkfs.ext4 -q
mkfs_part gpt.img $((133120*512)) $((327680*512)) mkfs.btrfs -f
# gpt and dos with 4096-byte sectors
make_disk gpt4k.img 128 gpt 4096 "256 16384"
mkfs_part gpt4k.img $((256*4096)) $((16384*4096)) mkfs.ext4 -q
make_disk mbr4k.img 128 dos 4096 "256 16384 83"
mkfs_part mbr4k.img $((256*4096)) $((16384*4096)) mkfs.ext4 -q

check () {                      # check IMG PART TABLE SECTOR OFFSET SIZE FSTYPE
  local img=$1 part=$2 table=$3 ss=$4 off=$5 size=$6 fstype=$7 d want uuid
  vol identify --partition "$part" --json "$img" > d.json || fail "identify $img $part"
  jq -e --arg t "$table" --argjson ss "$ss" --argjson off "$off" \
        --argjson size "$size" --arg fs "$fstype" \
     '.format == "handoff-volume/1" and .fstype == $fs and
      (.extents | length) == 1 and .extents[0].table == $t and
      .extents[0].sector_size == $ss and .extents[0].offset == $off and
      .extents[0].size == $size and .extents[0].partition == '"$part" \
     d.json >/dev/null || { cat d.json; fail "$img partition $part"; }
  # The disk signature is the one the table holds.
  if [ "$ss" = 512 ]; then
    want=$(blkid -p -o value -s PTUUID "$img")
  else
    d=$(losetup -f --show -b 4096 "$img")
    want=$(blkid -p -o value -s PTUUID "$d")
    losetup -d "$d"
  fi
  [ "$(jq -r '.extents[0].disk_id' d.json)" = "$want" ] ||
    fail "$img: disk id $(jq -r '.extents[0].disk_id' d.json), table says $want"
  d=$(losetup -f --show -o "$off" --sizelimit "$size" "$img")
  uuid=$(blkid -p -o value -s UUID "$d")
  losetup -d "$d"
  [ "$(jq -r .uuid d.json)" = "$uuid" ] || fail "$img: filesystem UUID"
  echo "ok: $img partition $part: $table $(jq -r '.extents[0].disk_id' d.json) $fstype"
}
check mbr.img 1 dos 512 $((2048*512)) $((131072*512)) ext4
check mbr.img 2 dos 512 $((133120*512)) $((655360*512)) xfs
check gpt.img 1 gpt 512 $((2048*512)) $((65536*512)) ext4
check gpt.img 2 gpt 512 $((67584*512)) $((65536*512)) ext4
check gpt.img 3 gpt 512 $((133120*512)) $((327680*512)) btrfs
check gpt4k.img 1 gpt 4096 $((256*4096)) $((16384*4096)) ext4
check mbr4k.img 1 dos 4096 $((256*4096)) $((16384*4096)) ext4
jq -e '.label == "two"' <(vol identify -p 2 mbr.img) >/dev/null || fail "label"

# An image with several filesystems needs --partition.
if vol identify gpt.img 2>err; then fail "ambiguous image accepted"; fi
grep -q "choose one with --partition" err

# The same descriptor through a device and through a mounted path.
vol identify -p 1 --json gpt.img > from-image.json
dev=$(losetup -f --show -o $((2048*512)) --sizelimit $((65536*512)) gpt.img)
cleanup_fn detach_loops_of "$tmp/gpt.img"
vol identify --json "$dev" > from-dev.json
mkdir mnt
mount "$dev" mnt
cleanup_fn umount "$tmp/mnt"
vol identify --json mnt > from-mount.json
mkdir -p mnt/sub/dir
vol identify --json mnt/sub/dir > from-subdir.json
for f in from-dev from-mount from-subdir; do
  diff from-image.json "$f.json" || fail "$f differs from the image's descriptor"
done
echo "$0: PASS"
