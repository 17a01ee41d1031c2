#!/usr/bin/env bash
# The share fails cleanly: a wrong key is refused at start; a receiver
# killed mid-copy leaves the source mount working, the status names the
# failure and nothing is committed; a source mount killed mid-copy
# leaves the destination partial, and abort removes it.  With three
# receivers, one killed mid-copy and one dropped, the third goes on and
# commits alone; bad receiver lists are refused.  Passed on through a
# forwarder to two receivers, one killed mid-copy, the other commits.
source "$(dirname "$0")/functions.sh"
requires_fuse
requires_netns
make_tmpdir
cd "$tmp"
make_hosts 2

handoff keygen k.psk 2>/dev/null
handoff keygen --identity other bad.psk 2>/dev/null

make_src ()                     # make_src DIR: 600 MiB to copy
{
  mkdir -p "$1/sub"
  head -c 600M /dev/urandom > "$1/big.img"
  for i in $(seq 50); do echo "file $i" > "$1/sub/f$i"; done
}

mount_share ()                  # mount_share NAME
{
  mkdir -p "$1.mnt"
  on_host 1 handoff-share mount "$tmp/$1.src" "$tmp/$1.mnt" \
    --control "$tmp/$1.m.ctl" > "$1.mount.log" 2>&1 &
  echo $! > "$1.mount.pid"
  cleanup_fn unmount_fuse_on 1 "$tmp/$1.mnt"
  cleanup_fn kill_pidfile "$tmp/$1.mount.pid"
  wait_for_socket "$tmp/$1.m.ctl"
  on_host 1 mountpoint -q "$tmp/$1.mnt" || fail "$1: not mounted"
}

serve_share ()                  # serve_share NAME PORT
{
  on_host 2 handoff-share serve --listen "tcp://${HOST_IP[2]}:$2" \
    --root "$tmp/$1.dst" --psk k.psk --control "$tmp/$1.r.ctl" \
    > "$1.serve.log" 2>&1 &
  echo $! > "$1.serve.pid"
  cleanup_fn kill_pidfile "$tmp/$1.serve.pid"
  wait_for_socket "$tmp/$1.r.ctl"
}

# change_through NAME: a write, an append, a mkdir and a rename through
# NAME's mount.
change_through ()
{
  on_host 1 bash -c "
    set -e
    cd '$tmp/$1.mnt'
    dd if=/dev/urandom of=big.img bs=64k count=16 seek=100 conv=notrunc \
       status=none
    echo appended >> sub/f1
    mkdir newdir && echo x > newdir/y
    mv sub/f2 sub/f2-renamed
  " || fail "changes through $1's mount failed"
}

# The copy must still be running when the failure is injected.
host_rate 1 200mbit

echo "== a wrong key"
make_src key.src
mount_share key
serve_share key 7501
if on_host 1 handoff share start "$tmp/key.m.ctl" \
     --to "tcp://${HOST_IP[2]}:7501" --psk bad.psk > key.out 2>&1; then
  cat key.out
  fail "start with the wrong key succeeded"
fi
cat key.out
grep -q "cannot reach the receiver: tcp://${HOST_IP[2]}:7501: TLS handshake failed: .*wrong pre-shared key" key.out ||
  fail "the error does not name the receiver and the failed handshake"
on_host 2 handoff share status "$tmp/key.r.ctl" | grep -q "state: waiting" ||
  fail "the receiver took something from a stranger"
on_host 1 cmp key.src/sub/f7 key.mnt/sub/f7 || fail "the mount broke"

echo "== the receiver is killed mid-copy"
make_src rk.src
mount_share rk
serve_share rk 7502
on_host 1 handoff share start "$tmp/rk.m.ctl" --to "tcp://${HOST_IP[2]}:7502" \
  --psk k.psk
wait_for 30 "the copy to be under way" bash -c \
  "handoff share status '$tmp/rk.m.ctl' --json | jq -e '.bytes_copied > 0' >/dev/null"
crash_pidfile rk.serve.pid
# Writes keep working through the mount, with or without the receiver.
change_through rk
wait_for 60 "the share to fail" bash -c \
  "handoff share status '$tmp/rk.m.ctl' | grep -q 'state: failed'"
handoff share status "$tmp/rk.m.ctl" | tee rk.status
grep -q "^error: ." rk.status || fail "the status does not say why"
if handoff share commit "$tmp/rk.m.ctl" > rk.commit 2>&1; then
  fail "a failed share committed"
