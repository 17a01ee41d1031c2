#!/usr/bin/env bash
# The admin channel: 'handoffd --admin tcp://ADDR:PORT' takes CLI
# requests over TLS with the pre-shared key; 'handoff --host URI --psk
# FILE' from another host lists its VMs; a wrong key is refused and
# changes nothing; hostile names, paths and keys sent over it are
# refused with a reason and change nothing; a remote define names the
# daemon's files (not looked up on the client's side); without --admin
# nothing listens.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
requires_netns
make_tmpdir
cd "$tmp"
make_hosts 2

handoff keygen k.psk >/dev/null 2>&1
handoff keygen wrong.psk >/dev/null 2>&1
admin=tcp://${HOST_IP[1]}:7900
start_handoffd 1 --admin "$admin"
truncate -s 16M d.img
hcli 1 define remote1 --memory 64 --disk "$tmp/d.img" >/dev/null

on_host 2 handoff --host "$admin" --psk "$tmp/k.psk" list > list.txt ||
  fail "the remote list failed"
cat list.txt
grep -q '^remote1 ' list.txt || fail "the remote list does not show remote1"
on_host 2 handoff --host "$admin" --psk "$tmp/k.psk" host | grep -q "host host1" ||
  fail "remote host"
HANDOFF_HOST=$admin on_host 2 handoff --psk "$tmp/k.psk" list --json |
  jq -e '.vms[0].name == "remote1"' >/dev/null || fail "HANDOFF_HOST"

echo "== a remote define names the daemon's files, which need not exist here"
mkdir rdir
truncate -s 16M rdir/r2.img
# The client runs where rdir is an empty tmpfs: the disk exists only on
# the daemon's side.
on_host 2 unshare -m sh -c "mount -t tmpfs none '$tmp/rdir' &&
    handoff --host '$admin' --psk '$tmp/k.psk' define r2 --memory 64 --disk '$tmp/rdir/r2.img'" ||
  fail "a remote define looked for the disk on the client's side"
hcli 1 status r2 --json | jq -e --arg d "$tmp/rdir/r2.img" '.def.disks[0].path == $d' >/dev/null ||
  fail "r2 was not defined with the daemon's path"
hcli 1 undefine r2 >/dev/null
[ -f rdir/r2.img ] || fail "undefine removed the operator's disk"
rc=0
on_host 2 handoff --host "$admin" --psk "$tmp/k.psk" define r3 --memory 64 --disk rdir/r2.img 2> e || rc=$?
[ "$rc" = 1 ] && grep -q "with --host, give the path on that host, absolute" e ||
  { cat e; fail "a relative path was not refused with --host (exit $rc)"; }
rc=0
on_host 2 handoff --host "$admin" --psk "$tmp/k.psk" define r3 --memory 64 --disk /nonexistent/r3.img 2> e || rc=$?
[ "$rc" != 0 ] && grep -q "/nonexistent/r3.img" e ||
  { cat e; fail "a disk missing on the daemon's side was not refused (exit $rc)"; }
hcli 1 status r3 >/dev/null 2>&1 && fail "r3 was defined"

# Hostile strings over the admin channel, as a client holding the key
# could send them (the CLI refuses them before they leave; the daemon
# must too): every request field that names a VM, a host, an event
# type, a label or a path.  Each is refused with a reason and changes
# nothing.
client=$build/tests/peer-client
[ -x "$client" ] || fail "$client is not built"
hcli 1 label remote1 tier=web >/dev/null
mkdir -p victim && touch victim/file
state_before=$(ls h1 | grep -v '^logs$')
cat > hostile.py <<'PY'
import json, subprocess, sys

client, uri, psk, disk = sys.argv[1:5]
BAD = {
    "dotdot": "..", "dot": ".", "up": "../victim", "abs": "/etc/shadow",
    "empty": "", "long": "a" * 4096, "nul": "a\u0000b", "nonutf8": None,
}
failures, n = [], 0


def frame(msg):
    text = json.dumps(msg).encode()
    return b"raw:" + text.replace(b'"@@RAW@@"', b'"a\xff\xfeb"')


def check(case, msg):
    global n
    n += 1
    out = subprocess.run([client, "--cli", uri, psk, frame(msg)],
                         capture_output=True, timeout=60)
    lines = out.stdout.decode(errors="replace").splitlines()
    try:
        got = json.loads(lines[-1])
    except Exception:
        failures.append("%s: no answer (%r)" % (case, lines))
        return
    if got.get("ok") is not False or not got.get("error"):
        failures.append("%s: not refused with a reason: %s" % (case, lines[-1]))
    else:
        print("%-32s %s" % (case, got["error"][:100]))


def v(bad):
    return bad if bad is not None else "@@RAW@@"


