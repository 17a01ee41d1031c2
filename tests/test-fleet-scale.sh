#!/usr/bin/env bash
# Fleet mode at scale (slow): three etcd members (on hosts 1-3) and five
# handoff hosts in network namespaces, no --peer anywhere; twenty small
# guests, four per host, each writing checksummed records to its disk.
#  - Ten migrations at once, each --to auto, two from each host; one
#    etcd member is killed while they run: every one succeeds (two of
#    three members are a quorum).
#  - Then 'handoff evacuate host1' (the member still down): host 1 is
#    left with no VM.
#  - A watcher reads every VM's console on every host ten times a
#    second throughout (tests/console-watch.py; test-cluster-evacuate
#    shows it catching a VM on two hosts): no VM's console grows on two
#    hosts in two sweeps in a row.
#  - At the end every guest runs on exactly one host, the one etcd
#    names its owner, booted once, with every record it wrote intact.
#  - The hosts' metrics agree: as many migrations done as sources as
#    were received as destinations.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
requires etcd --version
requires etcdctl version
requires curl --version
guest_hosts 5

ttl=6
nvm=${FLEET_VMS:-20}
owner ()
{
  on_host 1 env ETCDCTL_API=3 etcdctl --endpoints "${ETCD_EP[1]},${ETCD_EP[2]}" \
    --command-timeout 10s get --print-value-only "/handoff/vms/$1"
}
members ()
{
  hcli "$1" cluster hosts --json | jq -r '[.hosts[].name] | sort | join(",")'
}
sees_all () { [ "$(members 1)" = host1,host2,host3,host4,host5 ]; }
# where VM: the hosts that have VM defined, sorted.
where ()
{
  local i out=()
  for i in 1 2 3 4 5; do
    jq -e --arg v "$1" '.vms[] | select(.name == $v)' "lists/$i.json" \
      >/dev/null && out+=("$i")
  done
  echo "${out[*]}"
}
lists ()
{
  local i
  mkdir -p lists
  for i in 1 2 3 4 5; do hcli "$i" list --json > "lists/$i.json"; done
}

etcd_cluster 3
handoff keygen k.psk >/dev/null 2>&1
# One kernel and initrd for every guest (the hosts share the file
# system): each host's policy lets a peer name them.
mkdir -p boot
cp "$GUEST_DIR/vmlinux" "$GUEST_DIR/initrd.gz" boot/
for i in 1 2 3 4 5; do
  echo "{\"boot_dirs\": [\"$tmp/boot\"]}" > "h$i.policy"
done
for i in 1 2 3 4 5; do
  HD_NO_PEERS=1 start_handoffd "$i" --cluster "etcd://$ETCD_EPS" \
    --cluster-ttl "${ttl}s" --metrics 127.0.0.1:9469
done
wait_for 30 "host 1 to see all five members" sees_all

# Twenty guests, four per host, a 16 MiB disk each for its records
# (the kernel alone needs more than 64 MiB of RAM).
for (( n = 1; n <= nvm; n++ )); do
  h=$(( (n - 1) % 5 + 1 ))
  truncate -s 16M "vm$n.img"
  hcli "$h" define "vm$n" --memory 128 --disk "$tmp/vm$n.img" \
    --kernel "$tmp/boot/vmlinux" --initrd "$tmp/boot/initrd.gz" \
    --append "console=ttyS0 quiet panic=-1 handoff.mode=records" > /dev/null
  hcli "$h" start "vm$n" > /dev/null
  home[$n]=$h
done
for (( n = 1; n <= nvm; n++ )); do
  wait_for 300 "vm$n's records" grep -q "HANDOFF-REC 3" \
    "$tmp/h${home[$n]}/run/vm$n/serial.log"
done
echo "$nvm guests write their records, four per host"

# The watcher: every VM's console on every host, ten times a second.
console_watch_start

# Ten at once, --to auto: vm1..vm10 (two from each host); etcd member 3
# dies a moment after they start.
for (( n = 1; n <= 10; n++ )); do
  ( rc=0; hcli "${home[$n]}" migrate "vm$n" --to auto > "m$n.out" 2>&1 || rc=$?
    echo "$rc" > "m$n.rc" ) &
done
sleep 1
kill_pidfile "$tmp/etcd3.pid"
echo "etcd member 3 killed while ten migrations run"
wait_for 600 "the ten migrations" bash -c 'for n in $(seq 1 10); do [ -e m$n.rc ] || exit 1; done'
for (( n = 1; n <= 10; n++ )); do
  [ "$(cat "m$n.rc")" = 0 ] || { cat "m$n.out"; fail "vm$n's migration exited $(cat "m$n.rc")"; }
  echo "vm$n: $(grep -h '^vm\|now runs on\|^downtime' "m$n.out" | paste -sd' ')"
done

# Evacuate host 1, the member still down.
hcli 1 evacuate host1 --parallel 3 > ev.out 2>&1 || { cat ev.out; fail "evacuate host1"; }
cat ev.out
console_watch_stop

# Every guest on one host, its owner, booted once, records intact.
lists
[ "$(jq '.vms | length' lists/1.json)" = 0 ] || fail "host 1 still has $(jq -c '[.vms[].name]' lists/1.json)"
declare -A per
for (( n = 1; n <= nvm; n++ )); do
  h=$(where "vm$n")
  [[ $h =~ ^[2-5]$ ]] || fail "vm$n is defined on host(s) '$h'"
  per[$h]=$(( ${per[$h]:-0} + 1 ))
  jq -e --arg v "vm$n" '.vms[] | select(.name == $v) | .run_state == "running"' \
    "lists/$h.json" > /dev/null || fail "vm$n does not run on host $h"
  [ "$(owner "vm$n")" = "host$h" ] || fail "vm$n runs on host $h, etcd names $(owner "vm$n")"
  serial=$tmp/h$h/run/vm$n/serial.log
  [ "$(cat "$tmp"/h*/run/vm$n/serial.log "$tmp"/h*/logs/vm$n-*/serial.log 2>/dev/null |
       grep -ac HANDOFF-BOOT)" -le 1 ] || fail "vm$n booted again"
  acked=$(serial_last REC "$serial")
  last_rec=$(check_records "$(hcli "$h" status "vm$n" --json | jq -r '.def.disks[0].path')") ||
    fail "vm$n's records"
  [ "${acked:-0}" -le "$last_rec" ] || fail "vm$n's disk ends at record $last_rec, the guest wrote $acked"
done
echo "every guest on one host, its owner in etcd, records intact; per host: $(for h in 2 3 4 5; do printf 'host%s=%s ' "$h" "${per[$h]:-0}"; done)"

src=0 dst=0
for i in 1 2 3 4 5; do
  src=$(( src + $(metric "$i" 'handoff_migrations_total{role="source",outcome="done"}') ))
  dst=$(( dst + $(metric "$i" 'handoff_migrations_total{role="destination",outcome="done"}') ))
done
echo "metrics: $src migrations done as sources, $dst as destinations"
[ "$src" = "$dst" ] && [ "$src" -ge 10 ] || fail "metrics disagree: $src sources, $dst destinations"
echo "ok"
