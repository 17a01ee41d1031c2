#!/usr/bin/env bash
# Migrations that must be refused, leaving everything as it was: the
# destination's policy says no (source not allowed; not enough memory);
# an unknown VM; an unknown host; RDMA asked for where there is none,
# or a destination that takes RDMA only; a source with the wrong key; a
# peer sending malformed or out-of-place messages.  Each refusal is clear
# and logged, the VM keeps running on host 1, and host 2 has no files,
# exports, processes or rows.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
guest_hosts 2
client=$build/tests/peer-client
[ -x "$client" ] || fail "$client is not built"

handoff keygen k.psk >/dev/null 2>&1
handoff keygen --identity handoff other.psk >/dev/null 2>&1
start_handoffd 1
start_handoffd 2
make_test_vm "$tmp/vm"
define_guest 1 web1 "$tmp/vm" 256 idle
hcli 1 start web1
wait_for 120 "the guest" grep -q HANDOFF-TICK "$tmp/h1/run/web1/serial.log"

host2_untouched () {
  [ -z "$(ls -A "$tmp/h2/images")" ] || fail "host 2 kept files: $(ls "$tmp/h2/images")"
  [ -z "$(ls -A "$tmp/h2/run")" ] || fail "host 2 kept a run directory"
  host_idle 2
  [ -z "$(hcli 2 list --json | jq -r '.vms[].name')" ] || fail "host 2 lists a VM"
  [ "$(sqlite3 "$tmp/h2/state.db" 'select count(*) from vms; select count(*) from objects; select count(*) from events;' | tr '\n' ' ')" = "0 0 0 " ] ||
    fail "host 2 kept rows"
}
host1_runs () {
  hcli 1 status web1 | grep -q "QEMU: running" || fail "web1 does not run on host 1"
}

echo "== sizes mean what QEMU's -m means"
for m in "1G:1024" "2048:2048" "512M:512" "1048576:1048576"; do
  hcli 1 define "size${m%%:*}" --memory "${m%%:*}" --disk "$tmp/vm.img" > /dev/null
  got=$(hcli 1 status "size${m%%:*}" --json | jq .def.memory)
  [ "$got" = "${m#*:}" ] || fail "--memory ${m%%:*} gave $got MiB, not ${m#*:}"
  hcli 1 undefine "size${m%%:*}"
done
expect_rc 1 "'512K' is not a whole number of MiB" \
  hcli 1 define sizek --memory 512K --disk "$tmp/vm.img"
expect_rc 1 "unknown size suffix" hcli 1 define sizex --memory 1X --disk "$tmp/vm.img"
expect_rc 1 "memory must be 16 MiB to 1 TiB" \
  hcli 1 define sizet --memory 2T --disk "$tmp/vm.img"
# Times: one parser, each option's bare unit as documented.
expect_rc 1 "whole seconds, 5 s to 1 day" hcli 1 migrate web1 --to host2 --timeout 2s
expect_rc 1 "whole seconds, 5 s to 1 day" hcli 1 migrate web1 --to host2 --timeout 5.5s
expect_rc 1 "1 ms to 10 min" hcli 1 migrate web1 --to host2 --max-downtime 11m
expect_rc 1 "unknown unit" hcli 1 migrate web1 --to host2 --max-downtime 3d

echo "== the source is not allowed"
echo '{"allowed_sources": ["host9"]}' > h2.policy
expect_rc 4 "not allowed" hcli 1 migrate web1 --to host2
grep -q "refused VM web1 from host1: source host 'host1' is not allowed" h2.log ||
  fail "the refusal is not logged"
host2_untouched; host1_runs

echo "== not enough memory"
echo '{"max_memory_mb": 128}' > h2.policy
expect_rc 4 "not enough memory" hcli 1 migrate web1 --to host2
host2_untouched; host1_runs
echo '{"max_vcpus": 0}' > h2.policy
expect_rc 4 "not enough CPU" hcli 1 migrate web1 --to host2
host2_untouched; host1_runs
rm h2.policy

