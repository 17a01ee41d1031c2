#!/usr/bin/env bash
# make appliance-boot: boot the appliance under QEMU, its console on
# this terminal (Ctrl-a x quits).  KVM when the host can run it, TCG
# otherwise.  The disk is a throw-away overlay over the image.
#
# The seed (out/boot-seed.json, made on first use with a new key in
# out/boot.psk) has handoffd take CLI requests on its admin channel,
# forwarded to 127.0.0.1:${ADMIN_PORT:-7900} here:
#
#   handoff --host tcp://127.0.0.1:7900 --psk appliance/out/boot.psk list
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
out=$here/out
port=${ADMIN_PORT:-7900}
export PATH=$top/${O:-build}/bin:$PATH
[ -f "$out/handoff-appliance.img" ] || { echo "appliance/boot.sh: no image: run 'make appliance'" >&2; exit 1; }
[ -f "$out/boot.psk" ] || handoff keygen "$out/boot.psk" >/dev/null
jq -n --arg psk "$(cat "$out/boot.psk")" \
  '{name: "appliance", psk: $psk, admin: "tcp://0.0.0.0:7900",
    listen: "tcp://0.0.0.0:7800"}' > "$out/boot-seed.json"
accel=tcg
if grep -qwE 'vmx|svm' /proc/cpuinfo && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  accel=kvm
fi
rm -f "$out/boot-overlay.qcow2"
qemu-img create -q -f qcow2 -b "$out/handoff-appliance.img" -F raw "$out/boot-overlay.qcow2"
echo "appliance: booting ($accel); admin channel on 127.0.0.1:$port"
exec qemu-system-x86_64 -accel "$accel" -m 1024 -smp 2 -nographic \
  -kernel "$out/vmlinuz" -initrd "$out/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0" \
  -drive "file=$out/boot-overlay.qcow2,if=virtio,format=qcow2" \
  -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:7900" \
  -device virtio-net-pci,netdev=n0 \
  -fw_cfg "name=opt/org.handoff/seed,file=$out/boot-seed.json" \
  ${BOOT_ARGS:-}