fi
cat rk.commit
on_host 1 cmp rk.src/big.img rk.mnt/big.img || fail "the mount and its source differ"
on_host 1 grep -q appended rk.mnt/sub/f1 && [ -f rk.src/newdir/y ] &&
  [ -f rk.src/sub/f2-renamed ] || fail "writes after the failure were lost"
[ ! -e rk.dst ] || fail "a partial tree was committed"
[ -d rk.dst.handoff-partial ] || fail "the partial tree is not marked partial"
# A new receiver and a new start work from the failed state.
on_host 2 handoff-share abort --root "$tmp/rk.dst"
[ ! -e rk.dst.handoff-partial ] || fail "abort --root left the partial tree"
serve_share rk2 7503
host_rate 1 2gbit
on_host 1 handoff share start "$tmp/rk.m.ctl" --to "tcp://${HOST_IP[2]}:7503" \
  --psk k.psk
on_host 1 handoff share commit "$tmp/rk.m.ctl"
diff -r rk.src rk2.dst || fail "the second attempt differs"
host_rate 1 200mbit

echo "== two receivers: one killed mid-copy, one dropped, the other commits"
make_src two.src
mount_share two
serve_share twoa 7505
serve_share twob 7506
serve_share twoc 7507
A=tcp://${HOST_IP[2]}:7505 B=tcp://${HOST_IP[2]}:7506 C=tcp://${HOST_IP[2]}:7507
expect_refused ()               # expect_refused WHAT STATE ARGS...: refused, the session still STATE
{
  local what=$1 state=$2; shift 2
  if on_host 1 handoff share "$@" > two.out 2>&1; then
    cat two.out; fail "$* succeeded"
  fi
  grep -q "$what" two.out || { cat two.out; fail "$*: no '$what'"; }
  handoff share status "$tmp/two.m.ctl" | grep -q "state: $state" ||
    fail "$* changed the session"
}
expect_refused "named twice" idle start "$tmp/two.m.ctl" --to "$A,$A" --psk k.psk
expect_refused "1 to 4 receivers" idle start "$tmp/two.m.ctl" --to "$A,$B,$C,$A,$B" --psk k.psk
expect_refused "no share session" idle drop "$tmp/two.m.ctl" --to "$A"
on_host 1 handoff share start "$tmp/two.m.ctl" --to "$A,$B,$C" --psk k.psk
wait_for 30 "the copy to be under way" bash -c \
  "handoff share status '$tmp/two.m.ctl' --json | jq -e '.bytes_copied > 0' >/dev/null"
crash_pidfile twob.serve.pid
on_host 1 handoff share drop "$tmp/two.m.ctl" --to "$C"
expect_refused "not a receiver" "\\(copying\\|ready\\)" drop "$tmp/two.m.ctl" \
  --to "tcp://${HOST_IP[2]}:7599"
change_through two
wait_for 60 "receiver B to be lost" bash -c \
  "handoff share status '$tmp/two.m.ctl' --json | jq -e '.receivers[1].state == \"lost\"' >/dev/null"
handoff share status "$tmp/two.m.ctl" | tee two.status
grep -q "receiver $B: lost - the receiver $B" two.status || fail "B's loss is not explained"
grep -q "receiver $C: lost - dropped by the controller" two.status || fail "C's drop is not shown"
expect_refused "last receiver" "\\(copying\\|ready\\)" drop "$tmp/two.m.ctl" --to "$A"
host_rate 1 2gbit
on_host 1 handoff share commit "$tmp/two.m.ctl" ||
  fail "the receiver left did not commit"
host_rate 1 200mbit
diff -r two.src twoa.dst || fail "the receiver left differs from the source"
handoff share status "$tmp/two.m.ctl" --json |
  jq -e '.state == "committed" and .receivers[0].state == "committed" and .receivers[1].state == "lost" and .receivers[2].state == "lost"' >/dev/null ||
  fail "the status after the commit"
[ ! -e twob.dst ] && [ ! -e twoc.dst ] || fail "a dropped receiver committed"

