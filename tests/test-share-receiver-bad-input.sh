#!/usr/bin/env bash
# The share receiver never touches anything outside its root, whatever
# a peer sends: paths with '..' or '/', symlinks that lead out (made as
# data, never followed), unknown or reused handles, requests out of
# sequence, oversize messages; a wrong key is refused at the handshake.
# Every refusal is logged; nothing outside the root changes.
source "$(dirname "$0")/functions.sh"
make_tmpdir
cd "$tmp"
client=$build/tests/share-client
[ -x "$client" ] || fail "$client is not built"

handoff keygen k.psk 2>/dev/null
handoff keygen --identity other bad.psk 2>/dev/null
mkdir outside
echo keep > outside/victim
export OUTSIDE=$tmp/outside
before=$(find outside -printf '%P %s %m %T@\n' | sort | sha256sum)

serve () {                      # serve NAME: a receiver for one scenario
  local p
  p=$(free_port)
  rm -rf "root-$1" "root-$1.handoff-partial"
  handoff-share serve --listen "tcp://127.0.0.1:$p" --root "$tmp/root-$1" \
    --psk k.psk --control "$tmp/$1.ctl" -v > "$1.out" 2> "$1.log" &
  echo $! > "$1.pid"
  cleanup_fn kill_pidfile "$tmp/$1.pid"
  wait_for_socket "$tmp/$1.ctl"
  uri="tcp://127.0.0.1:$p"
}

echo "== a wrong key"
serve key
if "$client" "$uri" bad.psk escape > key.txt 2>&1; then
  cat key.txt
  fail "a client with the wrong key got in"
fi
grep -q "connect refused" key.txt
handoff share status "$tmp/key.ctl" | grep -q "state: waiting" || fail "state"

echo "== escapes"
serve esc
"$client" "$uri" k.psk escape | tee esc.txt
grep -q "^SYMLINK out .* -> err=0" esc.txt || fail "the symlink itself may be made"
for op in "MKDIR out/sub" "CREATE out/file" "OPEN out" "UNLINK out/victim" \
          "CREATE d/up/up/escaped"; do
  grep "^$op " esc.txt | grep -q "err=[1-9]" || fail "$op was not refused"
done
grep -q "^MKDIR /etc/evil -> connection closed" esc.txt ||
  fail "an absolute path did not end the session"
grep -q "absolute path" esc.log || fail "the absolute path was not logged"
[ "$(find outside -printf '%P %s %m %T@\n' | sort | sha256sum)" = "$before" ] ||
  fail "something outside the root changed"
[ ! -e /etc/evil ] || fail "/etc/evil exists"
[ -L root-esc.handoff-partial/out2 ] || fail "renames of the link itself work"

echo "== handles"
serve h
"$client" "$uri" k.psk handles | tee h.txt
grep -q "^WRITE  -> err=9 " h.txt || fail "unknown handle"
grep -q "^CLOSE  -> err=9 " h.txt || fail "unknown handle on close"
grep -q "^CREATE g -> err=9 " h.txt || fail "a handle in use was reused"
grep "^WRITE  -> " h.txt | tail -1 | grep -q "err=27" || fail "offset overflow"
[ "$(grep -c '^FALLOCATE  -> err=22 ' h.txt)" = 2 ] ||
  fail "a fallocate that moves data or overflows was accepted"
grep -q '^FALLOCATE  -> err=0' h.txt || fail "a plain fallocate was refused"
[ "$(stat -c %s root-h.handoff-partial/f)" = 8192 ] || fail "fallocate size"

echo "== commits that do not match"
for sc in unverified extra; do
  serve "com$sc"
  "$client" "$uri" k.psk "commit-$sc" | tee "com$sc.txt"
  grep -q '^COMMIT  -> err=84 .*commit refused' "com$sc.txt" ||
    fail "commit-$sc was accepted"
  [ ! -e "root-com$sc" ] && [ -d "root-com$sc.handoff-partial/a" ] ||
    fail "a refused commit changed the destination"
done
grep -q "^VERIFY a -> err=0" comextra.txt || fail "the directory did not verify"

echo "== out of sequence"
serve seq
"$client" "$uri" k.psk sequence | tee seq.txt
grep -q "^MKDIR b -> connection closed" seq.txt || fail "sequence"
grep -q "out of sequence" seq.log || fail "not logged"

echo "== oversize"
serve big
"$client" "$uri" k.psk oversize | tee big.txt
grep -q "connection closed" big.txt || fail "oversize message accepted"
grep -q "field too long" big.log || fail "not logged"

# Each receiver is left partial; abort removes it.
for r in esc h comunverified comextra seq big; do
  handoff share abort "$tmp/$r.ctl" >/dev/null
  wait_for 10 "$r to go" bash -c "! kill -0 \$(cat '$tmp/$r.pid') 2>/dev/null"
  [ ! -e "root-$r.handoff-partial" ] || fail "abort left $r partial"
done
echo "$0: PASS"
