#!/usr/bin/env bash
# Every refusal of handoff volume, each with a clear message and with
# nothing attached or mounted afterwards: a cloned disk (both named), a
# missing disk (the extent named), an extent whose offset or size
# differs, a filesystem UUID that differs, a volume already mounted, a
# corrupt or truncated partition table, malformed descriptors (the field
# named).
source "$(dirname "$0")/functions.sh"
requires_root
source "$top/tests/volume-images.sh"
make_tmpdir
cd "$tmp"
vol () { handoff volume "$@"; }

make_disk d1.img 200 gpt 512 "2048 131072"
mkfs_part d1.img $((2048*512)) $((131072*512)) mkfs.ext4 -q
make_disk d2.img 200 dos 512 "2048 131072 83"
mkfs_part d2.img $((2048*512)) $((131072*512)) mkfs.ext4 -q
vol identify d1.img > d1.json
vol identify d2.img > d2.json
cleanup_fn detach_loops_of "$tmp/d1.img" "$tmp/d2.img" "$tmp/clone.img"
mkdir -p mnt mnt2
cleanup_fn umount_quiet "$tmp/mnt" "$tmp/mnt2"

loops0=$(loop_count)
refuse () {                     # refuse WANT CMD...
  local want=$1
  shift
  if "$@" >out 2>err; then cat out; fail "accepted: $*"; fi
  grep -q -- "$want" err || { cat err; fail "'$*': no '$want' in the error"; }
  echo "refused: $(head -c 300 err)"
  [ "$(loop_count)" = "$loops0" ] || fail "a loop device was left attached: $*"
  mountpoint -q mnt2 && fail "something was mounted: $*"
  return 0
}

echo "== a cloned disk"
cp --sparse=always d1.img clone.img
refuse "is on two disks, .*d1.img and .*clone.img\|is on two disks" \
  vol locate d1.json --scan d1.img --scan clone.img
grep -q "d1.img" err && grep -q "clone.img" err || fail "both disks must be named"
refuse "refusing to guess" vol mount d1.json mnt2 --scan d1.img --scan clone.img
# The same disk twice (another name) is not a clone.
ln -s d1.img same.img
vol locate d1.json --scan d1.img --scan same.img >/dev/null

echo "== a missing disk"
refuse "extent 0 (gpt disk $(jq -r '.extents[0].disk_id' d1.json).*no disk with this signature" \
  vol locate d1.json --scan d2.img
vol locate d1.json --scan d2.img 2>/dev/null || [ $? -eq 8 ] || fail "exit code for a missing disk"

echo "== an extent whose offset or size differs"
jq '.extents[0].offset += 1048576' d1.json > off.json
refuse "has no partition at offset $((2048*512 + 1048576))" vol mount off.json mnt2 --scan d1.img
jq '.extents[0].size -= 512' d1.json > size.json
refuse "is $((131072*512)) bytes, not $((131072*512 - 512))" vol mount size.json mnt2 --scan d1.img

echo "== a filesystem UUID that differs"
jq '.uuid = "00000000-1111-2222-3333-444444444444"' d1.json > uuid.json
refuse "expected ext4 00000000-1111-2222-3333-444444444444" vol mount uuid.json mnt2 --scan d1.img
jq '.fstype = "xfs"' d1.json > type.json
refuse "holds ext4 filesystem" vol mount type.json mnt2 --scan d1.img

echo "== already mounted on this host"
vol mount d1.json mnt --scan d1.img >/dev/null
loops0=$(loop_count)
refuse "already mounted on this host at $tmp/mnt" vol mount d1.json mnt2 --scan d1.img
vol unmount mnt >/dev/null
loops0=$(loop_count)

echo "== a corrupt or truncated partition table"
cp --sparse=always d1.img corrupt.img
# Both GPT headers gone: only the protective MBR is left.
dd if=/dev/zero of=corrupt.img bs=512 seek=1 count=1 conv=notrunc status=none
dd if=/dev/zero of=corrupt.img bs=512 seek=$(( $(stat -c %s corrupt.img) / 512 - 1 )) \
   count=1 conv=notrunc status=none
refuse "protective MBR with no readable GPT" vol identify corrupt.img
refuse "protective MBR with no readable GPT" vol locate d1.json --scan corrupt.img
cp --sparse=always d2.img truncated.img
truncate -s 32M truncated.img
refuse "past the end of the disk" vol locate d2.json --scan truncated.img
refuse "past the end of the disk" vol identify truncated.img

echo "== malformed descriptors"
bad () {                        # bad WANT JQ-FILTER
  jq "$2" d1.json > bad.json
  refuse "$1" vol mount bad.json mnt2 --scan d1.img
}
bad "'format' is 'handoff-volume/9'" '.format = "handoff-volume/9"'
bad "'offset' must not be negative" '.extents[0].offset = -512'
# (jq rounds big numbers: edit the text.)
sed 's/"offset": 1048576/"offset": 9223372036854774784/' d1.json > bad.json
refuse "overflow" vol mount bad.json mnt2 --scan d1.img
bad "1 to 64 extents, not 100" '.extents = [range(100) as $i | .extents[0] | .offset = ($i * 512)]'
bad "'disk_id' .* not a GUID\|bad character" '.extents[0].disk_id = "zz" + .extents[0].disk_id[2:]'
bad "8 hex digits" '.extents[0].table = "dos" | .extents[0].disk_id = "12345"'
bad "'sector_size' must be 512 or 4096" '.extents[0].sector_size = 1000'
bad "unknown field 'extra'" '.extra = true'
echo '{"format": "handoff-volume/1", "fstype": ' > bad.json
refuse "not valid JSON" vol mount bad.json mnt2 --scan d1.img
refuse "No such file" vol mount missing.json mnt2 --scan d1.img
refuse "not a directory\|No such file" vol mount d1.json nowhere --scan d1.img
refuse "is not a mount point" vol unmount "$tmp"
echo "$0: PASS"
