#!/usr/bin/env bash
# Destination faults never fail a guest request:
#  - a destination that starts returning EIO (error filter, error-file),
#  - a destination killed mid-copy,
#  - a destination that stops answering (dest-timeout), also one listed
#    before a good one and frozen once copied (its silence must not
#    fail the other),
#  - a destination whose disk is full (ENOSPC),
# each fails only that destination, with its reason in the status,
# while the guest keeps writing and the other destination completes.
# Cancelling mid-copy leaves the source untouched; cancelling one frozen
# destination lets the guest's writes waiting for it complete at once;
# and a new mirror can start afterwards.
source "$(dirname "$0")/functions.sh"
requires qemu-io --version
requires unshare -m true   # the full-disk case mounts a small tmpfs
make_tmpdir

size=$((512 << 20))
truncate -s $size "$tmp/src.img"
dd if=/dev/urandom of="$tmp/src.img" bs=1M count=384 conv=notrunc status=none
start_nbdkit "$tmp/src.sock" --filter="$HANDOFF_FILTER" file "$tmp/src.img" \
  mirror-control="$tmp/ctl.sock" mirror-dest-timeout=3s
src_uri="nbd+unix:///?socket=$tmp/src.sock"
ctl=$tmp/ctl.sock

new_dest () {                   # new_dest NAME [nbdkit filter args...]
  local name=$1
  shift
  rm -f "$tmp/$name.img"
  truncate -s $size "$tmp/$name.img"
  start_nbdkit "$tmp/$name.sock" "$@"
}

dest_field () {                 # dest_field NAME FIELD
  handoff mirror status --json "$ctl" |
    jq -r --arg u "nbd+unix:///?socket=$tmp/$1.sock" \
      ".destinations[] | select(.uri == \$u) | .$2"
}

guest_writes () {               # guest_writes COUNT PATTERN: must succeed
  local i script=$tmp/io-$2.txt
  : > "$script"
  for (( i=0; i<$1; i++ )); do
    echo "write -P $2 $(( (i * 7919 * 512) % (size - 65536) )) 65536" >> "$script"
  done
  echo flush >> "$script"
  qemu-io -f raw "$src_uri" < "$script" > "$tmp/io.log" 2>&1 ||
    { cat "$tmp/io.log"; fail "guest writes failed"; }
  if grep -qiE 'error|fail' "$tmp/io.log"; then
    cat "$tmp/io.log"
    fail "a guest write reported an error"
  fi
}

wait_dest_state () {            # wait_dest_state NAME STATE
  wait_for 30 "$1 to be $2" bash -c \
    "[ \"\$(handoff mirror status --json '$ctl' | jq -r --arg u 'nbd+unix:///?socket=$tmp/$1.sock' '.destinations[] | select(.uri == \$u) | .state')\" = '$2' ]"
}

echo "== a destination that starts failing with EIO"
new_dest good file "$tmp/good.img"
new_dest eio --filter=error --filter=rate file "$tmp/eio.img" rate=400M \
  error-pwrite=EIO error-pwrite-rate=100% error-zero=EIO error-zero-rate=100% \
  error-file="$tmp/trigger"
handoff mirror start "$ctl" --to "nbd+unix:///?socket=$tmp/good.sock" \
  --to "nbd+unix:///?socket=$tmp/eio.sock"
guest_writes 50 11
touch "$tmp/trigger"
guest_writes 50 12
wait_dest_state eio failed
err=$(dest_field eio error)
echo "eio destination: $err"
echo "$err" | grep -qi "input/output error" || fail "reason not reported: $err"
[ "$(dest_field good state)" != failed ] || fail "the good destination failed"
guest_writes 50 13
handoff mirror complete --verify "$ctl"
rm -f "$tmp/trigger"
cmp "$tmp/src.img" "$tmp/good.img" || fail "good destination differs"
kill_pidfile "$tmp/eio.sock.pid"
kill_pidfile "$tmp/good.sock.pid"

echo "== a destination killed mid-copy"
new_dest good file "$tmp/good.img"
new_dest dead --filter=rate file "$tmp/dead.img" rate=200M
handoff mirror start "$ctl" --to "nbd+unix:///?socket=$tmp/good.sock" \
  --to "nbd+unix:///?socket=$tmp/dead.sock"
