#!/usr/bin/env bash
# A relay fanning one stream out to two receivers, one of which stops
# reading: with --lagging=drop the laggard is dropped once it is a whole
# buffer behind and the other receives everything; with --lagging=wait
# the relay holds the source back until the laggard reads again, and
# both receive everything.  --json statistics name each destination.
source "$(dirname "$0")/functions.sh"
requires socat -V
requires python3 --version
make_tmpdir
cd "$tmp"

handoff keygen k.psk 2>/dev/null
head -c 64M /dev/urandom > data

run () {                        # run MODE
  local mode=$1 p1 p2 r1 r2 relay
  p1=$(free_port) p2=$(free_port)
  rm -f out1 out2 relay.sock
  handoff-xfer recv --listen "tcp://127.0.0.1:$p1" --psk k.psk out1 2>r1.err &
  r1=$!
  handoff-xfer recv --listen "tcp://127.0.0.1:$p2" --psk k.psk out2 2>r2.err &
  r2=$!
  cleanup_fn kill_quiet -9 $r1 $r2
  wait_for_port "$p1"
  wait_for_port "$p2"
  handoff-xfer relay --listen unix:relay.sock --to "tcp://127.0.0.1:$p1" \
    --to "tcp://127.0.0.1:$p2" --psk k.psk --buffer 4M --lagging "$mode" \
    --streams 1 --json > relay.json 2> relay.err &
  relay=$!
  cleanup_fn kill_quiet -9 $relay
  wait_for_socket relay.sock
  # The first MiB opens the stream (and its connections); then the
  # second receiver stops reading.
  rm -f fifo
  mkfifo fifo
  socat -u OPEN:fifo UNIX-CONNECT:relay.sock &
  local feeder=$!
  ( head -c 1M data; sleep 1; kill -STOP $r2; tail -c +1048577 data ) > fifo &
  if [ "$mode" = wait ]; then
    sleep 3
    # The source is held back: the first receiver cannot be done yet.
    kill -0 $feeder 2>/dev/null || fail "wait mode did not hold the source back"
    [ "$(stat -c %s out1 2>/dev/null || echo 0)" -lt 64000000 ] ||
      fail "wait mode let one destination run ahead"
    kill -CONT $r2
  fi
  wait $feeder
  wait $r1 || { cat r1.err; fail "receiver 1 failed ($mode)"; }
  cmp data out1 || fail "receiver 1 differs ($mode)"
  if [ "$mode" = wait ]; then
    wait $r2 || { cat r2.err; fail "receiver 2 failed"; }
    cmp data out2 || fail "receiver 2 differs"
  else
    kill -9 $r2
  fi
  wait $relay || true
  cat relay.err
  jq -c 'select(.event == "summary")' relay.json
  if [ "$mode" = drop ]; then
    jq -e "select(.event == \"summary\") | .to[1].dropped == 1 and .to[0].dropped == 0" \
      relay.json >/dev/null || fail "the laggard was not dropped"
    grep -q "fell .* behind and stopped reading: dropped" relay.err ||
      fail "the drop was not logged"
  else
    jq -e 'select(.event == "summary") | .to[0].bytes == 67108864 and .to[1].bytes == 67108864' \
      relay.json >/dev/null || fail "not every byte reached both"
  fi
  jq -s -e 'map(select(.event == "stats")) | length > 0' relay.json >/dev/null ||
    fail "no statistics lines"
}

echo "== --lagging=drop"
run drop
echo "== --lagging=wait"
run wait
echo "$0: PASS"
