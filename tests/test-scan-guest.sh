#!/usr/bin/env bash
# Migration-safe scans in a real guest.  Each handoffd publishes its
# host ID to the guests it starts (QEMU fw_cfg).  A guest runs 'handoff
# scan --repeat 3' around a slow scan (sleep, /proc/cpuinfo, 'handoff
# hostid') in a loop, and is live-migrated from host 1 to host 2 during
# a scan: that scan reports the crossing (host 1's ID to host 2's, the
# notify command sees both), runs again on host 2 and succeeds there
# with host 2's ID.  Host 2 records a 'migrated' event for the VM.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
requires_netns
requires_fuse
guest_build --scan
make_tmpdir
cd "$tmp"
make_hosts 2

handoff keygen k.psk >/dev/null 2>&1
# The guest's kernel is shared, outside any VM directory: host 2 lets
# VMs that come in boot from there.
echo "{\"boot_dirs\": [\"$GUEST_DIR\"]}" > h2.policy
start_handoffd 1
start_handoffd 2
id1=$(hcli 1 host --json | jq -r .host_id)
id2=$(hcli 2 host --json | jq -r .host_id)
echo "host 1: $id1"
echo "host 2: $id2"
[ ${#id1} = 64 ] && [ ${#id2} = 64 ] && [ "$id1" != "$id2" ] ||
  fail "the hosts do not publish distinct 64-character IDs"

mkdir -p hooks
cat > hooks/hook.sh <<EOF
#!/bin/sh
echo "\$HANDOFF_HOST \$HANDOFF_EVENT \$HANDOFF_EVENT_PAYLOAD" >> "$tmp/events.log"
EOF
chmod +x hooks/hook.sh
echo '{"hooks": {"*": "hook.sh"}}' > vm-policy.json
truncate -s 16M vm.img
hcli 1 define scan1 --memory 256 --disk "$tmp/vm.img" \
  --kernel "$GUEST_DIR/vmlinux" --initrd "$GUEST_DIR/initrd-scan.gz" \
  --append "console=ttyS0 quiet panic=-1 handoff.mode=scan" \
  --policy vm-policy.json
hcli 1 start scan1
serial1=$tmp/h1/run/scan1/serial.log
wait_for 120 "a first scan" grep -q "HANDOFF-SCAN-END 1 " "$serial1"
grep -a "HANDOFF-HOSTID" "$serial1"
grep -aq "HANDOFF-HOSTID $id1" "$serial1" ||
  fail "the guest does not read host 1's ID"
grep -aq "HANDOFF-SCAN-END 1 rc=0 id=$id1" "$serial1" ||
  fail "the first scan: $(grep -a SCAN-END "$serial1")"

# Migrate while a scan runs: just after one starts (it lasts 2 s).
n=$(grep -a "HANDOFF-SCAN-END" "$serial1" | tail -n 1 | awk '{print $2}')
wait_for 30 "scan $((n + 1)) to start" grep -qaE "HANDOFF-SCAN-START $((n + 1))\s" "$serial1"
hcli 1 migrate scan1 --to host2 > migrate.out || { cat migrate.out; fail "migration"; }
serial1=$(ls -d "$tmp"/h1/logs/scan1-host1-*/serial.log | tail -n 1)
serial2=$tmp/h2/run/scan1/serial.log
last1=$(grep -a "HANDOFF-SCAN-" "$serial1" | tail -n 1 | tr -d '\r')
echo "host 1's console ends with: $last1"
case $last1 in
  "HANDOFF-SCAN-START "*) k=${last1#HANDOFF-SCAN-START } ;;
  *) fail "the migration did not fall inside a scan: '$last1'" ;;
esac
wait_for 60 "scan $k to end on host 2" grep -q "HANDOFF-SCAN-END $k " "$serial2"
sleep 1
grep -a "HANDOFF-SCAN" "$serial2" | head -n 8
grep -aq "HANDOFF-SCAN-MSG handoff scan: the scan crossed a migration, from host ${id1:0:16}.*name=host1 .* to host ${id2:0:16}.*name=host2 " "$serial2" ||
  fail "scan $k did not report the crossing from host 1 to host 2"
grep -aq "HANDOFF-SCAN-MSG NOTIFY old=$id1 new=$id2" "$serial2" ||
  fail "the notify command did not get both IDs"
grep -aq "HANDOFF-SCAN-MSG handoff scan: running it again" "$serial2" ||
  fail "scan $k was not run again"
grep -aq "HANDOFF-SCAN-END $k rc=0 id=$id2" "$serial2" ||
  fail "scan $k did not succeed on host 2 with host 2's ID: $(grep -a "SCAN-END $k " "$serial2")"
wait_for 30 "the next scan" grep -q "HANDOFF-SCAN-END $((k + 1)) rc=0 id=$id2" "$serial2"

# The 'migrated' event, delivered on host 2.
wait_for 20 "the migrated event" grep -q "^host2 migrated " events.log
grep "^host2 migrated " events.log | sed 's/^[^{]*//' |
  jq -e --arg id "$id2" '.from == "host1" and .to == "host2" and .host_id == $id' >/dev/null ||
  fail "the migrated event: $(cat events.log)"
echo "$0: PASS"