echo "== passed on: a forwarder between the mount and two receivers"
# As a stream proxy does (handoff migrate --via): the mount's session
# has one receiver, the forwarder, which has two; one is killed
# mid-copy, the other commits.
make_src fw.src
mount_share fw
serve_share fwa 7511
serve_share fwb 7512
FA=tcp://${HOST_IP[2]}:7511 FB=tcp://${HOST_IP[2]}:7512
on_host 2 handoff-share forward --listen "tcp://${HOST_IP[2]}:7510" \
  --psk k.psk --control "$tmp/fw.f.ctl" > fw.forward.log 2>&1 &
echo $! > fw.forward.pid
cleanup_fn kill_pidfile "$tmp/fw.forward.pid"
wait_for_socket "$tmp/fw.f.ctl"
if on_host 2 handoff share start "$tmp/fw.f.ctl" \
     --to "tcp://${HOST_IP[2]}:7599" --psk k.psk > fw.out 2>&1; then
  cat fw.out; fail "the forwarder started without a receiver"
fi
grep -q "cannot reach" fw.out || { cat fw.out; fail "no reason for the refusal"; }
on_host 2 handoff share start "$tmp/fw.f.ctl" --to "$FA,$FB" --psk k.psk
on_host 1 handoff share start "$tmp/fw.m.ctl" --to "tcp://${HOST_IP[2]}:7510" \
  --psk k.psk
wait_for 30 "the copy to be under way" bash -c \
  "handoff share status '$tmp/fw.m.ctl' --json | jq -e '.bytes_copied > 0' >/dev/null"
crash_pidfile fwb.serve.pid
change_through fw
wait_for 60 "receiver B to be lost behind the forwarder" bash -c \
  "handoff share status '$tmp/fw.f.ctl' --json | jq -e '.receivers[1].state == \"lost\"' >/dev/null"
handoff share status "$tmp/fw.m.ctl" --json |
  jq -e '.state == "copying" or .state == "ready"' >/dev/null ||
  fail "the mount's session broke with one receiver behind the forwarder"
host_rate 1 2gbit
on_host 1 handoff share commit "$tmp/fw.m.ctl" ||
  fail "the receiver left behind the forwarder did not commit"
host_rate 1 200mbit
diff -r fw.src fwa.dst || fail "the receiver behind the forwarder differs"
[ ! -e fwb.dst ] || fail "the lost receiver committed"
handoff share status "$tmp/fw.f.ctl" --json | tee fw.status |
  jq -e '.state == "committed" and .receivers[0].state == "committed" and .receivers[1].state == "lost"' >/dev/null ||
  { cat fw.status; fail "the forwarder's status after the commit"; }
kill "$(cat fw.forward.pid)"
wait_for 10 "the forwarder to exit" bash -c \
  "! kill -0 \$(cat '$tmp/fw.forward.pid') 2>/dev/null"

echo "== the source mount is killed mid-copy"
make_src mk.src
mount_share mk
serve_share mk 7504
on_host 1 handoff share start "$tmp/mk.m.ctl" --to "tcp://${HOST_IP[2]}:7504" \
  --psk k.psk
wait_for 30 "the copy to be under way" bash -c \
  "handoff share status '$tmp/mk.m.ctl' --json | jq -e '.bytes_copied > 0' >/dev/null"
crash_pidfile mk.mount.pid
if on_host 1 cat "$tmp/mk.mnt/sub/f1" > mk.cat 2>&1; then
  fail "a dead mount still answers"
fi
cat mk.cat
# A request the kernel had already sent when the daemon died is aborted
# (ECONNABORTED); one sent after is refused (ENOTCONN).  Both say the
# mount is dead.
grep -q "not connected\|connection abort" mk.cat ||
  fail "the mount does not report the error"
wait_for 30 "the receiver to see the source go" \
  grep -q "closed\|broken\|reset\|terminat" mk.serve.log
on_host 2 handoff share status "$tmp/mk.r.ctl" | tee mk.status
grep -q "state: disconnected" mk.status || fail "the receiver state"
[ ! -e mk.dst ] && [ -d mk.dst.handoff-partial ] ||
  fail "the destination is not left partial"
on_host 2 handoff share abort "$tmp/mk.r.ctl"
wait_for 10 "the receiver to exit" bash -c \
  "! kill -0 \$(cat '$tmp/mk.serve.pid') 2>/dev/null"
[ ! -e mk.dst.handoff-partial ] && [ ! -e mk.dst ] ||
  fail "abort did not clean the destination"
echo "$0: PASS"
