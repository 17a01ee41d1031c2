#!/usr/bin/env bash
# A peer that holds the key and sends hostile strings, as a compromised
# or buggy host would: for every field of the peer protocol that can
# reach a path, a process argument, an SQL row or a log line - VM names,
# migration ids, host names, disk, kernel, initrd and directory paths,
# volume mount points, object and label keys, label values, hook names,
# event uids and types, reasons - it sends "..", ".", "../x", an
# absolute path, an empty string, 4 KiB, a NUL byte and bytes that are
# not UTF-8.  Each is refused with a reason and logged; afterwards host
# 2's state directory is intact, a directory planted beside it still
# holds its files, nothing was made, and a good migration still works.
# RELAY_STREAM, the request to carry another host's RAM stream (--via),
# gets the same strings, and destinations it must not be aimed at.
# Also: a boot file inside the VM's directory that is a symlink out of
# it is refused at start, and a hook naming a program outside the hook
# directory is never run.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
guest_hosts 2
client=$build/tests/peer-client
[ -x "$client" ] || fail "$client is not built"

handoff keygen k.psk >/dev/null 2>&1
start_handoffd 1
start_handoffd 2
make_test_vm "$tmp/vm"
# What a hostile name would reach: beside the state directory, and the
# state directory's own files.
mkdir -p victim/x
echo precious > victim/x/file
echo precious > victim/file
state_before=$(ls h2 | grep -v '^logs$')

cat > hostile.py <<'PY'
# Sends each case on its own connection and checks the answers.
import json, subprocess, sys

client, uri, psk, host1_ip = sys.argv[1:5]
BAD = {
    "dotdot": "..", "dot": ".", "up": "../x", "abs": "/etc/shadow",
    "empty": "", "long": "a" * 4096, "nul": "a\u0000b", "nonutf8": None,
}
failures = []
n = 0
serial = [0]


def mid():
    serial[0] += 1
    return "hostile-%d" % serial[0]


def encode(msg, raw_bad):
    """MSG as a frame; RAW_BAD replaces the placeholder with bytes that
    are not UTF-8 (JSON cannot carry them otherwise)."""
    text = b"raw:" + json.dumps(msg).encode()
    if raw_bad:
        text = text.replace(b'"@@RAW@@"', b'"a\xff\xfeb"')
    return text


def send(frames):
    args = [client.encode(), uri.encode(), psk.encode()] + frames
    out = subprocess.run(args, capture_output=True, timeout=60)
    return out.stdout.decode(errors="replace").splitlines()


def start(mode="live"):
    """A good START_MIGRATION, for a VM of its own (see vm_name)."""
    return {"type": "START_MIGRATION", "id": mid(), "vm": vm_name(),
            "source": "host1", "mode": mode,
            "needs": {"memory": 64, "vcpus": 1, "disk_bytes": 0}}


def vm_name():
    return "evil%d" % serial[0]


def good_def(name="evil"):
    return {"name": name, "memory": 64, "vcpus": 1,
            "disks": [{"path": "/srv/evil.img", "size": 1048576}],
            "dir": "/srv/evil", "kernel": "/srv/evil/vmlinux",
            "initrd": "/srv/evil/initrd"}


def check(case, frames, want_type, at=-1):
    global n
    n += 1
    lines = send(frames)
    try:
        got = json.loads(lines[at])
    except Exception:
        failures.append("%s: no answer (%r)" % (case, lines))
        return
    reason = got.get("reason") or got.get("error") or ""
    # A frame that is no JSON at all is refused before its type is read.
    if got.get("type", "error" if got.get("ok") is False else "") not in want_type + ("error",):
        failures.append("%s: answered %s, expected %s" % (case, lines[at], want_type))
    elif not reason:
        failures.append("%s: refused without a reason (%s)" % (case, lines[at]))
    else:
        print("%-40s %s: %s" % (case, got.get("type", "error"), reason[:100]))


