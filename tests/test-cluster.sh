#!/usr/bin/env bash
# Fleet mode on a real etcd: three etcd members, one on each of three
# network-namespace hosts; handoffd on hosts 1 and 2 with --cluster and
# no --peer at all.
#  - Fencing: host 1 cut off (nft) pauses web1 before its lease could
#    end, and resumes it when it heals.
#  - Membership: each host lists both; a daemon that stops leaves the
#    list at once, one that dies leaves it when its lease expires.
#  - Peers come from the cluster: web1 migrates host 1 -> host 2 with
#    no --peer, records intact, and its owner key moves to host2.
#  - Ownership: a VM owned by another host does not start here; a host
#    that does not own a VM cannot migrate it; undefining a VM another
#    host owns leaves the owner alone.
#  - Placement: --to auto picks the other member; auto:2 does not fit.
#  - One etcd member killed: the migration back still works (quorum).
#    Two killed: a migration fails cleanly before anything moved, the
#    owner is unchanged, the VM runs nowhere else, and runs on where it
#    was once the quorum is back (fenced meanwhile: a host cannot tell
#    a lost quorum from its own partition).
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
requires etcd --version
requires etcdctl version
guest_hosts 3

ttl=4
# etcdctl I ARGS...: from host I, to every member.
ectl ()
{
  local i=$1
  shift
  on_host "$i" env ETCDCTL_API=3 etcdctl --endpoints "$ETCD_EPS" \
    --command-timeout 10s "$@"
}
owner ()
{
  ectl 1 get --print-value-only "/handoff/vms/$1"
}
members_seen ()
{
  hcli "$1" cluster hosts --json | jq -r '[.hosts[].name] | sort | join(",")'
}
# records_past I VM N: VM's guest on host I wrote a record past N.
records_past ()
{
  [ "$(serial_last REC "$tmp/h$1/run/$2/serial.log")" -gt "$3" ]
}
# running_on I VM: VM's QEMU runs (not paused) on host I.
running_on ()
{
  hcli "$1" status "$2" | grep -q "QEMU: running"
}
# lease_live I: host I's own lease is live (not fenced).
lease_live ()
{
  [ "$(hcli "$1" cluster hosts --json | jq -r .lease)" = live ]
}
# sees I LIST: host I's member list is LIST (sorted, commas).
sees ()
{
  [ "$(members_seen "$1")" = "$2" ]
}

etcd_cluster 3

handoff keygen k.psk >/dev/null 2>&1
for i in 1 2; do
  HD_NO_PEERS=1 start_handoffd "$i" --cluster "etcd://$ETCD_EPS" \
    --cluster-ttl "${ttl}s"
done

# Membership: both hosts, each with its peer address and capacity.
wait_for 15 "host 1 to see both members" sees 1 host1,host2
hcli 1 cluster hosts
hcli 1 cluster hosts --json |
  jq -e --arg u "tcp://${HOST_IP[2]}:$HD_PORT" \
     '.hosts[] | select(.name == "host2") | .uri == $u and .vcpus > 0 and .memory_free_mib > 0' \
     >/dev/null || fail "host2's entry lacks its address or capacity"
[ "$(members_seen 2)" = host1,host2 ] || fail "host 2 sees $(members_seen 2)"
lease_live 1 || fail "host 1's lease is not live"

# A VM starts where nobody else owns it, and is its host's from then.
make_test_vm "$tmp/vm1"
define_guest 1 web1 "$tmp/vm1" 128 records
hcli 1 start web1
[ "$(owner web1)" = host1 ] || fail "web1's owner is '$(owner web1)', not host1"
wait_for 120 "web1's records" grep -q "HANDOFF-REC 3" "$tmp/h1/run/web1/serial.log"

# Fencing: host 1 cut off from etcd and from its peers cannot refresh
# its lease; web1 is paused before the lease could end, and runs on
# when the partition heals (the cluster still names host 1 its owner).
#
# The pause must land while etcd still holds host 1's lease: once etcd
# ends it, the cluster may count host 1 gone.  So at every poll until
# the pause shows in host 1's log, and once more after it shows, host
# 1's entry (under that lease) must still be in etcd, as host 3's
# member answers.  The time from the cut is only printed: the lease's
# bound runs from the last refresh that got through before the cut.
cut_at=$(date +%s%N)
host_cut 1
fenced_in_time 1 web1 3 "${ETCD_EP[3]}"
echo "web1 fenced $(( ($(date +%s%N) - cut_at) / 1000000 )) ms after the cut" \
  "(lease TTL ${ttl} s), host 1 still in etcd; host 1 says:"
grep -E "lease was not refreshed|paused \(fenced\)" "$tmp/h1.log" | tail -2
hcli 1 status web1 | grep -q "QEMU: paused" || fail "web1 is not paused on host 1"
expect_rc 7 "lease is not live" hcli 1 migrate web1 --to host2
before=$(serial_last REC "$tmp/h1/run/web1/serial.log")
host_heal 1
wait_for 30 "host 1 to lift the fence" grep -q "web1 resumed: the fence is lifted" "$tmp/h1.log"
wait_for 30 "web1's records after the fence" records_past 1 web1 $((before + 1))
[ "$(owner web1)" = host1 ] || fail "web1's owner is '$(owner web1)' after the fence"