echo "== an unknown VM, an unknown host, a bad policy file"
expect_rc 8 "no VM named 'nosuch'" hcli 1 migrate nosuch --to host2
expect_rc 8 "unknown host 'host7'" hcli 1 migrate web1 --to host7
# Refused before anything acts (request-check.c): each with its reason.
expect_rc 1 "names host2 twice" hcli 1 migrate web1 --to host2,host2
expect_rc 1 "host name 'tcp://10.0.0.9:7800' must be" \
  hcli 1 migrate web1 --to tcp://10.0.0.9:7800
expect_rc 1 "at most 4 destinations" hcli 1 migrate web1 --to a,b,c,d,e
expect_rc 1 "host name '../x' must be" hcli 1 migrate web1 --to host2 --fallback ../x
expect_rc 1 "volume mode takes one destination" \
  hcli 1 migrate web1 --to host2,host3 --mode volume
expect_rc 1 "host name 'a/b' must be" hcli 1 cutover web1 --to a/b
echo '{"allowed_sources": ' > h2.policy
expect_rc 4 "policy" hcli 1 migrate web1 --to host2
rm h2.policy
host2_untouched; host1_runs

echo "== RDMA where there is none (this machine has no RDMA device)"
grep -q "RDMA: none (no RDMA on this host" h1.log ||
  fail "host 1 did not log what its RDMA probe found"
expect_rc 1 "RDMA asked for, but host1 has none: no RDMA on this host" \
  hcli 1 migrate web1 --to host2 --transport rdma
expect_rc 1 "transport must be auto, rdma or tcp" \
  hcli 1 migrate web1 --to host2 --transport ib
expect_rc 1 "transport is for live migrations" \
  hcli 1 migrate web1 --to host2 --mode offline --transport tcp
host2_untouched; host1_runs
# A destination that takes migrations over RDMA only refuses one over
# TCP, and keeps nothing of it.
stop_handoffd 2
start_handoffd 2 --transport rdma
grep -q "and --transport rdma: this host will refuse every live migration" h2.log ||
  fail "host 2 did not warn that it will refuse every migration"
expect_rc 5 "host2 takes migrations over RDMA only" hcli 1 migrate web1 --to host2
wait_for 30 "host 2 to drop what it began" bash -c "[ -z \"\$(ls -A '$tmp/h2/run')\" ]"
host2_untouched; host1_runs
stop_handoffd 2
start_handoffd 2
expect_rc 1 "transport must be auto, rdma or tcp" handoffd --transport ib

echo "== a source with the wrong key"
stop_handoffd 1
sleep 0.5
start_handoffd 1 --psk "$tmp/other.psk"
expect_rc 7 "cannot reach host2: tcp://${HOST_IP[2]}:$HD_PORT: TLS handshake failed: .*wrong pre-shared key" \
  hcli 1 migrate web1 --to host2
grep -qi "unknown PSK identity\|handshake failed" h2.log || fail "host 2 did not log the stranger"
host2_untouched; host1_runs
stop_handoffd 1
start_handoffd 1

echo "== malformed and out-of-place peer messages"
uri=tcp://${HOST_IP[2]}:$HD_PORT
on_host 1 "$client" "$uri" other.psk '{"type":"QUERY_MIGRATION","id":"x"}' > p0.txt || true
grep -q "connect refused" p0.txt || fail "a peer with another key got in"
on_host 1 "$client" "$uri" k.psk 'raw:this is not json' | tee p1.txt
grep -q "malformed request\|<closed>" p1.txt || fail "a non-JSON frame was accepted"
on_host 1 "$client" "$uri" k.psk '{"no":"type"}' '{"type":"MIGRATION_COMPLETE"}' \
  '{"type":"START_MIGRATION","vm":"x"}' \
  '{"type":"START_MIGRATION","id":"../../etc","vm":"web1","source":"host1","needs":{"memory":1,"vcpus":1,"disk_bytes":0}}' \
  | tee p2.txt
