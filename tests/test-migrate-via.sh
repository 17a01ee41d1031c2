#!/usr/bin/env bash
# handoff migrate --via PROXY: the source sends its VM's RAM stream,
# disks and directory once, to the proxy host, which carries them to
# every destination.  Four hosts (network namespaces): host 1 the source,
# hosts 2 and 3 the destinations, host 4 the proxy; the test guest
# writes records and keeps 200 MiB of RAM under a pattern, so RAM is
# most of what moves.  Checked:
#   - bad --via (a destination, two hosts, an offline migration) is
#     refused and changes nothing;
#   - a proxy whose policy says "proxy": false refuses, and one with no
#     room for the disks' scratch images: the VM runs on where it was
#     and no host keeps anything of the migration;
#   - pre-warmed to hosts 2 and 3 through host 4, held, then cut over:
#     the VM runs on exactly one destination with every acknowledged
#     record, its disk's 48 MiB of random data and its directory
#     intact, the other and the proxy keep nothing (no process, no
#     file, no row); nft counters in the namespaces show the source sent
#     the RAM stream, the disk and the directory to the proxy alone
#     (each destination got less than 1 MiB from the source: the
#     controller's messages), and the proxy sent them on to both
#     destinations;
#   - one destination through the proxy, not held: the VM moves back to
#     host 1, the result says RAM went through host 4;
#   - a destination's host dies while warm through the proxy: the
#     other destination takes the VM at the cutover, the dead one drops
#     what it had once back;
#   - the proxy's export of the disk dies (kill -9) while the VM is
#     held warm: the migration fails naming the disk, the VM runs on
#     its source and goes on writing, nobody keeps anything;
#   - the proxy's host dies while the VM is held warm: the migration
#     rolls back, the VM runs on the source, the destinations drop
#     what they had, and the proxy's restarted handoffd stops nothing
#     twice.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
guest_hosts 4

handoff keygen k.psk >/dev/null 2>&1
allow_boot='"boot_dirs": ["'$GUEST_DIR'"]'
for i in 1 2 3 4; do echo "{$allow_boot}" > "h$i.policy"; done
for i in 1 2 3 4; do start_handoffd "$i"; done
make_test_vm "$tmp/vm"
# The guest writes its records in the disk's first 16 MiB; the rest is
# make_test_vm's random data, which must arrive as it is.
disk_tail () { tail -c 48M "$1" | md5sum | cut -d' ' -f1; }
tail_sum=$(disk_tail "$tmp/vm.img")
dir_bytes=$(du -sb "$tmp/vm" | cut -f1)
hcli 1 define web1 --memory 320 --disk "$tmp/vm.img" --dir "$tmp/vm" \
    --kernel "$tmp/vm/vmlinux" --initrd "$tmp/vm/initrd.gz" \
    --append "console=ttyS0 quiet panic=-1 handoff.mode=records handoff.ram=200"
hcli 1 start web1
wait_for 180 "the guest's records" grep -q "HANDOFF-REC 10" \
  "$tmp/h1/run/web1/serial.log"

# The one host that lists web1.
owner () { vm_owner web1 4; }

# The proxy keeps nothing: no process but handoffd, no relay directory.
proxy_clean ()
{
  host_idle 4
  wait_for 30 "host 4 to remove its relay directory" bash -c \
    "[ -z \"\$(ls -A '$tmp/h4/relay' 2>/dev/null)\" ]"
  vm_gone_from 4 web1
}

# warm_on SRC: wait until host SRC holds web1 warm on both destinations.
warm_on ()
{
  wait_for 240 "both destinations warm" bash -c \
    "[ \"\$(ip netns exec ${HOST_NS[$1]} handoff --socket $tmp/h$1.sock status web1 --json | jq -r '[.migration.phase] + [.migration.destinations[].state] | join(\" \")')\" = 'warm warm warm' ]"
}

# moved FROM TO: web1 went from host FROM to host TO with every record
# acknowledged on FROM; the proxy keeps nothing.
moved ()
{
  local serial acked on dir
  vm_runs_on "$2" web1
  vm_gone_from "$1" web1
  serial=$(ls -td "$tmp/h$1"/logs/web1-host"$1"-*/ | head -n 1)serial.log
  acked=$(serial_last REC "$serial")
  on=$(check_records "$(hcli "$2" status web1 --json | jq -r '.def.disks[0].path')") ||
    fail "host $2's records"
  echo "records: $acked acknowledged on host $1, $on on host $2's disk"
  [ "$on" -ge "$acked" ] || fail "host $2 lacks acknowledged records"
  [ "$(disk_tail "$(hcli "$2" status web1 --json | jq -r '.def.disks[0].path')")" = "$tail_sum" ] ||
    fail "host $2's disk differs from the source's past the records"
  dir=$(hcli "$2" status web1 --json | jq -r '.def.dir')
  cmp "$dir/vmlinux" "$GUEST_DIR/vmlinux" && cmp "$dir/initrd.gz" "$GUEST_DIR/initrd.gz" &&
    [ "$(cat "$dir/config")" = "name=web1" ] ||
    fail "host $2's copy of the directory differs"
  proxy_clean
}