for label, bad in BAD.items():
    for op in ("start", "stop", "undefine", "status", "abort"):
        check("%s.vm=%s" % (op, label), {"op": op, "vm": v(bad)})
    check("event.vm=%s" % label, {"op": "event", "vm": v(bad), "type": "x"})
    check("event.type=%s" % label,
          {"op": "event", "vm": "remote1", "type": v(bad)})
    check("label.vm=%s" % label,
          {"op": "label", "vm": v(bad), "labels": {"a": "b"}})
    # A good label beside a bad one: neither is stored.
    check("label.key=%s" % label, {"op": "label", "vm": "remote1",
                                   "labels": {"zgood": "1", v(bad): "x"}})
    check("migrate.vm=%s" % label, {"op": "migrate", "vm": v(bad),
                                    "to": "host2", "follow": False})
    check("migrate.to=%s" % label, {"op": "migrate", "vm": "remote1",
                                    "to": v(bad), "follow": False})
    define = {"name": "evil", "memory": 64, "vcpus": 1,
              "disks": [{"path": disk, "size": 16777216}]}
    check("define.name=%s" % label,
          {"op": "define", "def": dict(define, name=v(bad))})
    # An absolute path is the operator's to choose on its own host.
    if label != "abs":
        for key in ("dir", "kernel", "initrd"):
            check("define.%s=%s" % (key, label),
                  {"op": "define", "def": dict(define, **{key: v(bad)})})
        bad_disk = [{"path": v(bad), "size": 16777216}]
        check("define.disk=%s" % label,
              {"op": "define", "def": dict(define, disks=bad_disk)})
for value, label in (("a\u0000b", "nul"), (None, "nonutf8"),
                     ("a" * 4096, "long")):
    check("label.value=%s" % label, {"op": "label", "vm": "remote1",
                                     "labels": {"zgood": "1", "k": v(value)}})
print("%d cases, %d failures" % (n, len(failures)))
for f in failures:
    print("FAILED:", f)
sys.exit(1 if failures else 0)
PY
echo "== hostile strings over the admin channel"
on_host 2 python3 hostile.py "$client" "$admin" "$tmp/k.psk" "$tmp/d.img" |
  tee hostile.out || fail "a hostile request was not refused with a reason"
[ "$(hcli 1 list --json | jq -r '[.vms[].name] | join(" ")')" = remote1 ] ||
  fail "a refused request defined or removed a VM"
hcli 1 status remote1 --json | jq -e '.objects | has("label:zgood") | not' \
  >/dev/null || fail "a refused label request stored part of its labels"
[ -f victim/file ] || fail "the planted directory lost its file"
[ "$(ls h1 | grep -v '^logs$')" = "$state_before" ] ||
  fail "host 1's state directory changed: $(ls h1)"
if LC_ALL=C grep -aP '[\x00-\x08\x0b-\x1f\x7f]|\xff\xfe' h1.log; then
  fail "a control character or invalid UTF-8 reached the log"
fi

rc=0
on_host 2 handoff --host "$admin" --psk "$tmp/wrong.psk" undefine remote1 2> e || rc=$?
cat e
[ "$rc" = 7 ] || fail "a wrong key: exit $rc, expected 7"
hcli 1 list | grep -q '^remote1 ' || fail "the refused request changed something"
grep -q "unknown PSK identity\|TLS" h1.log || fail "the refusal was not logged"

# A key or an address that cannot work is a usage error (1), said
# before any connection, not an unreachable host (7).
for bad in "--psk $tmp/nonexist.psk|--psk: $tmp/nonexist.psk" \
           "--psk /etc/hostname|--psk: /etc/hostname: line 1" \
           "--host garbage|--host: 'garbage' has no scheme" \
           "--host nbd://1.2.3.4/|--host: 'nbd://1.2.3.4/' is not tcp://ADDR:PORT"; do
  args=${bad%%|*} want=${bad#*|}
  rc=0
  # shellcheck disable=SC2086
  on_host 2 handoff --host "$admin" --psk "$tmp/k.psk" $args list > out.txt 2> e || rc=$?
  cat e
  [ "$rc" = 1 ] || fail "'$args': exit $rc, expected 1"
  [ "$(wc -l < e)" = 1 ] && grep -qF -- "handoff list: $want" e ||
    fail "'$args': not one line saying '$want'"
done

# 'handoff peers': host 2 answers with the key; with another key it
# does not (and says why).
start_handoffd 2
hcli 1 peers | tee peers.txt
grep -q '^host2 .* answers' peers.txt || fail "host 2 does not answer"
stop_handoffd 2
start_handoffd 2 --psk "$tmp/wrong.psk"
rc=0
hcli 1 peers > peers.txt 2>&1 || rc=$?
cat peers.txt
[ "$rc" = 7 ] || fail "a peer with another key: exit $rc, expected 7"
grep -q '^host2 .*TLS' peers.txt || fail "the failure does not say TLS"
stop_handoffd 2

# Without --admin: nothing on that port.
stop_handoffd 1
start_handoffd 1
rc=0
on_host 2 handoff --host "$admin" --psk "$tmp/k.psk" list 2>/dev/null || rc=$?
[ "$rc" = 7 ] || fail "no admin channel: exit $rc, expected 7"
echo "$0: PASS"
