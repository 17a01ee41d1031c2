#!/usr/bin/env bash
# The two halves of a transport fallback, as handoffd uses them when
# RDMA cannot be set up before a VM pauses: a relay listening on two
# addresses takes a stream on either (the destination offers rdma://
# and tcp:// beside it), and a relay whose first way to a destination
# cannot be reached carries the stream over its --or (the source), says
# so, and counts it.  Every copy is compared byte for byte.
source "$(dirname "$0")/functions.sh"
make_tmpdir
cd "$tmp"

handoff keygen k.psk 2>/dev/null
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > token
head -c 24M /dev/urandom > data

# receiver PORT FILE: a handoff-xfer recv on PORT into FILE; sets $recv.
receiver () {
  handoff-xfer recv --listen "tcp://127.0.0.1:$1" --psk k.psk \
    --accept-timeout 60s "$2" 2> "$2.err" &
  recv=$!
  cleanup_fn kill_quiet $recv
  wait_for_port "$1"
}

# A port nothing listens on (nor will: it was just free).
closed=$(free_port)

echo "== a relay listening on two addresses takes a stream on the second"
dp=$(free_port) l1=$(free_port) l2=$(free_port)
receiver "$dp" got-two
handoff-xfer relay -v --listen "tcp://127.0.0.1:$l1" --listen "tcp://127.0.0.1:$l2" \
  --to "tcp://127.0.0.1:$dp" --psk k.psk --streams 1 --accept-timeout 60s \
  2> relay-two.err &
relay=$!
cleanup_fn kill_quiet $relay
wait_for 10 "the second listener" grep -q "listening on tcp://127.0.0.1:$l2," relay-two.err
grep -q "listening on tcp://127.0.0.1:$l1," relay-two.err ||
  fail "the first listener did not say it was up"
handoff-xfer send data --to "tcp://127.0.0.1:$l2" --psk k.psk 2> send.err ||
  { cat send.err relay-two.err; fail "send to the relay's second listener"; }
wait $relay || { cat relay-two.err; fail "the relay with two listeners"; }
wait $recv || { cat got-two.err; fail "the receiver behind it"; }
cmp data got-two || fail "the copy through the second listener differs"

# fallback NAME FIRST: a relay to FIRST --or the receiver carries one
# stream; the copy, the warning and the JSON count are checked.
fallback () {
  local name=$1 first=$2 rp
  dp=$(free_port) rp=$(free_port)
  receiver "$dp" "got-$name"
  handoff-xfer relay --listen "tcp://127.0.0.1:$rp" --to "$first" \
    --or "tcp://127.0.0.1:$dp?tls-psk-file=k.psk" --psk k.psk --streams 1 --accept-timeout 60s --json \
    > "relay-$name.json" 2> "relay-$name.err" &
  relay=$!
  cleanup_fn kill_quiet $relay
  wait_for_port "$rp"
  handoff-xfer send data --to "tcp://127.0.0.1:$rp" --psk k.psk 2> send.err ||
    { cat send.err "relay-$name.err"; fail "$name: send through the relay"; }
  wait $relay || { cat "relay-$name.err"; fail "$name: the relay failed"; }
  wait $recv || { cat "got-$name.err"; fail "$name: the receiver"; }
  cmp data "got-$name" || fail "$name: the copy differs"
  cat "relay-$name.err"
  grep -q "stream 0: destination 0: .* cannot be reached; carried over tcp://127.0.0.1:$dp" \
    "relay-$name.err" || fail "$name: the relay did not say it fell back"
  tail -n1 "relay-$name.json" |
    jq -e '.event == "summary" and .streams_done == 1 and .streams_failed == 0
           and .to[0].fell_back == 1 and .to[0].failed == 0
           and .to[0].bytes == 25165824' > /dev/null ||
    fail "$name: summary $(tail -n1 "relay-$name.json")"
}

echo "== rdma:// that cannot be set up: the stream goes over the --or"
fallback rdma "rdma://127.0.0.1:$closed?token-file=token"
echo "== tcp:// that cannot be reached: the same"
fallback tcp "tcp://127.0.0.1:$closed?tls-psk-file=k.psk"

echo "== a first way that works is kept: nothing falls back"
dp=$(free_port) rp=$(free_port)
receiver "$dp" got-direct
handoff-xfer relay --listen "tcp://127.0.0.1:$rp" --to "tcp://127.0.0.1:$dp" \
  --or "tcp://127.0.0.1:$closed" --psk k.psk --streams 1 --accept-timeout 60s \
  --json > relay-direct.json 2> relay-direct.err &
relay=$!
cleanup_fn kill_quiet $relay
wait_for_port "$rp"
handoff-xfer send data --to "tcp://127.0.0.1:$rp" --psk k.psk
wait $relay || { cat relay-direct.err; fail "the relay"; }
wait $recv
cmp data got-direct || fail "the direct copy differs"
tail -n1 relay-direct.json | jq -e '.to[0].fell_back == 0' > /dev/null ||
  fail "a stream that reached its first way counted as fallen back"
if grep -q "carried over" relay-direct.err; then fail "a fallback was reported"; fi

echo "== neither way reachable: the stream fails, the sender is told"
rp=$(free_port)
handoff-xfer relay --listen "tcp://127.0.0.1:$rp" \
  --to "tcp://127.0.0.1:$closed" --or "tcp://127.0.0.1:$closed" \
  --psk k.psk --streams 1 --accept-timeout 60s 2> relay-none.err &
relay=$!
cleanup_fn kill_quiet $relay
wait_for_port "$rp"
if handoff-xfer send data --to "tcp://127.0.0.1:$rp" --psk k.psk 2> send.err; then
  fail "a send that reached no destination succeeded"
fi
if wait $relay; then fail "the relay took a stream that reached nobody as done"; fi
grep -q "no destination could be reached" relay-none.err ||
  { cat relay-none.err; fail "the relay did not say why"; }

echo "== usage errors"
expect_usage () {               # expect_usage MESSAGE ARGS...
  local want=$1 rc=0
  shift
  handoff-xfer "$@" > /dev/null 2> usage.err || rc=$?
  [ "$rc" = 1 ] || fail "handoff-xfer $*: exit $rc, expected 1"
  grep -q -- "$want" usage.err || { cat usage.err; fail "handoff-xfer $*: no '$want'"; }
  echo "refused: $* -> $(head -n1 usage.err)"
}
expect_usage "follows a --to" relay --listen unix:a --or unix:b --to unix:c
expect_usage "at most once each" relay --listen unix:a --to unix:b --or unix:c --or unix:d
expect_usage "at most 2 --listen" relay --listen unix:a --listen unix:b --listen unix:c --to unix:d
expect_usage "needs one --listen" recv --listen unix:a --listen unix:b out
expect_usage "no --or" send data --to unix:a --or unix:b
echo "$0: PASS"
