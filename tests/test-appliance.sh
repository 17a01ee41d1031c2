#!/usr/bin/env bash
# The appliance: build the image ('make appliance'; its base system is
# cached by package list), boot three copies under QEMU on one virtual
# network (a bridge in a network namespace), seeded through fw_cfg,
# all three with one key.  Then:
#  - A's boot self-test: handoffd active, the version of this tree,
#    nbdkit serving a disk through the mirror filter, rdma_rxe loaded
#    and an rxe link added, QEMU present;
#  - A's console takes logins back to back (its getty is never
#    start-limited);
#  - A's admin channel through a forwarded port answers 'handoff --host
#    ... list' and reports the tree's revision;
#  - A and B (seed "rdma": true) have Soft-RoCE on their peer link and
#    their handoffd finds it under its systemd unit ('handoff host'); C,
#    seeded without, says its RAM streams go over TCP, and why;
#  - A reaches B's and C's handoffd over TLS-PSK with the seeded key
#    ('handoff peers'); an admin client with another key is refused;
#  - a small VM (tests/guest/ramcheck.S: it keeps 8 MiB of RAM checked;
#    its files on a data disk that A's seed mounts) moves from A to B
#    with its RAM over RDMA (Soft-RoCE: B's RDMA counters count the
#    packets), and back to A over TCP; it goes on counting its rounds
#    on each side with its RAM intact, and its disk comes back whole;
#  - QEMU's multifd migration (three streams) through two handoff-xfer
#    relays over rdma://, the same program's RAM intact on B;
#  - a pre-warmed migration from A to B and C at once (auto: RDMA to
#    B, TCP to C, through one fan-out relay), held warm, then 'cutover
#    --to appl-2': the VM goes on on B with its RAM intact, C drops it;
#  - with B's Soft-RoCE link deleted after its handoffd started (so
#    both still say RDMA), 'migrate' (auto) back to A cannot set RDMA up
#    from B and carries the RAM over TCP instead, before anything
#    pauses, and says so; the VM goes on on A with its RAM intact;
#  - A shuts down cleanly (ACPI power button: handoffd stopped, power
#    off).
source "$(dirname "$0")/functions.sh"
requires_root
requires mmdebstrap --version
requires mkfs.ext4 -V
requires qemu-system-x86_64 --version
requires jq --version
requires as --version
requires_netns
[ -z "${SANITIZE:-}" ] ||
  skip "the appliance carries the release build; it is tested by the plain 'make check'"
make_tmpdir
cd "$tmp"

echo "== make appliance"
make -s -C "$top" O="$O" appliance 2>&1 | tail -n 3
out=$top/appliance/out
for f in handoff-appliance.img vmlinuz initrd.img packages.lst; do
  [ -s "$out/$f" ] || fail "make appliance did not make $f"
done
echo "image: $(du -h --apparent-size "$out/handoff-appliance.img" | cut -f1) (sparse: $(du -h "$out/handoff-appliance.img" | cut -f1) used), $(wc -l < "$out/packages.lst") packages"

make_hosts 1                    # the lab: one namespace with a bridge
on_host 1 ip link add br0 type bridge
on_host 1 ip addr add 10.77.0.254/24 dev br0
on_host 1 ip link set br0 up

handoff keygen k.psk >/dev/null 2>&1
handoff keygen other.psk >/dev/null 2>&1
accel=tcg
grep -qwE 'vmx|svm' /proc/cpuinfo && [ -w /dev/kvm ] && accel=kvm

# The VM the appliances move: a kernel-less program (a Linux guest
# would take minutes to boot under TCG inside TCG), in its directory
# on a data disk with its disk image.
mkdir -p lab/web
as --32 -o ramcheck.o "$top/tests/guest/ramcheck.S"
ld -m elf_i386 -Ttext=0x100000 -o lab/web/ramcheck.elf ramcheck.o
head -c 16M /dev/urandom > lab/web.img
mkfs.ext4 -q -F -L handoff-lab -d lab lab.img 64M
qemu-img create -q -f qcow2 -b "$tmp/lab.img" -F raw lab-a.qcow2
qemu-img create -q -f qcow2 -b "$tmp/lab.img" -F raw lab-b.qcow2
qemu-img create -q -f qcow2 -b "$tmp/lab.img" -F raw lab-c.qcow2
# VMs inside the appliances run under TCG when the appliances do: their
# KVM would be one QEMU emulates, which does not boot Linux here.
inner_accel=null
[ "$accel" = tcg ] && inner_accel='"tcg"'

