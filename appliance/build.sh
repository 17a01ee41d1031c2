#!/usr/bin/env bash
# make appliance: build appliance/out/handoff-appliance.img.
#
#  1. The base system: mmdebstrap of Debian 12 with appliance/packages.txt,
#     QEMU and qemu-utils from bookworm-backports, documentation and
#     locales left out, kernel modules no appliance needs (graphics,
#     sound, wireless, media...) removed.  Cached as
#     out/cache/rootfs-KEY.tar, KEY being a hash of the package list and
#     of this script's base stage: same inputs, same package list.
#  2. handoff: 'make install' into the tree, the overlay in
#     appliance/rootfs/ (systemd units, the seed and self-test scripts,
#     the console banner), services enabled, machine-id emptied so each
#     appliance makes its own at first boot.
#  3. The image: one ext4 filesystem (mkfs.ext4 -d, no loop device),
#     and beside it the kernel and initramfs for direct kernel boot.
#     out/packages.lst lists every package with its version.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
O=${O:-build}
out=$here/out
mkdir -p "$out/cache"
exec 9>"$out/.lock"
flock 9

IMAGE_SIZE=${IMAGE_SIZE:-2G}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
pkgs=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/packages.txt" | sort -u | paste -sd, -)
base_stage=$(sed -n '/^# --- base stage/,/^# --- end of base stage/p' "$0")
key=$(printf '%s\n%s\n%s\n' "$pkgs" "$base_stage" "$MIRROR" | sha256sum | cut -c1-16)
base=$out/cache/rootfs-$key.tar

# --- base stage
if [ ! -f "$base" ]; then
  echo "appliance: building the base system ($key)"
  rm -f "$out"/cache/rootfs-*.tar
  mmdebstrap --variant=minbase --mode=root --format=tar \
    --include="$pkgs" \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='chroot "$1" apt-get install -y --no-install-recommends -t bookworm-backports qemu-system-x86 qemu-utils' \
    --customize-hook='for d in gpu media sound net/wireless staging bluetooth iio hwmon input/touchscreen isdn comedi video; do rm -rf "$1"/lib/modules/*/kernel/drivers/$d; done; rm -rf "$1"/lib/modules/*/kernel/sound "$1"/lib/modules/*/kernel/net/bluetooth "$1"/lib/modules/*/kernel/net/mac80211 "$1"/lib/modules/*/kernel/net/wireless; for k in "$1"/lib/modules/*; do chroot "$1" depmod "$(basename "$k")"; done' \
    --customize-hook='chroot "$1" apt-get clean; rm -rf "$1"/var/lib/apt/lists/*' \
    bookworm "$base.tmp" \
    "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
    "deb $MIRROR bookworm-backports main"
  mv "$base.tmp" "$base"
fi
# --- end of base stage

root=$(mktemp -d "$out/root.XXXXXX")
trap 'rm -rf "$root"' EXIT
tar -C "$root" --numeric-owner -xpf "$base"

echo "appliance: installing handoff"
make -C "$top" O="$O" install DESTDIR="$root" PREFIX=/usr >/dev/null
# The appliance's policy is its seed's (appliance-seed writes it); with
# none, it admits what it has room for, as handoffd without a file.
rm -f "$root/etc/handoff/policy.json"
cp -a "$here/rootfs/." "$root/"
chmod 0755 "$root"/usr/lib/handoff/appliance-*
mkdir -p "$root/etc/handoff"
# Each appliance makes its own machine id at first boot.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
echo handoff-appliance > "$root/etc/hostname"
echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" > "$root/etc/fstab"
for u in handoff-seed.service handoffd.service handoff-issue.service \
         handoff-selftest.service systemd-networkd.service \
         systemd-networkd-wait-online.service serial-getty@ttyS0.service; do
  chroot "$root" systemctl enable "$u" >/dev/null 2>&1 ||
    { echo "appliance: cannot enable $u" >&2; exit 1; }
done
# No password: the console shows the appliance's state; log in as root
# only where the console itself is trusted.
chroot "$root" passwd -d root >/dev/null
chroot "$root" dpkg-query -W -f '${Package} ${Version}\n' | sort > "$out/packages.lst"
git -C "$top" rev-parse --short HEAD > "$root/etc/handoff/revision" 2>/dev/null || true

echo "appliance: making the image"
cp "$(ls "$root"/boot/vmlinuz-* | tail -n 1)" "$out/vmlinuz"
cp "$(ls "$root"/boot/initrd.img-* | tail -n 1)" "$out/initrd.img"
rm -f "$out/handoff-appliance.img"
mkfs.ext4 -q -F -L handoff-root -d "$root" "$out/handoff-appliance.img.tmp" "$IMAGE_SIZE"
mv "$out/handoff-appliance.img.tmp" "$out/handoff-appliance.img"
used=$(du -sh --apparent-size "$root" | cut -f1)
echo "appliance: $out/handoff-appliance.img (filesystem $IMAGE_SIZE, $used of files, $(wc -l < "$out/packages.lst") packages)"
