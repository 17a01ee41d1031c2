#!/usr/bin/env bash
# handoff-xfer refuses what it must, with a clear message, and never
# hangs: no RDMA device, missing keys, strangers and wrong tokens, a
# sender that dies mid-stream, a receiver that stops reading, empty and
# large streams, bad arguments.
source "$(dirname "$0")/functions.sh"
requires python3 --version
requires unshare -m true   # the full-disk case mounts a small tmpfs
make_tmpdir
cd "$tmp"

handoff keygen k.psk 2>/dev/null
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > token
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > other
head -c 16M /dev/urandom > data

expect_fail () {                # expect_fail MESSAGE CMD...
  local want=$1
  shift
  if timeout 60 "$@" >out 2>err; then cat err; fail "'$*' succeeded"; fi
  grep -q -- "$want" err || { cat err; fail "'$*': no '$want' in the error"; }
  echo "refused: $* -> $(grep -m1 -- "$want" err)"
}

echo "== no RDMA device: a clear error naming it; tcp:// still works"
if [ -z "$(ls /sys/class/infiniband 2>/dev/null)" ]; then
  expect_fail "no RDMA device" handoff-xfer send data --to rdma://127.0.0.1:7000 \
    --token-file token
  expect_fail "no RDMA device" handoff-xfer recv --listen rdma://127.0.0.1:7000 \
    --token-file token out
  expect_fail "no RDMA device" handoff-xfer relay --listen rdma://127.0.0.1:7000 \
    --to unix:"$tmp/x" --token-file token
fi
expect_fail "need a token" handoff-xfer send data --to rdma://127.0.0.1:7000
expect_fail "TLS-only" handoff-xfer send data --to tcp://127.0.0.1:7000
expect_fail "TLS-only" handoff-xfer recv --listen tcp://127.0.0.1:7000 out
expect_fail "expected rdma://" handoff-xfer send data --to nbd://127.0.0.1/
expect_fail "psk: /etc/hostname: line 1" handoff-xfer send data --to tcp://127.0.0.1:7000 --psk /etc/hostname
# A missing or unreadable key, or a URI without what it needs, is a
# usage error (1) on every command, found before any connection: not
# an unreachable peer (7).
for args in "send data --to tcp://127.0.0.1:7000" "recv --listen tcp://127.0.0.1:7000 out" \
            "send data --to rdma://127.0.0.1:7000" "send data --to nbd://127.0.0.1/" \
            "send data --to tcp://127.0.0.1:7000 --psk /etc/hostname" \
            "recv --listen tcp://127.0.0.1:7000 out --psk nonexist.psk"; do
  rc=0
  # shellcheck disable=SC2086
  handoff-xfer $args > /dev/null 2>&1 || rc=$?
  [ "$rc" = 1 ] || fail "handoff-xfer $args: exit $rc, expected 1"
done
expect_fail "at least 16" handoff-xfer send data --to tcp://h:1 --psk k.psk \
  --token-file /dev/null
expect_fail "expected wait or drop" handoff-xfer relay --listen unix:a --to unix:b --lagging fast
expect_fail "must be between 1M" handoff-xfer relay --listen unix:a --to unix:b --buffer 1K
expect_fail "needs --listen" handoff-xfer relay --to unix:b
expect_fail "unknown command" handoff-xfer frob
expect_fail "exactly one --to" handoff-xfer send data

echo "== --json: each end's summary on stdout, one object"
p=$(free_port)
handoff-xfer recv --listen "tcp://127.0.0.1:$p" --psk k.psk --json sum.got \
  > recv.json 2> recv.err &
rpid=$!
wait_for_port "$p"
handoff-xfer send data --to "tcp://127.0.0.1:$p" --psk k.psk --json > send.json
wait "$rpid" || { cat recv.err; fail "the receiver failed"; }
cmp data sum.got || fail "the stream changed the data"
jq -se 'length == 1 and .[0].event == "received" and .[0].bytes == 16777216' recv.json > /dev/null ||
  fail "recv --json: $(cat recv.json)"
jq -se 'length == 1 and .[0].event == "sent" and .[0].bytes == 16777216' send.json > /dev/null ||
  fail "send --json: $(cat send.json)"

echo "== strangers and wrong tokens are refused; the receiver keeps waiting"
p=$(free_port)
handoff-xfer recv --listen "tcp://127.0.0.1:$p" --psk k.psk --token-file token \
  --accept-timeout 30s got > recv.out 2> recv.err &
rpid=$!
cleanup_fn kill_quiet $rpid
wait_for_port "$p"
# Not TLS at all.
printf 'GET / HTTP/1.0\r\n\r\n' | timeout 5 socat - "TCP:127.0.0.1:$p" >/dev/null 2>&1 || true
# The right key but junk instead of the handshake.
key=$(cut -d: -f2 k.psk)
printf 'junk junk junk junk junk junk junk junk junk junk junk junk junk junk\n' |
  timeout 5 gnutls-cli --logfile=/dev/null -p "$p" --pskusername=handoff --pskkey="$key" \
    --priority='NORMAL:-KX-ALL:+ECDHE-PSK:+DHE-PSK' 127.0.0.1 >/dev/null 2>&1 || true
