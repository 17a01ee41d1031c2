#!/usr/bin/env bash
# handoff-xfer over real RDMA verbs: inside a test guest (Soft-RoCE,
# rdma_rxe on the guest's virtio NIC), a stream of known data crosses
# rdma:// and is checksummed on both ends; a wrong token is refused; a
# relay fans one stream out to two rdma:// receivers, each with its own
# token; the probe finds rxe0 behind eth0's address and nothing behind
# the loopback; the same stream over tcp:// gives a reference rate.  Guests run under
# TCG here, so the rates show function, not speed.
source "$(dirname "$0")/functions.sh"
guest_build --rdma
make_tmpdir

handoff keygen "$tmp/k.psk" 2>/dev/null
mkdir -p "$tmp/overlay"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$tmp/overlay/token"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$tmp/overlay/badtoken"
cp "$tmp/k.psk" "$tmp/overlay/k.psk"
cat > "$tmp/overlay/test.sh" <<'GUEST'
set -x
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
rdma link add rxe0 type rxe netdev eth0 || { echo "HANDOFF-RDMA-NO-LINK"; exit 1; }
ibv_devices
# listening LOG: wait (10 s) for the receiver's "listening on" line.
listening () {
  n=0
  until grep -q "listening on" "$1" 2>/dev/null || [ $n -ge 100 ]; do
    sleep 0.1
    n=$((n + 1))
  done
}
dd if=/dev/urandom of=/tmp/in bs=1M count=24 2>/dev/null
want=$(sha256sum < /tmp/in | cut -d' ' -f1)
echo "HANDOFF-RDMA-SOURCE $want"

handoff-xfer recv -v --listen rdma://10.0.2.15:7000 --token-file /token \
  --accept-timeout 60s --json /tmp/out 2>/tmp/recv.log &
listening /tmp/recv.log
handoff-xfer send /tmp/in --to rdma://10.0.2.15:7000 --token-file /token --json
echo "HANDOFF-RDMA-SEND rc=$?"
wait
cat /tmp/recv.log
got=$(sha256sum < /tmp/out | cut -d' ' -f1)
[ "$got" = "$want" ] && echo "HANDOFF-RDMA-OK $got" || echo "HANDOFF-RDMA-DIFFERS $got"

handoff-xfer recv -v --listen rdma://10.0.2.15:7002 --token-file /token \
  --accept-timeout 8s /tmp/out2 2>/tmp/recv2.log &
listening /tmp/recv2.log
if handoff-xfer send /tmp/in --to rdma://10.0.2.15:7002 --token-file /badtoken 2>/tmp/send2.log; then
  echo "HANDOFF-RDMA-WRONG-TOKEN-ACCEPTED"
else
  cat /tmp/send2.log
  grep -q "wrong token" /tmp/send2.log && echo "HANDOFF-RDMA-WRONG-TOKEN-REFUSED"
fi
wait
cat /tmp/recv2.log

# A relay fanning out to two rdma:// receivers, each with its own token
# in its URI (as handoffd runs it with several destinations).
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > /tmp/token2
handoff-xfer recv -v --listen rdma://10.0.2.15:7004 --token-file /token \
  --accept-timeout 60s /tmp/fan1 2>/tmp/fan1.log &
handoff-xfer recv -v --listen rdma://10.0.2.15:7005 --token-file /tmp/token2 \
  --accept-timeout 60s /tmp/fan2 2>/tmp/fan2.log &
listening /tmp/fan1.log
listening /tmp/fan2.log
handoff-xfer relay -v --listen tcp://10.0.2.15:7006 --psk /k.psk -n 1 \
  --to "rdma://10.0.2.15:7004?token-file=/token" \
  --to "rdma://10.0.2.15:7005?token-file=/tmp/token2" 2>/tmp/relay.log &
listening /tmp/relay.log
handoff-xfer send /tmp/in --to tcp://10.0.2.15:7006 --psk /k.psk
wait
cat /tmp/relay.log /tmp/fan1.log /tmp/fan2.log
[ "$(sha256sum < /tmp/fan1 | cut -d' ' -f1)" = "$want" ] &&
  [ "$(sha256sum < /tmp/fan2 | cut -d' ' -f1)" = "$want" ] &&
  echo "HANDOFF-RDMA-FANOUT-OK"

# What handoffd asks before it offers rdma:// to a peer.
echo "HANDOFF-RDMA-PROBE-ETH0 $(handoff-xfer probe 10.0.2.15 --json)"
echo "HANDOFF-RDMA-PROBE-LO $(handoff-xfer probe 127.0.0.1 --json)"

handoff-xfer recv -v --listen tcp://10.0.2.15:7001 --psk /k.psk --json /tmp/out3 2>/tmp/recv3.log &
listening /tmp/recv3.log
handoff-xfer send /tmp/in --to tcp://10.0.2.15:7001 --psk /k.psk --json
wait
cat /tmp/recv3.log
GUEST
(cd "$tmp/overlay" && find . | cpio -o -H newc --quiet | gzip -1) > "$tmp/overlay.gz"
cat "$GUEST_DIR/initrd-rdma.gz" "$tmp/overlay.gz" > "$tmp/initrd.gz"

GUEST_MEM=1024 GUEST_INITRD=$tmp/initrd.gz start_guest rdma script \
  -netdev user,id=n0 -device virtio-net-pci,netdev=n0
wait_for 400 "the guest test to finish" grep -q HANDOFF-SCRIPT-DONE "$tmp/rdma.serial"
grep -a -E 'HANDOFF-|"event"|handoff-xfer' "$tmp/rdma.serial"
grep -aq HANDOFF-RDMA-OK "$tmp/rdma.serial" || fail "the RDMA stream did not arrive intact"
grep -aq HANDOFF-RDMA-WRONG-TOKEN-REFUSED "$tmp/rdma.serial" ||
  fail "a wrong token was not refused"
grep -aq HANDOFF-RDMA-FANOUT-OK "$tmp/rdma.serial" ||
  fail "the relay did not carry the stream intact to two rdma:// receivers"
probe () { grep -a "HANDOFF-RDMA-PROBE-$1" "$tmp/rdma.serial" | tail -n 1 | cut -d' ' -f2-; }
probe ETH0 | jq -e '.rdma == true and .device == "rxe0"' > /dev/null ||
  fail "the probe did not find rxe0 serving eth0's address: $(probe ETH0)"
probe LO | jq -e '.rdma == false and (.reason | length) > 0' > /dev/null ||
  fail "the probe found RDMA on the loopback address: $(probe LO)"
rate () { grep -a "\"event\":\"sent\"" "$tmp/rdma.serial" | sed -n "${1}p" | jq -r '.rate / 1048576 | floor'; }
echo "inside the TCG guest: rdma:// $(rate 1) MiB/s, tcp:// $(rate 2) MiB/s"
echo "$0: PASS"
