# Helpers for the volume tests: disk images with partition tables and
# filesystems.  Sourced after functions.sh.
requires sfdisk --version
requires mkfs.ext4 -V
requires blkid -V

# make_disk IMG SIZE_MIB LABEL SECTOR "START SIZE [TYPE]"...
#   LABEL is gpt or dos; START and SIZE count SECTOR-byte sectors.  For
#   4096-byte sectors the table is written through a loop device with
#   that logical block size, as a 4Kn disk would have it.
make_disk ()
{
  local img=$1 mib=$2 label=$3 sector=$4 script dev
  shift 4
  rm -f "$img"
  truncate -s "${mib}M" "$img"
  script="label: $label"$'\n'
  [ "$label" = dos ] && script+="label-id: 0x$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"$'\n'
  for p in "$@"; do
    set -- $p
    script+="start=$1, size=$2${3:+, type=$3}"$'\n'
  done
  if [ "$sector" = 4096 ]; then
    dev=$(losetup -f --show -b 4096 "$img")
    printf "%s" "$script" | sfdisk -q --no-reread "$dev"
    losetup -d "$dev"
  else
    printf '%s' "$script" | sfdisk -q "$img"
  fi
}

# mkfs_part IMG OFFSET_BYTES SIZE_BYTES MKFS-COMMAND...: a filesystem on
# one partition of an image.
mkfs_part ()
{
  local img=$1 off=$2 size=$3 dev
  shift 3
  dev=$(losetup -f --show -o "$off" --sizelimit "$size" "$img")
  "$@" "$dev" >/dev/null 2>&1 || { losetup -d "$dev"; fail "$* on $img"; }
  losetup -d "$dev"
}

# loops_of IMG...: loop devices (any) backed by these images.
loop_count ()
{
  losetup -a | wc -l
}

# detach_loops_of FILE...: detach every loop device backed by these
# files (by file, not by device name: a number freed by the test may
# already belong to someone else).
detach_loops_of ()
{
  local f d
  for f in "$@"; do
    for d in $(losetup -j "$f" 2>/dev/null | cut -d: -f1); do
      losetup -d "$d" 2>/dev/null || true
    done
  done
}

# umount_quiet DIR...: unmount what is still mounted there.
umount_quiet ()
{
  local d
  for d in "$@"; do
    mountpoint -q "$d" 2>/dev/null && umount "$d" 2>/dev/null || true
  done
}
