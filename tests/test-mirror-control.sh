#!/usr/bin/env bash
# The control socket refuses bad input with an error reply (or by
# closing the connection when the framing itself is broken), never
# crashes, and keeps serving.  Bad filter parameters stop nbdkit with a
# clear message.
source "$(dirname "$0")/functions.sh"
requires python3 --version
make_tmpdir

truncate -s 64M "$tmp/src.img" "$tmp/dst.img" "$tmp/small.img"
truncate -s 32M "$tmp/small.img"
start_nbdkit "$tmp/src.sock" --filter="$HANDOFF_FILTER" file "$tmp/src.img" \
  mirror-control="$tmp/ctl.sock"
start_nbdkit "$tmp/dst.sock" file "$tmp/dst.img"
start_nbdkit "$tmp/small.sock" file "$tmp/small.img"
start_nbdkit "$tmp/ro.sock" -r file "$tmp/dst.img"
ctl=$tmp/ctl.sock
client () { "$top/tests/chan-client.py" "$ctl" 3 "$@"; }
alive () { handoff mirror status "$ctl" >/dev/null || fail "filter died after: $*"; }

expect_reply () {               # expect_reply WANTED ACTION [ARG]
  local want=$1 got
  shift
  got=$(client "$@")
  echo "$* -> $got"
  echo "$got" | grep -q -- "$want" || fail "expected '$want' for $*"
  alive "$@"
}

# Broken framing: the connection is closed, the filter lives on.
expect_reply "^<\(hello, \)\?closed>$" raw "474554202f20485454502f312e300d0a0d0a"
expect_reply "<closed>" hello-raw "40000000"          # 1 GiB frame
expect_reply "<closed>" hello-raw "00000000"          # empty frame
expect_reply "<closed>" hello-raw "00000064414243"    # truncated frame
expect_reply "<closed>" badservice

# Well-framed nonsense gets an error reply.
expect_reply '"ok":false' json 'not json at all'
expect_reply "not a JSON object\|malformed" json '[1,2,3]'
expect_reply "field 'op' is missing" json '{}'
expect_reply "must be a string" json '{"op": 7}'
expect_reply "unknown op 'frobnicate'" json '{"op":"frobnicate"}'
expect_reply "field 'destinations' is missing" json '{"op":"start"}'
expect_reply "must be an array" json '{"op":"start","destinations":"nbd://x"}'
expect_reply "1 to 8 URIs" json '{"op":"start","destinations":[]}'
expect_reply "non-empty URI strings" json '{"op":"start","destinations":[7]}'
expect_reply "1 to 8 URIs" json "{\"op\":\"start\",\"destinations\":[$(printf '"nbd://h%d",' 1 2 3 4 5 6 7 8)\"nbd://h9\"]}"
expect_reply "must be \\\\\"active\\\\\" or" json '{"op":"start","destinations":["nbd://x"],"mode":"fast"}'
expect_reply "not an NBD URI" json '{"op":"start","destinations":["tcp://x:1"]}'
expect_reply "unknown scheme" json '{"op":"start","destinations":["http://x"]}'
expect_reply "given twice" json '{"op":"start","destinations":["nbd://x","nbd://x"]}'
expect_reply "no mirror is running" json '{"op":"complete"}'
expect_reply "no mirror is running" json '{"op":"cancel"}'
expect_reply "no mirror is running" json '{"op":"pause"}'
expect_reply "must be true or false" json '{"op":"complete","verify":"yes"}'
expect_reply "must not be negative" json '{"op":"complete","timeout_ms":-5}'

# Destinations that cannot be used are refused at start.
expect_reply "size is 33554432 bytes" json \
  "{\"op\":\"start\",\"destinations\":[\"nbd+unix:///?socket=$tmp/small.sock\"]}"
expect_reply "read-only" json \
  "{\"op\":\"start\",\"destinations\":[\"nbd+unix:///?socket=$tmp/ro.sock\"]}"
expect_reply "no destination could be used" json \
  "{\"op\":\"start\",\"destinations\":[\"nbd+unix:///?socket=$tmp/nobody.sock\"]}"
# Three times: a refused destination must release only what it took
# (once, its clean-up closed fd 0, which the next control client got).
for _ in 1 2 3; do
  expect_reply "TLS needs a key" json \
    '{"op":"start","destinations":["nbds://127.0.0.1:1/"]}'
done

# Start twice.
handoff mirror start "$ctl" --to "nbd+unix:///?socket=$tmp/dst.sock"
expect_reply "already running" json \
  "{\"op\":\"start\",\"destinations\":[\"nbd+unix:///?socket=$tmp/dst.sock\"]}"