# The right key, the wrong token.
expect_fail "wrong token" handoff-xfer send data --to "tcp://127.0.0.1:$p" \
  --psk k.psk --token-file other
# Still there for the real sender.
handoff-xfer send data --to "tcp://127.0.0.1:$p" --psk k.psk --token-file token
wait $rpid
cmp data got || fail "data differs"
cat recv.err
grep -q "not a handoff-xfer peer\|handshake" recv.err || fail "the junk peer was not logged"
grep -q "wrong token" recv.err || fail "the wrong token was not logged"

echo "== empty and large streams"
: > empty
# A complete stream replaces what the file held.
echo "an older file" > got0
p=$(free_port)
handoff-xfer recv --listen "tcp://127.0.0.1:$p" --psk k.psk got0 2>/dev/null &
wait_for_port "$p"
handoff-xfer send empty --to "tcp://127.0.0.1:$p" --psk k.psk
wait
[ -f got0 ] && [ ! -s got0 ] || fail "empty stream"
head -c 96M /dev/urandom > big
p=$(free_port)
handoff-xfer recv --listen "tcp://127.0.0.1:$p" --psk k.psk gotbig 2>/dev/null &
wait_for_port "$p"
handoff-xfer send big --to "tcp://127.0.0.1:$p" --psk k.psk
wait
cmp big gotbig || fail "large stream differs"

echo "== a receive that fails leaves the file as it was"
echo "the previous state" > kept
expect_fail "no sender arrived" handoff-xfer recv \
  --listen "tcp://127.0.0.1:$(free_port)" --psk k.psk --accept-timeout 1s kept
[ "$(cat kept)" = "the previous state" ] || fail "a receive timing out changed the file"
cp kept cut

echo "== a sender that dies mid-stream"
p=$(free_port)
handoff-xfer recv --listen "tcp://127.0.0.1:$p" --psk k.psk --accept-timeout 20s \
  cut > recv.out 2> recv.err &
rpid=$!
wait_for_port "$p"
# A slow source (a pipe that stalls) so the sender is mid-stream when
# it is killed.
mkfifo pipe
(cat big; sleep 30) > pipe &
feeder=$!
cleanup_fn kill_quiet $feeder
handoff-xfer send pipe --to "tcp://127.0.0.1:$p" --psk k.psk 2>/dev/null &
spid=$!
sleep 2
kill -9 $spid
if wait $rpid; then cat recv.err; fail "the receiver took a cut stream as complete"; fi
cat recv.err
cmp kept cut || fail "a cut stream changed the file"
ls cut.part* 2>/dev/null && fail "a cut stream left its partial file"
kill_quiet $feeder

echo "== a receive into a full disk"
# A 1 MiB tmpfs in a mount namespace of the receiver's own: the stream
# (96 MiB) cannot fit.  The receiver must fail, say why, and leave the
# file it would have replaced, with no partial file.
p=$(free_port)
mkdir small
unshare -m sh -c "
  mount -t tmpfs -o size=1M tmpfs small || exit 90
  echo 'the previous state' > small/f
  handoff-xfer recv --listen tcp://127.0.0.1:$p --psk k.psk \
    --accept-timeout 20s small/f 2> full.err
  echo \$? > full.rc
  cat small/f > full.after
  ls small > full.ls" &
upid=$!
wait_for_port "$p"
handoff-xfer send big --to "tcp://127.0.0.1:$p" --psk k.psk 2> send.err &&
  fail "the sender saw a receive into a full disk succeed"
wait $upid
[ "$(cat full.rc)" != 0 ] || fail "the receiver took a full disk as success"
cat full.err
grep -q "No space left" full.err || fail "the full disk was not named"
[ "$(cat full.after)" = "the previous state" ] || fail "a full disk changed the file"
[ "$(cat full.ls)" = f ] || fail "a full disk left $(cat full.ls)"

echo "== a receiver that stops reading"
p=$(free_port)
handoff-xfer recv --listen "tcp://127.0.0.1:$p" --psk k.psk stalled 2>/dev/null &
rpid=$!
cleanup_fn kill_quiet -CONT $rpid
cleanup_fn kill_quiet -9 $rpid
wait_for_port "$p"
start=$(date +%s)
(
  sleep 1
  kill -STOP $rpid
) &
head -c 1G /dev/zero > huge
expect_fail "timed out\|Connection timed out" handoff-xfer send huge \
  --to "tcp://127.0.0.1:$p" --psk k.psk --timeout 2s
# Generous: a sender that hung would wait for ever, not 2 s.
[ $(( $(date +%s) - start )) -lt 150 ] || fail "the sender hung"
kill -9 $rpid 2>/dev/null || true
echo "$0: PASS"