# stayed_on SRC DEST...: after a failed migration web1 runs on host SRC
# alone and goes on writing there.
stayed_on ()
{
  local src=$1 before i
  shift
  [ "$(owner)" = "$src" ] || fail "web1 left host $src"
  vm_runs_on "$src" web1
  for i in "$@"; do vm_gone_from "$i" web1; done
  before=$(serial_last REC "$tmp/h$src/run/web1/serial.log")
  wait_for 60 "the guest to go on writing on host $src" bash -c \
    "[ \$(grep -ao 'HANDOFF-REC [0-9]*' '$tmp/h$src/run/web1/serial.log' | tail -n 1 | cut -d' ' -f2) -gt $before ]"
}

# Byte counters in host I's namespace for what it sends to each host.
count_start ()
{
  local i=$1 j rules=
  for j in 1 2 3 4; do
    [ "$j" = "$i" ] && continue
    rules+="counter to$j { }"$'\n'
  done
  for j in 1 2 3 4; do
    [ "$j" = "$i" ] && continue
    rules+="chain c$j { type filter hook output priority 0; ip daddr ${HOST_IP[$j]} counter name \"to$j\"; }"$'\n'
  done
  on_host "$i" nft -f - <<EOF
table inet via_bytes {
$rules}
EOF
}
sent () { on_host "$1" nft -j list counter inet via_bytes "to$2" | jq '.nftables[1].counter.bytes'; }
count_stop () { on_host "$1" nft delete table inet via_bytes 2>/dev/null || true; }

echo "== bad --via changes nothing"
expect_rc 1 "already a destination" \
  hcli 1 migrate web1 --to host2,host3 --via host2
expect_rc 1 "--via takes one host" \
  hcli 1 migrate web1 --to host2,host3 --via host3,host4
expect_rc 1 "--via is for live migrations" \
  hcli 1 migrate web1 --to host2 --via host4 --mode offline
expect_rc 1 "already a destination" \
  hcli 1 migrate web1 --to host2 --fallback host4 --via host4
expect_rc 1 "is this host" hcli 1 migrate web1 --to host2 --via host1
expect_rc 8 "unknown host 'host9'" hcli 1 migrate web1 --to host2 --via host9
vm_runs_on 1 web1
for i in 2 3 4; do vm_gone_from "$i" web1; done

echo "== a proxy that refuses: the VM stays, nobody keeps anything"
echo "{$allow_boot, \"proxy\": false}" > h4.policy
expect_rc 5 "carries no other host's streams" \
  hcli 1 migrate web1 --to host2,host3 --via host4
grep -q "refused to relay host1's stream of web1" "$tmp/h4.log" ||
  fail "host 4's log does not say it refused"
vm_runs_on 1 web1
for i in 2 3; do vm_gone_from "$i" web1; done
proxy_clean
# A proxy with no room for the disks' scratch images refuses them.
echo "{$allow_boot, \"reserve_disk_mb\": 1000000000}" > h4.policy
expect_rc 5 "not enough disk: the VM needs .* MiB are free in $tmp/h4" \
  hcli 1 migrate web1 --to host2,host3 --via host4
vm_runs_on 1 web1
for i in 2 3; do vm_gone_from "$i" web1; done
proxy_clean
echo "{$allow_boot}" > h4.policy

echo "== pre-warmed to two hosts through a proxy, then cut over"
count_start 1
count_start 4
hcli 1 migrate web1 --to host2,host3 --via host4 --prewarm --detach ||
  fail "starting the migration through host 4"
warm_on 1
[ "$(hcli 1 status web1 --json | jq -r '.migration.via')" = host4 ] ||
  fail "status does not name the proxy"
hcli 1 status web1 | grep -q "^migration: .* to host2,host3, streams through host4, phase warm" ||
  { hcli 1 status web1; fail "status does not say RAM goes through the proxy"; }
grep -q "relaying host1's stream of web1 to 2 destination(s)" "$tmp/h4.log" ||
  fail "host 4's log does not show its relay"
grep -q "serving 1 disk(s) of web1 to its destinations" "$tmp/h4.log" ||
  fail "host 4's log does not show it serves the disk"
grep -q "passing web1's directory on to its destinations" "$tmp/h4.log" ||
  fail "host 4's log does not show it passes the directory on"
[ -n "$(ns_strays 4 | grep handoff-xfer)" ] || fail "no relay runs on host 4"
grep -q "RAM goes once to host4" "$tmp/h1.log" ||
  fail "host 1's log does not say RAM goes to the proxy"
for p in $(netns_pids 1); do
  [ "$(cat "/proc/$p/comm" 2>/dev/null)" = handoff-xfer ] || continue
  tr '\0' '\n' < "/proc/$p/cmdline" > relay.args
  [ "$(grep -cx -- --to relay.args)" = 1 ] && grep -q "^tcp://${HOST_IP[4]}:" relay.args ||
    { cat relay.args; fail "the source's relay carries to more than the proxy"; }