def put(obj, path, value):
    """OBJ with the field at PATH (a list of keys) set to VALUE."""
    obj = json.loads(json.dumps(obj))
    o = obj
    for k in path[:-1]:
        o = o[k]
    if path[-1] == "@key":
        v = o.pop("label:tier")
        o["label:" + value if value is not None else "@@RAW@@"] = v
    else:
        o[path[-1]] = value if value is not None else "@@RAW@@"
    return obj


for label, bad in BAD.items():
    raw = bad is None
    # START_MIGRATION: refused outright.
    for field in ("id", "vm", "source", "mode"):
        msg = put(start(), [field], bad)
        check("start.%s=%s" % (field, label), [encode(msg, raw)], ("DENIED", "error"))
    # QUERY_MIGRATION and ABORT_MIGRATION.
    for t in ("QUERY_MIGRATION", "ABORT_MIGRATION"):
        msg = put({"type": t, "id": "x"}, ["id"], bad)
        check("%s.id=%s" % (t.lower(), label), [encode(msg, raw)], ("FAILED", "error"))
    # MANAGEMENT_STATE after a good start: INSTANTIATION_ERROR.
    def state():
        return {"type": "MANAGEMENT_STATE", "def": good_def(vm_name()),
                "objects": {"label:tier": "web", "policy": "{}"}}
    fields = [["def", "name"], ["def", "disks", 0, "path"], ["def", "dir"],
              ["def", "kernel"], ["def", "initrd"], ["def", "append"],
              ["objects", "label:tier"], ["objects", "@key"]]
    for f in fields:
        if bad == "/etc/shadow" and f[-1] in ("path", "dir"):
            continue            # The source's own paths: rebased here.
        if f[-1] in ("append", "label:tier") and bad not in ("a" * 4096, "a\u0000b", None):
            continue            # Free text: only what text may not hold.
        name = ".".join(str(k) for k in f)
        first = encode(start(), False)
        check("state.%s=%s" % (name, label),
              [first, encode(put(state(), f, bad), raw)],
              ("INSTANTIATION_ERROR", "FAILED"))
    # A policy whose hook is a path.
    if bad is not None:
        pol = json.dumps({"hooks": {"*": bad}})
        first = encode(start(), False)
        check("state.objects.policy.hook=%s" % label,
              [first, encode(put(state(), ["objects", "policy"], pol), False)],
              ("INSTANTIATION_ERROR", "FAILED"))
    # QUEUED_EVENTS and MANAGEMENT_UPDATE, after a good state (no disks,
    # no directory: only a relay is made).
    def small():
        return {"type": "MANAGEMENT_STATE", "def": {"name": vm_name(),
                "memory": 64, "vcpus": 1, "disks": []}, "objects": {}}
    for f in ("uid", "type"):
        ev = {"uid": "host1-1-aa", "type": "t", "posted": 1, "payload": None}
        msg = {"type": "QUEUED_EVENTS", "events": [put(ev, [f], bad)]}
        first = encode(start(), False)
        check("events.%s=%s" % (f, label),
              [first, encode(small(), False), encode(msg, raw)], ("FAILED",))
    upd = {"type": "MANAGEMENT_UPDATE", "objects": {"label:tier": "db"}}
    first = encode(start(), False)
    check("update.@key=%s" % label,
          [first, encode(small(), False),
           encode(put(upd, ["objects", "@key"], bad), raw)], ("FAILED",))
    # ABORT's reason.
    if bad not in ("..", ".", "../x", "/etc/shadow", "", "a" * 4096):
        check("abort.reason=%s" % label,
              [encode(start(), False), encode({"type": "ABORT", "reason": bad
                                               if bad is not None else "@@RAW@@"}, raw)],
              ("FAILED",))
    # VOLUME_HANDOFF: mount points and the files on them.
    for f in (["volumes", 0, "mountpoint"], ["def", "disks", 0, "path"]):
        first = encode(start("volume"), False)
        vol = {"type": "VOLUME_HANDOFF",
               "def": {"name": vm_name(), "memory": 64, "vcpus": 1,
                       "disks": [{"path": "/srv/vol/evil.img", "size": 1}]},
               "objects": {},
               "volumes": [{"mountpoint": "/srv/vol", "descriptor": {}}]}
        check("volume.%s=%s" % (".".join(str(k) for k in f), label),
              [first, encode(put(vol, f, bad), raw)], ("FAILED",))