[ "$(sed -n 1p p2.txt | jq -r .type)" = FAILED ] || fail "a message without a type"
[ "$(sed -n 2p p2.txt | jq -r .type)" = FAILED ] || fail "MIGRATION_COMPLETE outside a migration"
[ "$(sed -n 3p p2.txt | jq -r .type)" = DENIED ] || fail "an incomplete START_MIGRATION"
[ "$(sed -n 4p p2.txt | jq -r .type)" = DENIED ] || fail "a malformed migration id"
grep -q "outside a migration" h2.log || fail "not logged"
# A transport that does not exist.
on_host 1 "$client" "$uri" k.psk \
  '{"type":"START_MIGRATION","id":"evil-0","vm":"evil","source":"host1","mode":"live","needs":{"memory":64,"vcpus":1,"disk_bytes":0}}' \
  '{"type":"MANAGEMENT_STATE","def":{"name":"evil","memory":64,"vcpus":1,"disks":[]},"objects":{},"transport":"infiniband"}' | tee p6.txt
[ "$(sed -n 2p p6.txt | jq -r .type)" != SUCCESS ] || fail "an unknown transport was accepted"
sed -n 2p p6.txt | grep -q "transport must be auto, rdma or tcp" ||
  fail "the refusal of an unknown transport does not say why"
wait_for 10 "host 2 to drop evil-0" grep -q "evil-0: dropping incoming VM evil" h2.log
# A well-formed start, then a definition that escapes: refused, and
# what was begun is removed.
start='{"type":"START_MIGRATION","id":"evil-1","vm":"evil","source":"host1","mode":"live","needs":{"memory":64,"vcpus":1,"disk_bytes":0}}'
on_host 1 "$client" "$uri" k.psk "$start" \
  '{"type":"MANAGEMENT_STATE","def":{"name":"evil","memory":64,"vcpus":1,"disks":[{"path":"/tmp/../etc/shadow","size":1}]},"objects":{}}' \
  '{"type":"START_VM"}' | tee p3.txt
[ "$(sed -n 1p p3.txt | jq -r .type)" = PERMITTED ] || fail "a valid start was refused"
[ "$(sed -n 2p p3.txt | jq -r .type)" = INSTANTIATION_ERROR ] || fail "an escaping path was accepted"
sed -n 3p p3.txt | grep -q "outside a migration" ||
  fail "the migration went on after the refusal"
on_host 1 "$client" "$uri" k.psk "${start/evil-1/evil-2}" \
  '{"type":"MANAGEMENT_STATE","def":{"name":"other","memory":64,"vcpus":1,"disks":[]},"objects":{}}' | tee p4.txt
[ "$(sed -n 2p p4.txt | jq -r .type)" = INSTANTIATION_ERROR ] || fail "a definition for another VM"
# A source that walks away after its start: the destination drops it.
on_host 1 "$client" "$uri" k.psk "${start/evil-1/evil-3}" > p5.txt
wait_for 10 "host 2 to drop evil-3" grep -q "evil-3: dropping incoming VM evil" h2.log
[ "$(sqlite3 "$tmp/h2/state.db" "select result from journal where id like 'evil-%' order by id" | tr '\n' ' ')" = "aborted aborted aborted aborted " ] ||
  fail "the journal does not show the aborted attempts"
host2_untouched; host1_runs

echo "== and a good migration still works afterwards"
hcli 1 migrate web1 --to host2 > good.txt || { cat good.txt; fail "migration"; }
hcli 2 status web1 | grep -q "QEMU: running" || fail "web1 does not run on host 2"
# Which transport carried RAM, in the progress and both journals.
grep -q "memory .*moving RAM over TCP" good.txt || fail "the progress does not say RAM went over TCP"
sqlite3 "$tmp/h1/state.db" "select note from steps where phase = 'memory'" |
  grep -q "moving RAM over TCP" || fail "host 1's journal does not say RAM went over TCP"
sqlite3 "$tmp/h2/state.db" "select note from steps where phase = 'prepared'" |
  grep -q "RAM over TCP" || fail "host 2's journal does not say RAM came over TCP"
echo "$0: PASS"