done
sleep 5
before=$(serial_last REC "$tmp/h1/run/web1/serial.log")
sleep 5
after=$(serial_last REC "$tmp/h1/run/web1/serial.log")
[ "$after" -gt "$before" ] || fail "the guest stopped writing while warm"
hcli 1 cutover web1 --json > cut.json || { cat cut.json; fail "the cutover"; }
jq -c 'select(.event == "result")' cut.json
w=$(owner)
[ "$w" = 2 ] || [ "$w" = 3 ] || fail "web1 runs on host $w"
l=$(( w == 2 ? 3 : 2 ))
vm_gone_from "$l" web1
moved 1 "$w"
grep -q "no longer relaying host1's stream of web1" "$tmp/h4.log" ||
  fail "host 4's log does not show the relay's end"
to4=$(sent 1 4); to2=$(sent 1 2); to3=$(sent 1 3)
p2=$(sent 4 2); p3=$(sent 4 3)
echo "bytes sent: host 1 -> proxy $to4, -> host 2 $to2, -> host 3 $to3;" \
     "proxy -> host 2 $p2, -> host 3 $p3"
[ "$to2" -lt "$to4" ] && [ "$to3" -lt "$to4" ] ||
  fail "the source sent a destination as much as the proxy: RAM went direct"
# Neither the 64 MiB disk (63 MiB of random data) nor the directory
# ($dir_bytes bytes) went straight to a destination: the source sent
# each only the controller's messages.
[ "$to2" -lt $(( 1 << 20 )) ] && [ "$to3" -lt $(( 1 << 20 )) ] ||
  fail "the source sent a destination more than its messages: a stream went direct"
[ "$p2" -ge $(( to4 * 9 / 10 )) ] && [ "$p3" -ge $(( to4 * 9 / 10 )) ] ||
  fail "the proxy did not carry the stream to both destinations"
count_stop 1; count_stop 4
ram_intact_on "$w" web1

echo "== one destination through the proxy, not held"
hcli "$w" migrate web1 --to host1 --via host4 --json > back.json ||
  { cat back.json; fail "the migration back to host 1 through host 4"; }
jq -c 'select(.event == "result")' back.json
jq -e 'select(.event == "result") | .ok and .ram.over == "TCP through host4"' back.json >/dev/null ||
  fail "the result does not say RAM went through host 4"
[ "$(owner)" = 1 ] || fail "web1 is not on host 1"
moved "$w" 1

echo "== a destination's host dies while warm through the proxy: the other takes the VM"
hcli 1 migrate web1 --to host2,host3 --via host4 --prewarm --detach ||
  fail "starting the migration through host 4"
warm_on 1
crash_host 3
wait_for 60 "host 3 reported lost" bash -c \
  "ip netns exec ${HOST_NS[1]} handoff --socket $tmp/h1.sock status web1 --json | jq -e '.migration.destinations[] | select(.host == \"host3\") | .state == \"lost\" or .state == \"failed\"' >/dev/null"
hcli 1 cutover web1 --json > cut3.json || { cat cut3.json; fail "the cutover to the survivor"; }
jq -e 'select(.event == "result") | .ok and .to == "host2"' cut3.json >/dev/null ||
  { cat cut3.json; fail "web1 did not go to host 2"; }
moved 1 2
start_handoffd 3
vm_gone_from 3 web1

echo "== the proxy's disk export dies while warm: the VM stays on its source"
src=2; o=(1 3)
hcli "$src" migrate web1 --to "host${o[0]},host${o[1]}" --via host4 --prewarm --json > export.json &
mig=$!
warm_on "$src"
killed=0
for p in $(netns_pids 4); do
  [ "$(cat "/proc/$p/comm" 2>/dev/null)" = nbdkit ] || continue
  kill -9 "$p" && killed=$((killed + 1))
done
[ "$killed" = 1 ] || fail "host 4 ran $killed disk exports, not 1"
if wait "$mig"; then cat export.json; fail "the migration succeeded without the proxy's disk"; fi
jq -c 'select(.event == "result")' export.json
jq -e 'select(.event == "result") | .error | test("disk0")' export.json >/dev/null ||
  fail "the failure does not name the disk"
stayed_on "$src" "${o[@]}"
proxy_clean

echo "== the proxy's host dies while warm: the VM stays on its source"
hcli "$src" migrate web1 --to "host${o[0]},host${o[1]}" --via host4 --prewarm --json > dead.json &
mig=$!
warm_on "$src"
crash_host 4
if wait "$mig"; then cat dead.json; fail "the migration succeeded without its proxy"; fi
jq -c 'select(.event == "result")' dead.json
stayed_on "$src" "${o[@]}"
# The proxy comes back: what its relay left is stopped and removed.
start_handoffd 4
proxy_clean
grep -q "proxy: stopped the relay of migration" "$tmp/h4.log" ||
  fail "host 4 did not clear what its relay left"
echo "$0: PASS"