# The steps of several destinations and of a pre-warmed migration,
# malformed or out of place: refused, and what was begun is dropped.
for case, msg in (
        ("start_vm.prewarm=string", {"type": "START_VM", "prewarm": "yes"}),
        ("complete.hold=number", {"type": "MIGRATION_COMPLETE", "hold": 1}),
        ("resume before loaded", {"type": "RESUME"})):
    check(case, [encode(start(), False), encode(small(), False),
                 encode(msg, False)], ("FAILED",))

# Boot files outside the VM's directory, absolute: refused.
for k in ("kernel", "initrd"):
    first = encode(start(), False)
    d = good_def(vm_name())
    d[k] = "/etc/shadow"
    check("state.def.%s outside dir" % k,
          [first, encode({"type": "MANAGEMENT_STATE", "def": d, "objects": {}}, False)],
          ("INSTANTIATION_ERROR",))
# A mount point outside this host's volume_roots (none here).
first = encode(start("volume"), False)
vol = {"type": "VOLUME_HANDOFF",
       "def": {"name": vm_name(), "memory": 64, "vcpus": 1,
               "disks": [{"path": "/etc/evil.img", "size": 1}]},
       "objects": {}, "volumes": [{"mountpoint": "/etc", "descriptor": {"a": 1}}]}
check("volume.mountpoint=/etc", [first, encode(vol, False)], ("FAILED",))

# RELAY_STREAM (this host as a stream proxy): hostile strings in each
# field, destinations it must not be aimed at, malformed lists; each
# refused before anything is made.
def relay(**kw):
    m = {"type": "RELAY_STREAM", "id": mid(), "vm": vm_name(),
         "source": "host1", "hold": True,
         "to": [{"host": "host1", "xfer": "tcp://%s:4000" % host1_ip,
                 "key": "handoff-migration:" + "ab" * 16}]}
    m.update(kw)
    return m


for label, bad in BAD.items():
    raw = bad is None
    for f in (["id"], ["vm"], ["source"], ["to", 0, "host"],
              ["to", 0, "xfer"], ["to", 0, "key"]):
        check("relay.%s=%s" % (".".join(str(k) for k in f), label),
              [encode(put(relay(), f, bad), raw)], ("FAILED", "DENIED"))
far = [{"host": "host1", "xfer": "tcp://10.9.9.9:4000",
        "key": "handoff-migration:" + "ab" * 16}]
stranger = [{"host": "host9", "xfer": "tcp://%s:4000" % host1_ip,
             "key": "handoff-migration:" + "ab" * 16}]
params = [{"host": "host1",
           "xfer": "tcp://%s:4000?tls-psk-file=/etc/shadow" % host1_ip,
           "key": "handoff-migration:" + "ab" * 16}]
newline = [{"host": "host1", "xfer": "tcp://%s:4000" % host1_ip,
            "key": "handoff-migration:" + "ab" * 16 + "\nx:" + "cd" * 16}]
many = [{"host": "host%d" % i, "xfer": "tcp://%s:4000" % host1_ip,
         "key": "handoff-migration:" + "ab" * 16} for i in range(1, 7)]
for case, to, want in (
        ("relay to a third host's address", far, ("DENIED",)),
        ("relay to a host it does not know", stranger, ("DENIED",)),
        ("relay address with parameters", params, ("FAILED",)),
        ("relay key of two lines", newline, ("FAILED",)),
        ("relay to six destinations", many, ("FAILED",)),
        ("relay to nobody", [], ("FAILED",)),
        ("relay twice to one host", far[:1] * 2, ("FAILED",))):
    check(case, [encode(relay(to=to), False)], want)
check("relay from a host that is not the sender",
      [encode(relay(source="host2"), False)], ("DENIED",))