expect_reply "not a destination" json '{"op":"cancel","destination":"nbd://other"}'
# A watch whose reader goes away ends (the mirror stays ready until it
# is completed, so nothing else would end it): killed by SIGPIPE, or
# quietly (0) where SIGPIPE is ignored.
for pipe in default ignored; do
  rc=0
  if [ "$pipe" = default ]; then
    # The pipeline's status is head's: read the watch's.
    timeout 20 handoff mirror status "$ctl" --watch --interval 0.1 | head -n 2 > /dev/null
    rc=${PIPESTATUS[0]}
    [ "$rc" = 141 ] || [ "$rc" = 0 ] || fail "status --watch | head: exit $rc"
  else
    ( trap '' PIPE
      timeout 20 handoff mirror status "$ctl" --watch --interval 0.1 | head -n 2 > /dev/null
      exit "${PIPESTATUS[0]}" ) || rc=$?
    [ "$rc" = 0 ] || fail "status --watch | head with SIGPIPE ignored: exit $rc"
  fi
done
# On an 80-column terminal the status line fits: nothing wraps.
script -qec "stty cols 80 rows 24; timeout 2 handoff mirror status '$ctl' --watch --interval 0.2" \
  "$tmp/tty.out" > /dev/null || true
grep -aq "ready" "$tmp/tty.out" || { cat "$tmp/tty.out"; fail "no status drawn on the terminal"; }
fits_columns "$tmp/tty.out" 80 || fail "a status line is wider than the terminal"
handoff mirror complete --verify "$ctl"

# The CLI's own refusals.
if handoff mirror start "$ctl" 2>"$tmp/err"; then fail "start without --to"; fi
grep -q "at least one --to" "$tmp/err"
if handoff mirror status "$tmp/nothing.sock" 2>"$tmp/err"; then fail "bad socket"; fi
grep -q "No such file" "$tmp/err"
handoff mirror status "$tmp/nothing.sock" 2>/dev/null || [ $? -eq 8 ] || fail "exit code"
if handoff mirror frob "$ctl" 2>"$tmp/err"; then fail "unknown command"; fi
grep -q "unknown command 'frob'" "$tmp/err"
if handoff mirror start "$ctl" --mode fast --to nbd://x 2>"$tmp/err"; then fail "--mode"; fi
grep -q "expected active or background" "$tmp/err"
if handoff mirror complete "$ctl" --timeout 5x 2>"$tmp/err"; then fail "--timeout"; fi
grep -q "unknown unit" "$tmp/err"

# Bad filter parameters: nbdkit refuses to start, naming the parameter.
bad_param () {
  if "${NBDKIT_ENV[@]}" nbdkit -U "$tmp/bad.sock" --filter="$HANDOFF_FILTER" file "$tmp/src.img" \
       "$@" --run true 2>"$tmp/err"; then
    fail "nbdkit accepted $*"
  fi
  grep -q "${1%%=*}" "$tmp/err" ||
    { cat "$tmp/err"; fail "no message for $*"; }
}
bad_param mirror-chunk-size=3000 mirror-control="$tmp/c2.sock"
bad_param mirror-chunk-size=1K mirror-control="$tmp/c2.sock"
bad_param mirror-max-inflight=0 mirror-control="$tmp/c2.sock"
bad_param mirror-connections=99 mirror-control="$tmp/c2.sock"
bad_param mirror-dest-timeout=1ms mirror-control="$tmp/c2.sock"
bad_param mirror-reply-poll=100001 mirror-control="$tmp/c2.sock"
bad_param mirror-reply-poll=-1 mirror-control="$tmp/c2.sock"
bad_param mirror-request-size=banana mirror-control="$tmp/c2.sock"
# The names of earlier releases: still read, with a warning.
bad_param connections=99 control="$tmp/c2.sock"
grep -q "warning: connections= is deprecated and will be removed: use mirror-connections=" "$tmp/err" ||
  { cat "$tmp/err"; fail "no deprecation warning"; }
"${NBDKIT_ENV[@]}" nbdkit -U "$tmp/bad.sock" --filter="$HANDOFF_FILTER" file "$tmp/src.img" \
  --run true 2>"$tmp/err" && fail "nbdkit started without mirror-control="
grep -q "mirror-control=SOCKET is required" "$tmp/err"
# A parameter the filter does not know goes on to the plugin.
"${NBDKIT_ENV[@]}" nbdkit -U "$tmp/bad.sock" --filter="$HANDOFF_FILTER" file "$tmp/src.img" \
  mirror-control="$tmp/c2.sock" frob=1 --run true 2>"$tmp/err" &&
  fail "nbdkit accepted frob=1"
grep -q "frob" "$tmp/err" || { cat "$tmp/err"; fail "frob= did not reach the plugin"; }
echo "$0: PASS"
