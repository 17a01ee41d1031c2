#!/usr/bin/env bash
# Streams over a slow link (500 ms round trip, a distant site, made by
# a proxy that delays every chunk 250 ms each way): the TLS handshake
# and hello take longer than a relay's or receiver's accept polls, and
# must still complete against their own deadline.  A relay forwards to
# a receiver; handoff-xfer recv takes a stream directly.  Both copies
# are compared byte for byte.
source "$(dirname "$0")/functions.sh"
requires python3 --version
make_tmpdir
cd "$tmp"

handoff keygen k.psk 2>/dev/null
head -c 4M /dev/urandom > data

slow_link () {                  # slow_link TO_PORT: sets $far
  far=$(free_port)
  python3 "$top/tests/delay-proxy.py" 127.0.0.1 "$far" 127.0.0.1 "$1" 0.25 \
    > "proxy-$far.out" &
  cleanup_fn kill_quiet $!
  wait_for 10 "delay proxy" grep -q ready "proxy-$far.out"
}

echo "== a relay (accept polls every 200 ms) forwarding to a receiver"
rp=$(free_port) dp=$(free_port)
handoff-xfer recv --listen "tcp://127.0.0.1:$dp" --psk k.psk \
  --accept-timeout 60s got-relay 2> sink.err &
sink=$!
cleanup_fn kill_quiet $sink
handoff-xfer relay --listen "tcp://127.0.0.1:$rp" --to "tcp://127.0.0.1:$dp" \
  --psk k.psk --streams 1 --accept-timeout 60s 2> relay.err &
relay=$!
cleanup_fn kill_quiet $relay
slow_link "$rp"
t0=$(date +%s%N)
handoff-xfer send data --to "tcp://127.0.0.1:$far" --psk k.psk 2> send.err ||
  { cat send.err relay.err sink.err; fail "send through the relay"; }
echo "sent in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
wait $relay || { cat relay.err; fail "relay"; }
wait $sink || { cat sink.err; fail "the receiver behind the relay"; }
cmp data got-relay || fail "the relayed copy differs"

echo "== handoff-xfer recv (accept polls every second)"
rp=$(free_port)
handoff-xfer recv --listen "tcp://127.0.0.1:$rp" --psk k.psk \
  --accept-timeout 60s got-recv 2> recv.err &
recv=$!
cleanup_fn kill_quiet $recv
slow_link "$rp"
handoff-xfer send data --to "tcp://127.0.0.1:$far" --psk k.psk 2> send.err ||
  { cat send.err recv.err; fail "send to the receiver"; }
wait $recv || { cat recv.err; fail "recv"; }
cmp data got-recv || fail "the received copy differs"
if grep -i "timed out" relay.err sink.err recv.err; then fail "a handshake timed out"; fi
echo "ok: both streams crossed a 500 ms link intact"