guest_writes 30 21
[ "$(dest_field dead state)" = copying ] || fail "dead destination finished early"
kill -9 "$(cat "$tmp/dead.sock.pid")"
guest_writes 30 22
wait_dest_state dead failed
echo "killed destination: $(dest_field dead error)"
guest_writes 30 23
handoff mirror complete --verify "$ctl"
cmp "$tmp/src.img" "$tmp/good.img" || fail "good destination differs"
kill_pidfile "$tmp/good.sock.pid"

echo "== a destination that stops answering"
new_dest good file "$tmp/good.img"
new_dest hung --filter=delay file "$tmp/hung.img" delay-write=600 delay-zero=600
handoff mirror start "$ctl" --to "nbd+unix:///?socket=$tmp/good.sock" \
  --to "nbd+unix:///?socket=$tmp/hung.sock"
start=$(date +%s)
guest_writes 30 31
wait_dest_state hung failed
echo "hung destination: $(dest_field hung error)"
dest_field hung error | grep -q "no reply" || fail "hung destination not named"
# Generous: a guest that waited would wait the delay, 600 s.
[ $(( $(date +%s) - start )) -lt 150 ] || fail "the guest waited for a hung destination"
handoff mirror complete --verify "$ctl"
cmp "$tmp/src.img" "$tmp/good.img" || fail "good destination differs"
kill_pidfile "$tmp/good.sock.pid"
kill_quiet -9 "$(cat "$tmp/hung.sock.pid")"

echo "== a destination frozen once copied, listed before a good one"
# Guest writes now go to both, the frozen one first: the good one's
# replies must still count once the frozen one's time is up.
new_dest frozen file "$tmp/frozen.img"
new_dest good file "$tmp/good.img"
handoff mirror start "$ctl" --to "nbd+unix:///?socket=$tmp/frozen.sock" \
  --to "nbd+unix:///?socket=$tmp/good.sock"
wait_dest_state frozen ready
wait_dest_state good ready
kill -STOP "$(cat "$tmp/frozen.sock.pid")"
guest_writes 30 32
wait_dest_state frozen failed
echo "frozen destination: $(dest_field frozen error)"
[ "$(dest_field good state)" != failed ] ||
  fail "the good destination failed with the frozen one: $(dest_field good error)"
guest_writes 30 33
handoff mirror complete --verify "$ctl"
cmp "$tmp/src.img" "$tmp/good.img" || fail "good destination differs"
kill_pidfile "$tmp/good.sock.pid"
kill -CONT "$(cat "$tmp/frozen.sock.pid")"
kill_quiet -9 "$(cat "$tmp/frozen.sock.pid")"

echo "== a destination whose disk fills up"
# The destination's image lives on a 64 MiB tmpfs in a mount namespace
# of its server's own; the copy (384 MiB of data) cannot fit.
mkdir -p "$tmp/full"
new_dest good file "$tmp/good.img"
saved_env=("${NBDKIT_ENV[@]}")
# shellcheck disable=SC2016  # expanded by the inner shell
NBDKIT_ENV=(unshare -m sh -c 'mount -t tmpfs -o size=64M tmpfs "$0" &&
  truncate -s "$1" "$0/full.img" && shift && exec "$@"' "$tmp/full" "$size"
  "${saved_env[@]}")
start_nbdkit "$tmp/full.sock" file "$tmp/full/full.img"
NBDKIT_ENV=("${saved_env[@]}")
handoff mirror start "$ctl" --to "nbd+unix:///?socket=$tmp/good.sock" \
  --to "nbd+unix:///?socket=$tmp/full.sock"
guest_writes 30 35
wait_dest_state full failed
echo "full destination: $(dest_field full error)"
dest_field full error | grep -q "No space left" || fail "the full disk was not named"
guest_writes 30 36
handoff mirror complete --verify "$ctl"
cmp "$tmp/src.img" "$tmp/good.img" || fail "good destination differs"
kill_pidfile "$tmp/good.sock.pid"
kill_pidfile "$tmp/full.sock.pid"

echo "== every destination failing fails the mirror, not the guest"
new_dest bad --filter=error file "$tmp/bad.img" error-pwrite=EIO \
  error-pwrite-rate=100% error-zero=EIO error-zero-rate=100%
handoff mirror start "$ctl" --to "nbd+unix:///?socket=$tmp/bad.sock"
guest_writes 20 41
wait_for 30 "mirror to fail" bash -c \
  "[ \"\$(handoff mirror status --json '$ctl' | jq -r .state)\" = failed ]"