# boot_appliance X N KEY SEED-EXTRA [EXTRA QEMU ARGS]: appliance X at
# 10.77.0.N; its seed is the common one plus the object SEED-EXTRA.
# Its serial console is a socket (tests/appliance-shell.py runs
# commands there), logged to X.console.
boot_appliance ()
{
  local x=$1 n=$2 key=$3 extra=$4 mac
  shift 4
  mac=52:54:00:77:00:0$n
  on_host 1 ip tuntap add "tap$x" mode tap
  on_host 1 ip link set "tap$x" master br0 up
  jq -n --arg psk "$(cat "$key")" --arg mac "$mac" --arg n "$n" \
        --argjson accel "$inner_accel" --argjson extra "$extra" '{
      name: "appl-\($n)", psk: $psk, selftest: true, rdma: ($n != "3"),
      listen: "tcp://10.77.0.\($n):7800", admin: "tcp://0.0.0.0:7900",
      peers: ({"appl-1": "tcp://10.77.0.1:7800", "appl-2": "tcp://10.77.0.2:7800",
               "appl-3": "tcp://10.77.0.3:7800"} | del(.["appl-\($n)"])),
      addresses: {($mac): "10.77.0.\($n)/24"}
    } + (if $accel then {accel: $accel} else {} end) + $extra' > "seed-$x.json"
  qemu-img create -q -f qcow2 -b "$out/handoff-appliance.img" -F raw "$x.qcow2"
  on_host 1 qemu-system-x86_64 -accel "$accel" -m 768 -smp 1 \
    -nodefaults -display none -no-reboot \
    -kernel "$out/vmlinuz" -initrd "$out/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 systemd.show_status=1" \
    -drive "file=$tmp/$x.qcow2,if=virtio,format=qcow2" \
    -netdev "tap,id=lab,ifname=tap$x,script=no,downscript=no" \
    -device "virtio-net-pci,netdev=lab,mac=$mac" \
    -fw_cfg "name=opt/org.handoff/seed,file=$tmp/seed-$x.json" \
    -qmp "unix:$tmp/$x.qmp,server=on,wait=off" \
    -chardev "socket,id=con,path=$tmp/$x.con,server=on,wait=off,logfile=$tmp/$x.console" \
    -serial chardev:con \
    "$@" > "$x.qemu.log" 2>&1 &
  echo $! > "$x.pid"
  cleanup_fn kill_pidfile "$tmp/$x.pid"
}

echo "== booting three appliances ($accel)"
boot_appliance a 1 k.psk '{"mounts": {"LABEL=handoff-lab": "/srv/lab"}}' \
  -netdev "user,id=mgmt,hostfwd=tcp:127.0.0.1:17900-:7900" \
  -device virtio-net-pci,netdev=mgmt \
  -drive "file=$tmp/lab-a.qcow2,if=virtio,format=qcow2"
boot_appliance b 2 k.psk '{"mounts": {"LABEL=handoff-lab": "/srv/lab"}}' \
  -drive "file=$tmp/lab-b.qcow2,if=virtio,format=qcow2"
boot_appliance c 3 k.psk '{"mounts": {"LABEL=handoff-lab": "/srv/lab"}}' \
  -drive "file=$tmp/lab-c.qcow2,if=virtio,format=qcow2"