# The disks too (--via serves them): exports aimed elsewhere, with
# parameters, or not one per disk; absurd sizes.  Refused before any
# scratch image is made.
def with_disks(disks, sizes=(1 << 20,)):
    to = [dict(relay()["to"][0], disks=disks)]
    return relay(to=to, disks=list(sizes))
for case, msg, want in (
        ("relay disk to a third host's address",
         with_disks(["nbds://10.9.9.9:10809/"]), ("DENIED",)),
        ("relay disk export with parameters",
         with_disks(["nbds://%s:10809/?tls-psk-file=/etc/shadow" % host1_ip]),
         ("FAILED",)),
        ("relay disk over a unix socket",
         with_disks(["nbd+unix:///?socket=/run/handoffd.sock"]), ("FAILED",)),
        ("relay disk without TLS",
         with_disks(["nbd://%s:10809/" % host1_ip]), ("FAILED",)),
        ("relay two exports for one disk",
         with_disks(["nbds://%s:10809/" % host1_ip] * 2), ("FAILED",)),
        ("relay disk of no size",
         with_disks(["nbds://%s:10809/" % host1_ip], (0,)), ("FAILED",)),
        ("relay disk of 2^62 bytes",
         with_disks(["nbds://%s:10809/" % host1_ip], (1 << 62,)),
         ("FAILED",)),
        ("relay nine disks",
         with_disks(["nbds://%s:10809/" % host1_ip] * 9, (1 << 20,) * 9),
         ("FAILED",)),
        ("relay disk data without disks", relay(disk_bytes=1 << 20),
         ("FAILED",)),
        ("relay more disk data than the disks hold",
         dict(with_disks(["nbds://%s:10809/" % host1_ip]),
              disk_bytes=1 << 62), ("FAILED",)),
        ("relay share receiver on a third host's address",
         relay(to=[dict(relay()["to"][0], share="tcp://10.9.9.9:4001")]),
         ("DENIED",)),
        ("relay share receiver with parameters",
         relay(to=[dict(relay()["to"][0],
                        share="tcp://%s:4001?tls-psk-file=/etc/shadow"
                        % host1_ip)]), ("FAILED",)),
        ("relay share receiver over a unix socket",
         relay(to=[dict(relay()["to"][0],
                        share="unix:/run/handoffd.sock")]), ("FAILED",)),
        ("relay disks without sizes",
         relay(to=[dict(relay()["to"][0],
                        disks=["nbds://%s:10809/" % host1_ip])]),
         ("FAILED",))):
    check(case, [encode(msg, False)], want)
# A MIRROR or SHARE call outside a relay's conversation.
check("share call outside a migration",
      [encode({"type": "SHARE", "op": "status"}, False)], ("FAILED",))
check("mirror call outside a migration",
      [encode({"type": "MIRROR", "disk": 0, "op": "status"}, False)],
      ("FAILED",))

print("%d cases, %d failures" % (n, len(failures)))
for f in failures:
    print("FAILED:", f)
sys.exit(1 if failures else 0)
PY

echo "== hostile strings in every field"
on_host 1 python3 hostile.py "$client" "tcp://${HOST_IP[2]}:$HD_PORT" k.psk "${HOST_IP[1]}" |
  tee hostile.out || fail "a hostile string was not refused with a reason"
cases=$(tail -n 1 hostile.out | grep -o '^[0-9]* cases' || true)
[ -n "$cases" ] || cases=$(grep -o '[0-9]* cases' hostile.out)
echo "$cases"

echo "== nothing was made, nothing was removed"
[ -f victim/x/file ] && [ -f victim/file ] || fail "the planted directory lost files"
[ -f h2/state.db ] && [ -d h2/images ] && [ -d h2/run ] ||
  fail "host 2's state directory was damaged: $(ls h2)"
[ "$(sqlite3 h2/state.db 'pragma integrity_check')" = ok ] || fail "state.db is damaged"
wait_for 30 "host 2 to drop every attempt" bash -c \
  "[ -z \"\$(find '$tmp/h2/run' '$tmp/h2/images' -mindepth 1)\" ]"