# The same VM on host 2 (its definition and a copy of its disk, as a
# shared disk would be): host 2 does not start it, and forgetting it
# there leaves host 1 its owner.
wait_for 30 "host 2's lease to be live" lease_live 2
cp "$tmp/vm1.img" "$tmp/vm1-copy.img"
hcli 2 define web1 --memory 128 --disk "$tmp/vm1-copy.img" \
  --kernel "$tmp/vm1/vmlinux" --initrd "$tmp/vm1/initrd.gz" \
  --append "console=ttyS0 quiet panic=-1 handoff.mode=idle"
expect_rc 1 "host host1 owns web1" hcli 2 start web1
vm_qemu_on 2 web1 && fail "host 2 started web1, which host 1 owns"
hcli 2 undefine web1
[ "$(owner web1)" = host1 ] || fail "undefining web1 on host 2 changed its owner"

# Peers from the cluster: no --peer names host2.
hcli 1 migrate web1 --to host2 > m1.out 2>&1 || { cat m1.out; fail "web1 to host 2"; }
grep '^downtime' m1.out
vm_runs_on 2 web1 || fail "web1 does not run on host 2"
[ "$(owner web1)" = host2 ] || fail "after the migration web1's owner is '$(owner web1)'"
grep -q "cluster: web1 now belongs to host2" "$tmp/h1.log" ||
  fail "host 1's log does not show the ownership's move"

# A host that does not own a VM does not move it.
ectl 1 put /handoff/vms/web1 host9 >/dev/null
expect_rc 7 "host host9 owns web1" hcli 2 migrate web1 --to host1
vm_runs_on 2 web1 || fail "a refused migration stopped web1"
[ "$(owner web1)" = host9 ] || fail "a refused migration changed the owner"
ectl 1 put /handoff/vms/web1 host2 >/dev/null

# Placement: auto:2 with one other member does not fit; a bad N is
# refused.  One etcd member gone: two of three are a quorum; web1 comes
# back, to the host placement picks (the only other member).
expect_rc 8 "1 live member besides this host" hcli 2 migrate web1 --to auto:2
expect_rc 1 "auto:N takes N from 1 to" hcli 2 migrate web1 --to auto:0
kill_pidfile "$tmp/etcd3.pid"
hcli 2 migrate web1 --to auto > m2.out 2>&1 || { cat m2.out; fail "web1 back with one etcd member down"; }
grep -q "to auto placed it on host1" "$tmp/h2.log" || fail "placement did not pick host1"
vm_runs_on 1 web1 || fail "web1 does not run on host 1"
[ "$(owner web1)" = host1 ] || fail "web1's owner is '$(owner web1)', not host1"
serial=$tmp/h1/run/web1/serial.log
acked=$(serial_last REC "$serial")
last_rec=$(check_records "$(hcli 1 status web1 --json | jq -r '.def.disks[0].path')") ||
  fail "web1's records"
[ "${acked:-0}" -le "$last_rec" ] || fail "web1's disk ends at record $last_rec, the guest wrote $acked"
echo "web1: records intact up to $last_rec"

# A daemon that stops leaves at once; one that dies, when its lease ends.
stop_handoffd 2
[ "$(members_seen 1)" = host1 ] || fail "host 2 stopped, host 1 sees $(members_seen 1)"
HD_NO_PEERS=1 start_handoffd 2 --cluster "etcd://$ETCD_EPS" --cluster-ttl "${ttl}s"
wait_for 15 "host 2 back" sees 1 host1,host2
crash_handoffd 2
[ "$(members_seen 1)" = host1,host2 ] || fail "host 2's entry went before its lease ended"
wait_for $((ttl * 3)) "host 2's lease to end" sees 1 host1
HD_NO_PEERS=1 start_handoffd 2 --cluster "etcd://$ETCD_EPS" --cluster-ttl "${ttl}s"

# Two members gone: no quorum, so no ownership can change: the
# migration fails before anything moved.  Host 1 cannot refresh its
# lease either, and cannot tell this from its own partition: web1 is
# fenced, and runs on as soon as the quorum is back.
kill_pidfile "$tmp/etcd2.pid"
expect_rc 7 "cannot ask the cluster who owns web1\\|lease is not live" \
  hcli 1 migrate web1 --to host2
vm_qemu_on 1 web1 || fail "web1's QEMU is gone from host 1"
vm_qemu_on 2 web1 && fail "web1 started on host 2 without a quorum"
lifted=$(grep -c "web1 resumed: the fence is lifted" "$tmp/h1.log")
etcd_member 2
wait_for 60 "etcd's quorum back" \
  on_host 1 env ETCDCTL_API=3 etcdctl endpoint health \
  --endpoints "${ETCD_EP[1]},${ETCD_EP[2]}"
wait_for 30 "web1 running on host 1" running_on 1 web1
[ "$(owner web1)" = host1 ] || fail "web1's owner is '$(owner web1)' after the quorum came back"
echo "web1 fenced during the outage: $(( $(grep -c "web1 resumed: the fence is lifted" "$tmp/h1.log") - lifted )) time(s), running again"
echo "ok"