if handoff mirror complete "$ctl" 2>"$tmp/err"; then fail "complete succeeded"; fi
cat "$tmp/err"
grep -q "Input/output error" "$tmp/err" || fail "complete does not say why"
guest_writes 20 42
kill_pidfile "$tmp/bad.sock.pid"

echo "== cancel mid-copy leaves the source untouched"
before=$(sha256sum < "$tmp/src.img")
new_dest slow --filter=rate file "$tmp/slow.img" rate=100M
handoff mirror start "$ctl" --to "nbd+unix:///?socket=$tmp/slow.sock"
sleep 1
handoff mirror cancel "$ctl"
[ "$(handoff mirror status --json "$ctl" | jq -r .state)" = cancelled ] ||
  fail "state is not cancelled"
[ "$(sha256sum < "$tmp/src.img")" = "$before" ] || fail "source changed"
kill_pidfile "$tmp/slow.sock.pid"

echo "== cancelling a frozen destination frees the guest's writes waiting for it"
# A source whose destinations may take two minutes to answer: the
# controller, which found one lost, cancels it instead, and the guest's
# writes in flight to it complete then, not when its time is up.
truncate -s 64M "$tmp/long.img"
start_nbdkit "$tmp/long.sock" --filter="$HANDOFF_FILTER" file "$tmp/long.img" \
  mirror-control="$tmp/long-ctl.sock" mirror-dest-timeout=120s
for n in lf lg; do truncate -s 64M "$tmp/$n.img"; start_nbdkit "$tmp/$n.sock" file "$tmp/$n.img"; done
handoff mirror start "$tmp/long-ctl.sock" --to "nbd+unix:///?socket=$tmp/lf.sock" \
  --to "nbd+unix:///?socket=$tmp/lg.sock"
wait_for 30 "both copied" bash -c \
  "[ \"\$(handoff mirror status --json '$tmp/long-ctl.sock' | jq -r '[.destinations[].state] | join(\" \")')\" = 'ready ready' ]"
kill -STOP "$(cat "$tmp/lf.sock.pid")"
cleanup_fn kill_quiet -CONT "$(cat "$tmp/lf.sock.pid")"
printf 'write -P 61 0 65536\nwrite -P 62 1048576 65536\nflush\n' |
  qemu-io -f raw "nbd+unix:///?socket=$tmp/long.sock" > "$tmp/long-io.log" 2>&1 &
io=$!
sleep 3
kill -0 "$io" 2>/dev/null ||
  { cat "$tmp/long-io.log"; fail "the write did not wait for the frozen destination (the test proves nothing)"; }
handoff mirror cancel "$tmp/long-ctl.sock" --to "nbd+unix:///?socket=$tmp/lf.sock"
t0=$(date +%s)
wait_for 30 "the guest's writes to finish once the frozen destination was cancelled" \
  bash -c "! kill -0 $io 2>/dev/null"
wait "$io" || { cat "$tmp/long-io.log"; fail "the guest's write failed"; }
! grep -qiE 'error|fail' "$tmp/long-io.log" || { cat "$tmp/long-io.log"; fail "a guest write reported an error"; }
echo "  the writes completed $(( $(date +%s) - t0 )) s after the cancel (the destination timeout is 120 s)"
[ "$(handoff mirror status --json "$tmp/long-ctl.sock" | jq -r '.destinations[0].state')" = cancelled ] ||
  fail "the frozen destination is not cancelled"
handoff mirror complete --verify "$tmp/long-ctl.sock"
cmp "$tmp/long.img" "$tmp/lg.img" || fail "the destination left differs"
kill_pidfile "$tmp/long.sock.pid"
kill_pidfile "$tmp/lg.sock.pid"
kill -CONT "$(cat "$tmp/lf.sock.pid")"
kill_quiet -9 "$(cat "$tmp/lf.sock.pid")"

echo "== a new mirror after all that"
new_dest again file "$tmp/again.img"
handoff mirror start "$ctl" --to "nbd+unix:///?socket=$tmp/again.sock"
guest_writes 20 51
handoff mirror complete --verify "$ctl"
kill_pidfile "$tmp/src.sock.pid"
kill_pidfile "$tmp/again.sock.pid"
cmp "$tmp/src.img" "$tmp/again.img" || fail "destination differs"
echo "$0: PASS"