[ "$(sqlite3 h2/state.db 'select count(*) from vms; select count(*) from objects; select count(*) from events;' | tr '\n' ' ')" = "0 0 0 " ] ||
  fail "host 2 kept rows"
[ "$(sqlite3 h2/state.db "select count(*) from journal where result is null")" = 0 ] ||
  fail "host 2 left a migration open"
[ "$(ls h2 | grep -v '^logs$')" = "$state_before" ] ||
  fail "host 2's state directory changed: $(ls h2)"
host_idle 2
# Refusals are logged, on one line each, without the raw bytes.
grep -q "refused" h2.log || fail "the refusals are not logged"
if LC_ALL=C grep -aP '[\x00-\x08\x0b-\x1f\x7f]|\xff\xfe' h2.log; then
  fail "a control character or invalid UTF-8 reached the log"
fi

echo "== a boot file in the VM's directory that leads out of it"
# As a received directory could hold: the definition names vm2/vmlinux,
# which is a link to a file of this host by the time the VM starts.
mkdir -p vm2
cp "$GUEST_DIR/vmlinux" "$GUEST_DIR/initrd.gz" vm2/
truncate -s 16M vm2.img
hcli 1 define evil2 --memory 128 --disk "$tmp/vm2.img" --dir "$tmp/vm2" \
  --kernel "$tmp/vm2/vmlinux" --initrd "$tmp/vm2/initrd.gz" --append "console=ttyS0"
ln -sf /etc/hostname vm2/vmlinux
rc=0
hcli 1 start evil2 > start.out 2>&1 || rc=$?
cat start.out
[ "$rc" != 0 ] || fail "a kernel linked out of the VM's directory was started"
grep -q "leads outside the VM's directory" start.out || fail "the refusal does not say why"
hcli 1 undefine evil2

echo "== hooks: only programs in the hook directory"
echo '{"hooks": {"*": "/bin/true"}}' > pol-abs.json
rc=0
hcli 1 define evil3 --memory 128 --disk "$tmp/vm2.img" --policy pol-abs.json \
  > def.out 2>&1 || rc=$?
cat def.out
[ "$rc" != 0 ] && grep -q "hook directory" def.out || fail "a hook path was accepted"
# A hook name with nothing behind it in the hook directory: the event is
# delivered without running anything, and says why.
echo '{"hooks": {"*": "missing-hook"}}' > pol-missing.json
hcli 1 define evil3 --memory 128 --disk "$tmp/vm2.img" --policy pol-missing.json
hcli 1 event evil3 poke > /dev/null
hcli 1 status evil3 --json | jq -e '.events[-1].result | test("missing-hook: No such file")' >/dev/null ||
  fail "the event does not say its hook is missing: $(hcli 1 status evil3 --json | jq -c '.events')"
# A hook writable by others is not run either.
cp /bin/true "$tmp/hooks/loose"
chmod 0777 "$tmp/hooks/loose"
echo '{"hooks": {"*": "loose"}}' > pol-loose.json
hcli 1 undefine evil3
hcli 1 define evil3 --memory 128 --disk "$tmp/vm2.img" --policy pol-loose.json
hcli 1 event evil3 poke > /dev/null
hcli 1 status evil3 --json | jq -e '.events[-1].result | test("writable only")' >/dev/null ||
  fail "a hook writable by others was run"
hcli 1 undefine evil3

echo "== and a good migration still works afterwards"
define_guest 1 web1 "$tmp/vm" 256 records
hcli 1 start web1
wait_for 120 "the guest" grep -q "HANDOFF-REC 3" "$tmp/h1/run/web1/serial.log"
hcli 1 migrate web1 --to host2 > good.txt || { cat good.txt; fail "migration"; }
hcli 2 status web1 | grep -q "QEMU: running" || fail "web1 does not run on host 2"
last_rec=$(check_records "$(hcli 2 status web1 --json | jq -r '.def.disks[0].path')") ||
  fail "records on host 2"
echo "records intact up to $last_rec"
echo "$0: PASS"
