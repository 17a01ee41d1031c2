#!/usr/bin/env bash
# handoffd's own safety: one daemon per state directory (a lock); a key
# file that does not parse refused at start, listening or not; SIGHUP
# reads the policy again instead of killing the daemon; the state
# database carries a schema version, an older state directory is
# upgraded on start and a newer or broken one is refused untouched.
source "$(dirname "$0")/functions.sh"
make_tmpdir
cd "$tmp"

handoff keygen k.psk >/dev/null 2>&1
echo '{"max_vcpus": 8}' > policy.json
truncate -s 16M d.img

# start_daemon NAME STATE-DIR: handoffd in the background, its pid in
# NAME.pid, its output in NAME.log.
start_daemon ()
{
  handoffd --name "$1" --state-dir "$2" --control "$tmp/$1.sock" \
    --psk k.psk --policy policy.json >> "$1.log" 2>&1 &
  echo $! > "$1.pid"
  cleanup_fn kill_pidfile "$tmp/$1.pid"
}

stop_daemon ()
{
  local pid
  pid=$(cat "$1.pid")
  kill -TERM "$pid"
  wait "$pid" || fail "$1 did not exit 0 on SIGTERM"
}

# refused NAME STATE-DIR TEXT: handoffd exits 1 at once, saying TEXT.
refused ()
{
  local rc=0
  timeout 30 handoffd --name "$1" --state-dir "$2" \
    --control "$tmp/$1.sock" --psk k.psk --policy policy.json \
    > "$1.out" 2>&1 || rc=$?
  cat "$1.out"
  [ "$rc" = 1 ] || fail "$1: exit status $rc, not 1"
  grep -Eq "$3" "$1.out" || fail "$1: the error does not say '$3'"
  [ ! -e "$1.sock" ] || fail "$1: made its control socket"
}

echo "== a second daemon on the same state directory is refused"
start_daemon a st
wait_for_socket a.sock
handoff --socket a.sock define vm1 --memory 64 --disk "$tmp/d.img" >/dev/null
refused b st "st is in use by another handoffd \(pid $(cat a.pid)\)"
refused b "$tmp/st" "in use by another handoffd"
handoff --socket a.sock list | grep -q '^vm1 ' ||
  fail "the first daemon lost vm1"
handoff --socket a.sock define vm2 --memory 64 --disk "$tmp/d.img" >/dev/null ||
  fail "the first daemon stopped taking requests"

echo "== a bad key is refused at start, listening or not"
rc=0
timeout 30 handoffd --name c --state-dir "$tmp/st-c" --control "$tmp/c.sock" \
  --psk /etc/hostname --policy policy.json > c.out 2>&1 || rc=$?
cat c.out
[ "$rc" = 1 ] && grep -q -- "--psk: /etc/hostname: line 1" c.out ||
  fail "a daemon with a bad key: exit $rc"
[ ! -e c.sock ] || fail "a daemon with a bad key made its control socket"

echo "== SIGHUP reads the policy again; the daemon runs on"
kill -HUP "$(cat a.pid)"
wait_for 10 "the reload" grep -q "SIGHUP: policy policy.json reloaded" a.log
echo '{"max_vcpus": ' > policy.json
kill -HUP "$(cat a.pid)"
wait_for 10 "the bad policy to be reported" \
  grep -Eq "SIGHUP: .*policy.json.*admissions are refused" a.log
kill -0 "$(cat a.pid)" || fail "SIGHUP killed the daemon"
handoff --socket a.sock list | grep -q '^vm2 ' || fail "no answer after SIGHUP"
echo '{"max_vcpus": 8}' > policy.json
stop_daemon a

echo "== the state of a daemon of the previous schema is upgraded"
# The previous schema had the same tables, no indexes and no version.
sqlite3 st/state.db "DROP INDEX steps_by_migration; DROP INDEX events_by_vm;
  PRAGMA user_version = 0;"
start_daemon a st
wait_for_socket a.sock
grep -q "state.db: schema 0, upgraded to 2" a.log || fail "no upgrade logged"
handoff --socket a.sock list > list.txt
grep -q '^vm1 ' list.txt && grep -q '^vm2 ' list.txt ||
  fail "the VMs of the old state are gone: $(cat list.txt)"
stop_daemon a
[ "$(sqlite3 st/state.db 'PRAGMA user_version')" = 2 ] ||
  fail "the schema version was not recorded"
[ "$(sqlite3 st/state.db "SELECT count(*) FROM sqlite_master
     WHERE type = 'index' AND name IN ('steps_by_migration', 'events_by_vm')")" = 2 ] ||
  fail "the upgrade did not add the indexes"
start_daemon a st
wait_for_socket a.sock
stop_daemon a
[ "$(grep -c "upgraded" a.log)" = 1 ] || fail "a current state was upgraded again"

echo "== a newer schema, and a file that is no database, are refused untouched"
sqlite3 st/state.db "PRAGMA user_version = 99;"
before=$(sha256sum st/state.db)
refused c st "written by a newer handoffd \(schema 99; this one knows up to 2\)"
[ "$(sha256sum st/state.db)" = "$before" ] || fail "the newer state was changed"
mkdir -p junk
head -c 8192 /dev/urandom > junk/state.db
before=$(sha256sum junk/state.db)
refused d junk "state.db: .*(not a database|schema version)"
[ "$(sha256sum junk/state.db)" = "$before" ] || fail "the broken state was changed"
echo "$0: PASS"
