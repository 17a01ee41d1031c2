#!/usr/bin/env bash
# handoff hostid and handoff scan with file: and cmd: ID sources: the
# pass-through of an unchanged run, a run that crosses a "migration"
# (the scan command itself changes the ID), --repeat, --notify,
# --keep-output, --watch, and bad input.
source "$(dirname "$0")/functions.sh"
make_tmpdir
cd "$tmp"

echo host-a > id
src=file:$tmp/id

[ "$(handoff hostid --source "$src")" = host-a ] || fail "hostid"
handoff hostid --source "cmd:echo  host-b " | grep -qx host-b || fail "hostid cmd:"
handoff hostid --source "$src" --json | jq -e '.id == "host-a"' >/dev/null ||
  fail "hostid --json"

echo "== unchanged: stdout, stderr and the exit status pass through"
rc=0
handoff scan --source "$src" -- sh -c 'echo out; echo err >&2; exit 7' \
  > o 2> e || rc=$?
[ "$rc" = 7 ] || fail "exit $rc, expected the command's 7"
[ "$(cat o)" = out ] || fail "stdout: $(cat o)"
[ "$(cat e)" = err ] || fail "stderr: $(cat e)"
handoff scan --source "$src" -- true || fail "true"

echo "== the ID changes during the scan: output withheld, exit 3"
rc=0
handoff scan --source "$src" -- sh -c "echo secret; echo host-b > '$tmp/id'" \
  > o 2> e || rc=$?
cat e
[ "$rc" = 3 ] || fail "exit $rc, expected 3"
[ ! -s o ] || fail "the output of a crossing scan was printed"
grep -q "crossed a migration, from host host-a to host host-b" e ||
  fail "the message does not say from where to where"

echo "== --keep-output prints it all the same, still exit 3"
echo host-a > id
rc=0
handoff scan --source "$src" --keep-output -- \
  sh -c "echo kept; echo host-c > '$tmp/id'" > o 2> e || rc=$?
[ "$rc" = 3 ] && [ "$(cat o)" = kept ] || fail "--keep-output (exit $rc)"

echo "== --repeat 3, the ID changes on the first run only"
echo host-a > id
rm -f moved runs
rc=0
handoff scan --source "$src" --repeat 3 -- sh -c "
  echo run >> '$tmp/runs'
  [ -e '$tmp/moved' ] || { touch '$tmp/moved'; echo host-b > '$tmp/id'; }
  echo result; exit 4" > o 2> e || rc=$?
cat e
[ "$rc" = 4 ] || fail "exit $rc, expected the second run's 4"
[ "$(wc -l < runs)" = 2 ] || fail "$(wc -l < runs) runs, expected 2"
[ "$(cat o)" = result ] || fail "the second run's output: $(cat o)"

echo "== --repeat gives up when every run crosses"
rc=0
handoff scan --source "$src" --repeat 2 -- sh -c "echo \$\$ > '$tmp/id'" \
  > o 2> e || rc=$?
[ "$rc" = 3 ] || fail "exit $rc, expected 3"
grep -q "3 runs crossed" e || fail "no giving-up message: $(cat e)"

echo "== --notify gets the old and new IDs and the time"
echo host-a > id
handoff scan --source "$src" --notify "env | grep ^HANDOFF_ > '$tmp/env'" -- \
  sh -c "echo host-b > '$tmp/id'" 2>/dev/null && fail "exit 0 after a crossing"
grep -qx HANDOFF_OLD_ID=host-a env || fail "HANDOFF_OLD_ID: $(cat env)"
grep -qx HANDOFF_NEW_ID=host-b env || fail "HANDOFF_NEW_ID"
grep -qE '^HANDOFF_DETECTED_AT=[0-9]{4}-[0-9]{2}-[0-9]{2}T' env ||
  fail "HANDOFF_DETECTED_AT"

echo "== a notify command that fails does not mask the result"
echo host-a > id
rc=0
handoff scan --source "$src" --notify "exit 9" -- \
  sh -c "echo host-b > '$tmp/id'" 2> e || rc=$?
[ "$rc" = 3 ] || fail "exit $rc after a failing notify, expected 3"
grep -q "notify command failed (exit 9)" e || fail "no warning: $(cat e)"

echo "== --watch: once per change, stops on its exit file"
echo host-a > id
rm -f fired stop
handoff scan --watch --source "$src" --interval 50ms --exit-file "$tmp/stop" \
  --notify "echo \"\$HANDOFF_OLD_ID>\$HANDOFF_NEW_ID\" >> '$tmp/fired'" 2> watch.err &
echo $! > watch.pid
cleanup_fn kill_pidfile "$tmp/watch.pid"
wait_for 10 "the watch to read the first ID" grep -q "watching the host ID" watch.err
echo host-b > id
wait_for 10 "the first change" test -s fired
echo host-c > id
wait_for 10 "the second change" bash -c "[ \$(wc -l < '$tmp/fired') = 2 ]"
sleep 0.5
[ "$(cat fired)" = "host-a>host-b
host-b>host-c" ] || fail "watch fired: $(cat fired)"
touch stop
wait_for 10 "the watch to stop" bash -c "! kill -0 $(cat watch.pid) 2>/dev/null"
wait "$(cat watch.pid)" || fail "the watch exited non-zero"
grep -q "watch stopped" watch.err || fail "no clean stop"

echo "== and on SIGTERM"
handoff scan --watch --source "$src" --interval 50ms --notify true 2> w2.err &
pid=$!
wait_for 10 "the watch to start" grep -q "watching the host ID" w2.err
kill -TERM $pid
wait $pid || fail "the watch exited non-zero on SIGTERM"
grep -q "watch stopped" w2.err || fail "no clean stop on SIGTERM"

echo "== bad input"
expect_error () {      # expect_error RC TEXT ARGS...
  local want=$1 text=$2 rc=0
  shift 2
  handoff "$@" > o 2> e || rc=$?
  [ "$rc" = "$want" ] || fail "'$*': exit $rc, expected $want ($(cat e))"
  grep -qi -- "$text" e || fail "'$*': the error does not say '$text': $(cat e)"
  [ ! -s o ] || fail "'$*' printed on stdout"
}
: > empty
expect_error 1 "empty ID" scan --source "file:$tmp/empty" -- true
expect_error 1 "No such file" scan --source "file:$tmp/missing" -- true
expect_error 1 "failed" scan --source "cmd:exit 3" -- true
expect_error 1 "unknown ID source" hostid --source nonsense
expect_error 1 "no QEMU fw_cfg\|no handoff host ID" hostid
expect_error 127 "No such file" scan --source "$src" -- /nonexistent/scanner
chmod -x empty
expect_error 126 "Permission denied" scan --source "$src" -- "$tmp/empty"
expect_error 1 "--repeat" scan --source "$src" --repeat 101 -- true
expect_error 1 "--repeat" scan --source "$src" --repeat x -- true
expect_error 1 "--interval" scan --watch --notify true --interval 1ms
expect_error 1 "--watch needs --notify" scan --watch
expect_error 1 "expected -- COMMAND" scan --source "$src"
# The ID becomes unreadable during the scan: no output, an error.
rc=0
handoff scan --source "$src" -- sh -c "echo x; rm '$tmp/id'" > o 2> e || rc=$?
[ "$rc" = 1 ] && [ ! -s o ] && grep -q "withheld" e ||
  fail "unreadable ID after the scan: exit $rc, $(cat e)"
echo "$0: PASS"
