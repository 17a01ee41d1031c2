#!/usr/bin/env bash
# The admin channel: 'handoffd --admin tcp://ADDR:PORT' takes CLI
# requests over TLS with the pre-shared key; 'handoff --host URI --psk
# FILE' from another host lists its VMs; a wrong key is refused and
# changes nothing; without --admin nothing listens.
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

rc=0
on_host 2 handoff --host "$admin" --psk "$tmp/wrong.psk" undefine remote1 2> e || rc=$?
cat e
[ "$rc" = 7 ] || fail "a wrong key: exit $rc, expected 7"
hcli 1 list | grep -q '^remote1 ' || fail "the refused request changed something"
grep -q "unknown PSK identity\|TLS" h1.log || fail "the refusal was not logged"

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