ha () { on_host 1 handoff --host tcp://127.0.0.1:17900 --psk "$tmp/k.psk" "$@"; }
wait_for 600 "appliance A's self-test" grep -q "HANDOFF-SELFTEST done" a.console
grep -a "HANDOFF-SELFTEST" a.console | tr -d '\r'
for t in handoffd nbdkit-filter rdma qemu; do
  grep -aq "HANDOFF-SELFTEST ok $t" a.console || fail "self-test $t"
done
v=$(grep -a "HANDOFF-SELFTEST version" a.console | tr -d '\r' | sed 's/.*HANDOFF-SELFTEST version //')
[ "$v" = "$(handoff --version)" ] ||
  fail "the appliance has '$v', this tree '$(handoff --version)'"

echo "== A's admin channel through the forwarded port"
wait_for 60 "A's admin channel" ha host
ha list
[ "$(ha host --json | jq -r .revision)" = "$(git -C "$top" rev-parse --short HEAD)" ] ||
  fail "the appliance's handoffd is not this tree's revision"
ha host --json | jq -e '.host == "appl-1"' >/dev/null || fail "A's name from the seed"
# The seed's "rdma": Soft-RoCE on the peer link, found by handoffd
# under its systemd unit (which must leave it the RDMA devices).
grep -a "handoff-rdma" a.console | tr -d '\r' || true
ha host --json | jq -c .rdma
ha host --json | jq -e '.rdma.usable == true and (.rdma.device | startswith("rxe"))' >/dev/null ||
  fail "A's handoffd does not find RDMA behind its peer address: $(ha host --json | jq -c .rdma)"

echo "== peers: B and C answer with the seeded key; another key is refused"
on_host 1 handoff --host tcp://10.77.0.2:7900 --psk "$tmp/k.psk" host >/dev/null 2>&1 ||
  wait_for 600 "appliance B" on_host 1 handoff --host tcp://10.77.0.2:7900 --psk "$tmp/k.psk" host
wait_for 600 "appliance C" on_host 1 handoff --host tcp://10.77.0.3:7900 --psk "$tmp/k.psk" host
ha peers > peers.txt 2>&1 || { cat peers.txt; fail "'handoff peers' on A"; }
cat peers.txt
grep -q "^appl-2 .* answers" peers.txt || fail "A does not reach B"
grep -q "^appl-3 .* answers" peers.txt || fail "A does not reach C"
on_host 1 handoff --host tcp://10.77.0.2:7900 --psk "$tmp/k.psk" host --json |
  jq -e '.rdma.usable == true' >/dev/null || fail "B's handoffd does not find RDMA"
on_host 1 handoff --host tcp://10.77.0.3:7900 --psk "$tmp/k.psk" host --json |
  jq -e '.rdma.usable == false and (.rdma.reason | length) > 0' >/dev/null ||
  fail "C (no rdma in its seed) claims RDMA"
on_host 1 handoff --host tcp://10.77.0.3:7900 --psk "$tmp/k.psk" host |
  grep -q "^RAM streams: TCP; no RDMA: " || fail "'handoff host' does not say C's RAM streams go over TCP"
if on_host 1 handoff --host tcp://10.77.0.3:7900 --psk "$tmp/other.psk" list > other.txt 2>&1; then
  fail "C took another key"
fi
grep -q "TLS" other.txt || { cat other.txt; fail "another key was not refused at TLS"; }

# on_appl X COMMAND: COMMAND run on appliance X, through its console.
on_appl () { python3 "$top/tests/appliance-shell.py" "$tmp/$1.con" "$2"; }

echo "== A's console takes eight logins back to back"
# Each logout restarts the console's getty: systemd's default start
# limit would leave no login prompt after five in ten seconds.
t0=$SECONDS
for i in 1 2 3 4 5 6 7 8; do
  on_appl a "true" || fail "A's console gave no shell at login $i in a row"
done
# Where logins are slow (over 2 s each) the loop above stays under the
# limit; the unit's own setting says whether there is one.
v=$(on_appl a "systemctl show -P StartLimitIntervalUSec serial-getty@ttyS0.service" | tr -d '\r\n')
echo "eight logins in $((SECONDS - t0)) s; the console's start limit interval: '$v'"
[ "$v" = 0 ] || fail "A's console getty is start-limited ($v): a few logins in a row leave no login prompt"

echo "== a VM moves from A to B with its RAM over RDMA, then back over TCP"
hb () { on_host 1 handoff --host tcp://10.77.0.2:7900 --psk "$tmp/k.psk" "$@"; }
hc () { on_host 1 handoff --host tcp://10.77.0.3:7900 --psk "$tmp/k.psk" "$@"; }
# ram_round X: web1's last round with its RAM intact on X; ram_bad X:
# how many rounds found it changed.
ram_round ()
{
  on_appl "$1" "grep -a 'HANDOFF-RAM ok' \$(handoff status web1 --json | jq -r .serial) | tail -n 1" |
    sed -n 's/.*round=\([0-9]*\).*/\1/p'
}
ram_bad ()
{
  on_appl "$1" "grep -ac 'HANDOFF-RAM BAD' \$(handoff status web1 --json | jq -r .serial) || true" |
    tr -dc 0-9
}
# wait_rounds X N: until web1's rounds on X pass N (120 s; each look
# is a login on the console, so a few seconds apart).
wait_rounds ()
{
  local r end=$((SECONDS + 120))
  while r=$(ram_round "$1"); [ -z "$r" ] || [ "$r" -le "$2" ]; do
    [ $SECONDS -lt $end ] || fail "web1's rounds on $1 did not pass $2 in 120 s (at '${r}')"
    sleep 2
  done
}
# goes_on X FROM HOW: web1's rounds on X pass FROM + 10 with its RAM
# intact, after it came HOW.
goes_on ()
{
  wait_rounds "$1" $(($2 + 10))
  [ "$(ram_bad "$1")" = 0 ] || fail "web1's RAM changed on its way $3: $(ram_bad "$1") bad rounds"
  echo "web1 left round $2 and goes on on $1 at round $(ram_round "$1"), its RAM intact"
}
# rdma_pkts X: packets X's Soft-RoCE link received.
rdma_pkts ()
{
  on_appl "$1" "rdma statistic show" |
    awk '{ for (i = 1; i < NF; i++) if ($i == "rcvd_pkts") n += $(i + 1) } END { print n + 0 }'
}
wait_for 600 "B's self-test" grep -q "HANDOFF-SELFTEST done" b.console
ha define web1 --memory 32 --vcpus 1 --disk /srv/lab/web.img --dir /srv/lab/web \
  --kernel /srv/lab/web/ramcheck.elf
ha start web1
wait_rounds a 10
ha host --json | jq -e '.rdma.usable' >/dev/null || fail "A has no usable RDMA"
before=$(ram_round a) pkts=$(rdma_pkts b)
echo "web1 runs on A: round $before; B's Soft-RoCE received $pkts packets so far"
ha migrate web1 --to appl-2 --transport rdma > to-b.txt 2>&1 ||
  { cat to-b.txt; fail "the migration from A to B over RDMA failed"; }
tr '\r' '\n' < to-b.txt | grep -v '^ *$' | tail -n 7
grep -q "moving RAM over RDMA" to-b.txt && grep -q "^RAM: .* over RDMA$" to-b.txt ||
  fail "the RAM did not go over RDMA"
hb status web1 | grep -q "QEMU: running" || fail "web1 does not run on B"
ha status web1 >/dev/null 2>&1 && fail "web1 is still defined on A"
pkts_rdma=$(( $(rdma_pkts b) - pkts ))
# 8 MiB of the guest's data at most 4 KiB a packet (the RAM stream
# alone: the disk and the directory go over TCP).
echo "B's Soft-RoCE received $pkts_rdma packets during the migration"
[ "$pkts_rdma" -ge 2048 ] || fail "B received only $pkts_rdma RDMA packets: the RAM did not come over RDMA"
goes_on b "$before" "to B over RDMA"

mid=$(ram_round b) pkts=$(rdma_pkts a)
hb migrate web1 --to appl-1 --transport tcp > to-a.txt 2>&1 ||
  { cat to-a.txt; fail "the migration from B back to A over TCP failed"; }
tr '\r' '\n' < to-a.txt | grep -v '^ *$' | tail -n 7
grep -q "moving RAM over TCP" to-a.txt && grep -q "^RAM: .* over TCP$" to-a.txt ||
  fail "the RAM did not go over TCP"
echo "A's Soft-RoCE received $(( $(rdma_pkts a) - pkts )) packets during the TCP migration"
ha status web1 | grep -q "QEMU: running" || fail "web1 does not run on A again"
goes_on a "$mid" "back to A over TCP"
disk=$(ha status web1 --json | jq -r '.def.disks[0].path')
[ "$(on_appl a "md5sum < $disk" | cut -d' ' -f1)" = "$(md5sum < lab/web.img | cut -d' ' -f1)" ] ||
  fail "web1's disk ($disk on A) is not what it was"
ha stop web1 --force
# The rates mean function here, not speed: Soft-RoCE and TCP inside
# guests under TCG.
echo "A to B, $(grep '^RAM:' to-b.txt)"
echo "B to A, $(grep '^RAM:' to-a.txt)"

echo "== QEMU's multifd streams over RDMA, through the relays"
# A QEMU of their own on A and B (not handoffd's VMs), the same program,
# driven through a monitor on a pipe; A migrates with multifd (two
# channels: three streams in all) into its relay, which carries each
# stream over rdma:// to B's relay, which feeds QEMU -incoming.
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > token
# mf_run X NAME COMMAND: COMMAND in X's /run/mf as a transient unit
# (what a login starts ends with it).
mf_run ()
{
  on_appl "$1" "systemd-run -q --collect -u 'mf-$2' -p WorkingDirectory=/run/mf sh -c '$3'"
}
# mf_start X ARGS: the test QEMU on X (in /run/mf, its monitor the
# pipe mon.in/mon.out, its console serial.log), with QEMU ARGS.
mf_start ()
{
  on_appl "$1" "mkdir -p /run/mf && cd /run/mf && echo $(cat token) > token &&
    chmod 600 token && mkfifo mon.in mon.out"
  mf_run "$1" mon "cat mon.out > mon.log"
  mf_run "$1" qemu "exec qemu-system-x86_64 -accel tcg -m 32 -nodefaults -display none \
      -kernel /srv/lab/web/ramcheck.elf -serial file:/run/mf/serial.log \
      -monitor pipe:/run/mf/mon $2 > qemu.log 2>&1"
}
mf_monitor () { on_appl "$1" "printf '%s\n' $2 > /run/mf/mon.in"; }
mf_round ()
{
  on_appl "$1" "grep -a 'HANDOFF-RAM ok' /run/mf/serial.log | tail -n 1" |
    sed -n 's/.*round=\([0-9]*\).*/\1/p'
}
mf_start b "-incoming defer"
mf_run b relay "handoff-xfer relay --listen rdma://10.77.0.2:7311 \
  --token-file token --to unix:/run/mf/in -n 3 --json > relay.json 2> relay.log"
mf_monitor b "'migrate_set_capability multifd on' 'migrate_set_parameter multifd-channels 2' 'migrate_incoming unix:/run/mf/in'"
mf_start a ""
mf_run a relay "handoff-xfer relay --listen unix:/run/mf/out \
  --to rdma://10.77.0.2:7311 --token-file token -n 3 --json > relay.json 2> relay.log"
end=$((SECONDS + 120))
until r=$(mf_round a); [ -n "$r" ] && [ "$r" -gt 10 ]; do
  [ $SECONDS -lt $end ] || fail "the test QEMU on A does not run: $(on_appl a 'cat /run/mf/qemu.log')"
  sleep 2
done
pkts=$(rdma_pkts b)
mf_monitor a "'migrate_set_capability multifd on' 'migrate_set_parameter multifd-channels 2' 'migrate -d unix:/run/mf/out'"
end=$((SECONDS + 120))
until on_appl a "grep -qiE 'status:[[:space:]]*completed' /run/mf/mon.log || { echo 'info migrate' > /run/mf/mon.in; false; }" >/dev/null; do
  [ $SECONDS -lt $end ] ||
    fail "A's multifd migration did not complete: $(on_appl a 'tail -n 20 /run/mf/mon.log; cat /run/mf/relay.log'; on_appl b 'cat /run/mf/relay.log /run/mf/qemu.log')"
  sleep 2
done
for x in a b; do
  on_appl $x "grep summary /run/mf/relay.json" | tee "mf-relay-$x.json"
  jq -e 'select(.event == "summary") | .streams_done == 3 and .streams_failed == 0' \
    "mf-relay-$x.json" >/dev/null || fail "$x's relay did not carry three streams"
done
echo "B's Soft-RoCE received $(( $(rdma_pkts b) - pkts )) packets during the multifd migration"
[ $(( $(rdma_pkts b) - pkts )) -ge 2048 ] || fail "the multifd streams did not come over RDMA"
last=$(mf_round a)
end=$((SECONDS + 120))
until r=$(mf_round b); [ -n "$r" ] && [ "$r" -gt $((last + 10)) ]; do
  [ $SECONDS -lt $end ] || fail "the guest does not go on on B past round $last (at '$r')"
  sleep 2
done
on_appl b "grep -q 'HANDOFF-RAM BAD' /run/mf/serial.log" && fail "the guest's RAM changed on its way"
on_appl b "grep -q HANDOFF-BOOT /run/mf/serial.log" && fail "the guest booted again on B"
echo "the guest left A at round $last and goes on on B at round $(mf_round b), its RAM intact"
# The appliances have one CPU each: the next migrations get it back.
for x in a b; do
  on_appl $x "systemctl stop mf-qemu mf-relay mf-mon 2>/dev/null; true" > /dev/null
done

echo "== pre-warmed on B (RDMA) and C (TCP) at once, then cut over to B"
# auto: B has RDMA, C has none, so one fan-out relay on A carries the
# RAM stream over rdma:// to B and over tcp:// to C.
ha start web1
wait_rounds a 10
pkts=$(rdma_pkts b)
ha migrate web1 --to appl-2,appl-3 --prewarm --detach ||
  fail "starting the pre-warmed migration to B and C"
# all_warm: the migration and both destinations are warm (else a
# pause: each look costs A's one CPU a TLS handshake).
all_warm ()
{
  [ "$(ha status web1 --json |
       jq -r '[.migration.phase] + [.migration.destinations[].state] | join(" ")')" = "warm warm warm" ] ||
    { sleep 2; false; }
}
wait_for 300 "B and C warm" all_warm
ha status web1 --json > warm.json
jq -c '[.migration.destinations[] | {host, state, transport}]' warm.json
jq -e '[.migration.destinations[] | .host + "=" + .transport] | sort ==
       ["appl-2=rdma", "appl-3=tcp"]' warm.json >/dev/null ||
  fail "the destinations' transports are not RDMA to B and TCP to C: $(jq -c .migration.destinations warm.json)"
before=$(ram_round a)
ha cutover web1 --to appl-2 > cutover.txt 2>&1 || { cat cutover.txt; fail "cutover to B"; }
tr '\r' '\n' < cutover.txt | grep -v '^ *$' | tail -n 6
grep -q "^RAM: .* over RDMA to appl-2, TCP to appl-3$" cutover.txt ||
  fail "the result does not say RDMA to B and TCP to C"
hb status web1 | grep -q "QEMU: running" || fail "web1 does not run on B after the cutover"
if hc status web1 > /dev/null 2>&1; then fail "C kept web1 after losing the cutover"; fi
if ha status web1 > /dev/null 2>&1; then fail "A kept web1 after the cutover"; fi
pkts_rdma=$(( $(rdma_pkts b) - pkts ))
echo "B's Soft-RoCE received $pkts_rdma packets while warm and at the cutover"
[ "$pkts_rdma" -ge 2048 ] || fail "B received only $pkts_rdma RDMA packets from the fan-out"
goes_on b "$before" "to B through the fan-out"

echo "== RDMA gone at the source after handoffd started: auto falls back to TCP"
# Both handoffds said RDMA at start, so auto asks A for it; A's relay
# listens on rdma:// and on tcp:// beside it.  B's relay cannot set
# RDMA up and carries the stream over TCP before anything pauses.
on_appl b "rdma link delete rxe-ens2" > /dev/null
before=$(ram_round b)
hb migrate web1 --to appl-1 > fallback.txt 2>&1 ||
  { cat fallback.txt; fail "the migration whose RDMA did not come up failed"; }
tr '\r' '\n' < fallback.txt | grep -v '^ *$' | tail -n 7
grep -q "RDMA to appl-1 did not come up: moving RAM over TCP" fallback.txt ||
  fail "the fallback to TCP was not said"
grep -q "^RAM: .* over TCP$" fallback.txt || fail "the result does not say TCP"
ha status web1 | grep -q "QEMU: running" || fail "web1 does not run on A after the fallback"
goes_on a "$before" "to A over the fallback"

echo "== clean shutdown"
python3 "$top/tests/qmp.py" "$tmp/a.qmp" system_powerdown >/dev/null
wait_for 180 "A to power off" bash -c "! kill -0 $(cat a.pid) 2>/dev/null"
grep -aq "Stopped.*handoffd.service" a.console || fail "handoffd was not stopped"
grep -aq "reboot: Power down" a.console || fail "no clean power-off"
echo "$0: PASS"
