#!/usr/bin/env bash
# Build (once, then cached) the test guest: Debian's kernel, booted
# uncompressed (PVH entry: ~2 s to userspace under TCG), and busybox
# initramfs images.
#
#   tests/guest/build.sh [--rdma]
#
# Prints the cache directory.  It holds:
#   vmlinux          the kernel
#   initrd.gz        busybox + tests/guest/init
#   initrd-rdma.gz   (with --rdma) plus the Soft-RoCE modules (rdma_rxe,
#                    ib_uverbs, rdma_ucm, crc32_generic), rdma-core with
#                    the rxe provider, and handoff-xfer with its libraries
#   initrd-scan.gz   (with --scan) plus the handoff CLI with its libraries
#                    (for 'handoff hostid' and 'handoff scan' in the guest)
# Rebuilt when the kernel package or these scripts change.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
O=${O:-build}
case $O in /*) build=$O ;; *) build=$top/$O ;; esac
cache=${HANDOFF_CACHE:-$top/tests/cache}/guest
rdma=0 scan=0
[ "${1:-}" = --rdma ] && rdma=1
[ "${1:-}" = --scan ] && scan=1
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
if [ -z "$pkg" ]; then
  apt-get update -qq >/dev/null 2>&1 || true
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
fi
[ -n "$pkg" ] || { echo "build.sh: cannot find the kernel package" >&2; exit 1; }
stamp=$pkg-$(cat "$here/build.sh" "$here/init" | sha256sum | cut -c1-12)

if [ ! -f "$cache/vmlinux" ] || [ "$(cat "$cache/kernel.stamp" 2>/dev/null)" != "$pkg" ]; then
  work=$(mktemp -d "$cache/k.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  ( cd "$work" && apt-get download "$pkg" >/dev/null 2>&1 ) || {
    apt-get update -qq >/dev/null 2>&1 || true
    ( cd "$work" && apt-get download "$pkg" >/dev/null )
  }
  dpkg -x "$work"/*.deb "$work/root"
  kver=$(ls "$work/root/lib/modules")
  busybox depmod -b "$work/root" "$kver"
  python3 - "$work/root/boot/vmlinuz-$kver" "$cache/vmlinux.tmp" <<'PY'
import lzma, sys
d = open(sys.argv[1], 'rb').read()
off = d.find(b'\xfd7zXZ\x00')
out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(d[off:])
assert out[:4] == b'\x7fELF', 'not an ELF kernel'
open(sys.argv[2], 'wb').write(out)
PY
  rm -rf "$cache/modules"
  mv "$work/root/lib/modules" "$cache/modules"
  mv "$cache/vmlinux.tmp" "$cache/vmlinux"
  echo "$pkg" > "$cache/kernel.stamp"
  rm -f "$cache"/initrd*.gz "$cache"/*.stamp.initrd*
  rm -rf "$work"
  trap - EXIT
fi
kver=$(ls "$cache/modules")
km=$cache/modules/$kver

# copy_with_libs ROOT FILE...: files and their shared-library closure.
copy_with_libs () {
  local root=$1 f l
  shift
  for f in "$@"; do
    f=$(readlink -f "$f")
    mkdir -p "$root/$(dirname "$f")"
    cp -n "$f" "$root/$f"
    ldd "$f" 2>/dev/null | grep -oE '/[^ ]+' | while read -r l; do
      for x in "$l" "$(readlink -f "$l")"; do
        mkdir -p "$root/$(dirname "$x")"
        cp -n "$x" "$root/$x" 2>/dev/null || true
      done
    done
  done
}

make_initrd () {   # make_initrd OUT MODULES... [-- FILES-WITH-LIBS...]
  local out=$1 mods=() files=() root need=""
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do mods+=("$1"); shift; done
  [ "${1:-}" = -- ] && { shift; files=("$@"); }
  root=$(mktemp -d "$cache/initrd.XXXXXX")
  mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,root,usr/bin,usr/sbin,mnt}
  cp /bin/busybox "$root/bin/busybox"
  for a in $(busybox --list); do
    [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
  done
  cp "$here/init" "$root/init"
  chmod +x "$root/init"
  for m in "${mods[@]}"; do
    line=$(grep -E "/$m\.ko(\.xz)?:" "$km/modules.dep") || {
      echo "build.sh: no module $m" >&2; exit 1; }
    need="$need ${line%%:*} ${line#*:}"
  done
  for p in $(echo $need | tr ' ' '\n' | sort -u); do
    mkdir -p "$root/lib/modules/$kver/$(dirname "$p")"
    cp "$km/$p" "$root/lib/modules/$kver/$p"
  done
  mkdir -p "$root/lib/modules/$kver"
  cp "$km"/modules.{dep,alias,builtin} "$root/lib/modules/$kver/" 2>/dev/null || true
  echo "${mods[*]}" > "$root/etc/handoff-modules"
  if [ ${#files[@]} -gt 0 ]; then
    copy_with_libs "$root" "${files[@]}"
    mkdir -p "$root/lib64"
    cp -n /lib64/ld-linux-x86-64.so.2 "$root/lib64/" 2>/dev/null || true
    printf '%s\n' /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu \
      /usr/lib/x86_64-linux-gnu/libibverbs > "$root/etc/ld.so.conf"
    ldconfig -r "$root" 2>/dev/null || true
  fi
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out.tmp"
  mv "$out.tmp" "$out"
  rm -rf "$root"
}

base_mods=(virtio_pci virtio_blk virtio_net virtio_console qemu_fw_cfg ext4 crc32c_generic
           evdev button)
if [ ! -f "$cache/initrd.gz" ] || [ "$(cat "$cache/initrd.stamp" 2>/dev/null)" != "$stamp" ]; then
  make_initrd "$cache/initrd.gz" "${base_mods[@]}"
  echo "$stamp" > "$cache/initrd.stamp"
fi
if [ $rdma = 1 ]; then
  xfer=$build/bin/handoff-xfer
  [ -x "$xfer" ] || { echo "build.sh: $xfer is not built" >&2; exit 1; }
  xstamp=$stamp-$(sha256sum < "$xfer" | cut -c1-12)
  if [ ! -f "$cache/initrd-rdma.gz" ] || [ "$(cat "$cache/initrd-rdma.stamp" 2>/dev/null)" != "$xstamp" ]; then
    P=/usr/lib/x86_64-linux-gnu/libibverbs
    make_initrd "$cache/initrd-rdma.gz" "${base_mods[@]}" crc32_generic \
      rdma_rxe ib_uverbs rdma_ucm -- \
      /usr/bin/rdma /usr/bin/ibv_devices /usr/bin/ibv_devinfo /usr/bin/rping \
      "$P/librxe-rdmav34.so" /lib/x86_64-linux-gnu/libgcc_s.so.1 "$xfer"
    # The provider's driver file, so libibverbs finds librxe.
    tmp=$(mktemp -d "$cache/drv.XXXXXX")
    mkdir -p "$tmp/etc/libibverbs.d" "$tmp/usr/bin"
    cp /etc/libibverbs.d/rxe.driver "$tmp/etc/libibverbs.d/"
    cp "$xfer" "$tmp/usr/bin/handoff-xfer"
    (cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >> "$cache/initrd-rdma.gz"
    rm -rf "$tmp"
    echo "$xstamp" > "$cache/initrd-rdma.stamp"
  fi
fi
if [ $scan = 1 ]; then
  cli=$build/bin/handoff
  [ -x "$cli" ] || { echo "build.sh: $cli is not built" >&2; exit 1; }
  sstamp=$stamp-$(sha256sum < "$cli" | cut -c1-12)
  if [ ! -f "$cache/initrd-scan.gz" ] || [ "$(cat "$cache/initrd-scan.stamp" 2>/dev/null)" != "$sstamp" ]; then
    make_initrd "$cache/initrd-scan.gz" "${base_mods[@]}" -- "$cli"
    tmp=$(mktemp -d "$cache/cli.XXXXXX")
    mkdir -p "$tmp/usr/bin"
    cp "$cli" "$tmp/usr/bin/handoff"
    (cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >> "$cache/initrd-scan.gz"
    rm -rf "$tmp"
    echo "$sstamp" > "$cache/initrd-scan.stamp"
  fi
fi
echo "$cache"
