#!/usr/bin/env bash
# 'make install' installs a service: handoffd in sbin with its page in
# section 8, a systemd unit (Type=notify) that systemd accepts, a
# policy that parses (never overwriting the operator's), the example
# of handoffd(8), and bash completion for handoff.  The installed
# daemon tells systemd when it is ready, reloading and stopping
# (sd_notify, heard here on a NOTIFY_SOCKET of the test's own).
source "$(dirname "$0")/functions.sh"
requires make --version
requires python3 --version
make_tmpdir
cd "$tmp" || fail "cannot enter $tmp"

p=$tmp/p
echo "== make install PREFIX=$p"
make -s -C "$top" O="$O" install PREFIX="$p" SYSCONFDIR="$p/etc" \
  NBDKIT_FILTERDIR="$p/nbdkit" > install.log 2>&1 ||
  { cat install.log; fail "make install failed"; }
for f in sbin/handoffd bin/handoff bin/handoff-share bin/handoff-xfer \
         libexec/handoff/handoff-volid share/man/man8/handoffd.8 \
         share/man/man1/handoff.1 share/man/man1/handoff-volume.1 \
         lib/systemd/system/handoffd.service etc/handoff/policy.json \
         share/handoff/examples/policy.json \
         share/bash-completion/completions/handoff \
         nbdkit/nbdkit-handoff-mirror-filter.so; do
  [ -e "$p/$f" ] || fail "make install did not install $f"
done
[ ! -e "$p/bin/handoffd" ] || fail "handoffd is in bin, not sbin"
[ ! -e "$p/share/man/man1/handoffd.1" ] || fail "handoffd's page is in section 1"
man -l "$p/share/man/man8/handoffd.8" 2>/dev/null | head -n 1 | grep -q 'HANDOFFD(8)' ||
  fail "handoffd.8 is not a section 8 page"

unit=$p/lib/systemd/system/handoffd.service
grep -qx "ExecStart=$p/sbin/handoffd \$HANDOFFD_ARGS" "$unit" ||
  fail "the unit does not start the installed daemon: $(grep ExecStart "$unit")"
grep -qx "Type=notify" "$unit" || fail "the unit is not Type=notify"
grep -qx "EnvironmentFile=-$p/etc/handoff/handoffd.env" "$unit" ||
  fail "the unit's environment file is not under SYSCONFDIR"
if systemd-analyze --version >/dev/null 2>&1; then
  # It checks the unit's lines, its ExecStart and its Documentation
  # (the installed pages).
  MANPATH=$p/share/man systemd-analyze verify "$unit" > verify.out 2>&1 ||
    { cat verify.out; fail "systemd-analyze finds fault with the unit"; }
else
  echo "systemd-analyze is missing: the unit is checked by its lines only"
fi
# The appliance's drop-in only adds its seed to the same unit.
[ ! -e "$top/appliance/rootfs/etc/systemd/system/handoffd.service" ] ||
  fail "the appliance has a unit of its own"

echo "== the installed policies parse, and the operator's is never overwritten"
cmp -s "$p/share/handoff/examples/policy.json" <(
  sed -n '/^=item B<-p> FILE, B<--policy> FILE/,/^=over/p' "$top/docs/handoffd.pod" |
    sed -n '/^ {/,/^ }/p' | sed 's/^ //') ||
  fail "the installed example is not the example of handoffd(8)"
echo '{"max_vcpus": 4}' > "$p/etc/handoff/policy.json"
make -s -C "$top" O="$O" install PREFIX="$p" SYSCONFDIR="$p/etc" \
  NBDKIT_FILTERDIR="$p/nbdkit" > install2.log 2>&1 || fail "make install (again) failed"
[ "$(cat "$p/etc/handoff/policy.json")" = '{"max_vcpus": 4}' ] ||
  fail "make install overwrote the operator's policy"
cp "$top/ctl/daemon/policy.json" installed-policy.json

# notify_listen FILE: a datagram socket at $tmp/notify, as systemd's;
# every message it gets is appended to FILE, one per line.
notify_listen ()
{
  python3 - "$tmp/notify" "$1" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        out.write(s.recv(4096).decode().replace("\n", " ") + "\n")
PY
  echo $! > notify.pid
  cleanup_fn kill_pidfile "$tmp/notify.pid"
  wait_for 10 "the notify socket" test -S "$tmp/notify"
}
notify_listen notify.log
"$p/bin/handoff" keygen k.psk >/dev/null 2>&1 || fail "keygen"
for pol in installed-policy.json "$p/share/handoff/examples/policy.json"; do
  echo "== the installed handoffd under 'systemd', policy $(basename "$pol")"
  : > notify.log
  rm -rf state
  NOTIFY_SOCKET=$tmp/notify "$p/sbin/handoffd" --name h1 --state-dir "$tmp/state" \
    --control "$tmp/hd.sock" --psk k.psk --policy "$pol" -v > hd.log 2>&1 &
  echo $! > hd.pid
  cleanup_fn kill_pidfile "$tmp/hd.pid"
  wait_for 20 "READY=1" grep -q "^READY=1 STATUS=CLI on $tmp/hd.sock" notify.log
  test -S hd.sock || fail "READY=1 came before the CLI socket"
  "$p/bin/handoff" --socket hd.sock host >/dev/null || fail "the daemon does not answer"
  kill -HUP "$(cat hd.pid)"
  wait_for 10 "RELOADING=1" grep -q "^RELOADING=1" notify.log
  wait_for 10 "READY=1 after the reload" bash -c '[ $(grep -c "^READY=1" notify.log) -ge 2 ]'
  grep -q "policy $pol reloaded" hd.log || fail "the policy did not reload: $(cat hd.log)"
  kill -TERM "$(cat hd.pid)"
  wait_for 20 "STOPPING=1" grep -q "^STOPPING=1" notify.log
  wait_for 20 "handoffd to exit" bash -c "! kill -0 $(cat hd.pid) 2>/dev/null"
done

echo "== bash completion"
: > hd.log
NOTIFY_SOCKET= "$p/sbin/handoffd" --name h1 --state-dir "$tmp/state" \
  --control "$tmp/hd.sock" --psk k.psk --policy installed-policy.json > hd.log 2>&1 &
echo $! > hd.pid
wait_for 20 "handoffd" test -S hd.sock
truncate -s 1M web1.img
"$p/bin/handoff" --socket hd.sock define web1 --memory 128 --disk web1.img >/dev/null
# complete LINE: the candidates bash would offer at the end of LINE.
complete_line ()
{
  PATH=$p/bin:$PATH HANDOFF_SOCKET=$tmp/hd.sock bash -c '
    source "$1"
    read -r -a COMP_WORDS <<< "$2"
    [[ $2 == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    _handoff
    printf "%s\n" "${COMPREPLY[@]}"' _ "$p/share/bash-completion/completions/handoff" "$1"
}
complete_line "handoff mi" | grep -qx migrate || fail "no completion of 'handoff mi'"
complete_line "handoff " | grep -qx volume || fail "helpers are not completed"
complete_line "handoff stop --f" | grep -qx -- --force || fail "no completion of 'stop --f'"
complete_line "handoff migrate --max" | grep -qx -- --max-downtime ||
  fail "no completion of 'migrate --max'"
complete_line "handoff start w" | grep -qx web1 || fail "VM names are not completed"
complete_line "handoff help mig" | grep -qx migrate || fail "'help' does not complete commands"
kill_pidfile "$tmp/hd.pid"
echo "$0: PASS"
