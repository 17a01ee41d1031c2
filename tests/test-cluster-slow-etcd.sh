#!/usr/bin/env bash
# Fleet mode on an etcd that answers late: three etcd members on three
# network-namespace hosts; handoffd on host 1 reaches each through
# tests/slow-member.py, a relay that holds its requests.  A loaded
# cluster answers in seconds, not milliseconds; the host must keep its
# lease as long as etcd answers within it, and fence only when it
# does not.
#  - Every member answers 1.5 s late, for four TTLs (6 s): host 1 never
#    fences, web1 runs and writes throughout; 'handoff cluster hosts'
#    answers; the metrics show the refreshes' time.
#  - Member 1 never answers, members 2 and 3 answer 1.5 s late: the
#    same.
#  - etcd's leader is killed: while the other two elect another, the
#    same.
#  - No member answers: web1 is paused before etcd could end host 1's
#    lease (its entry is still in etcd when the pause shows), and runs
#    on once the members answer again; the metrics count one fence.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
requires etcd --version
requires etcdctl version
requires curl --version
guest_hosts 3

ttl=6
# slow I WHAT: member I's relay holds requests for WHAT (ms, or hang).
slow () { echo "$2" > "$tmp/slow$1"; }
records_past ()
{
  [ "$(serial_last REC "$tmp/h1/run/web1/serial.log")" -gt "$1" ]
}
fences () { grep -c "lease was not refreshed in time" "$tmp/h1.log" || true; }
refresh_failures () { grep -c "cannot refresh this host's lease" "$tmp/h1.log" || true; }
# steady WHAT SECONDS: for SECONDS host 1 does not fence, and web1
# runs and writes records.
steady ()
{
  local what=$1 secs=$2 before end warned
  before=$(serial_last REC "$tmp/h1/run/web1/serial.log")
  warned=$(refresh_failures)
  end=$(( $(date +%s) + secs ))
  while [ "$(date +%s)" -lt "$end" ]; do
    [ "$(fences)" = 0 ] || fail "$what: host 1 fenced its VMs:" \
      "$(grep -E 'cluster: ' "$tmp/h1.log" | tail -6)"
    sleep 0.5
  done
  hcli 1 status web1 | grep -q "QEMU: running" || fail "$what: web1 is not running"
  records_past "$before" || fail "$what: web1 wrote no record in $secs s"
  echo "$what: $secs s, host 1 not fenced," \
    "$(( $(refresh_failures) - warned ))" \
    "refresh(es) failed, web1 wrote records $before..$(serial_last REC "$tmp/h1/run/web1/serial.log")"
}

etcd_cluster 3
eps=()
for i in 1 2 3; do
  slow "$i" 0
  on_host 1 python3 "$top/tests/slow-member.py" "$((23790 + i))" \
    "${ETCD_EP[$i]}" "$tmp/slow$i" > "$tmp/slow$i.log" 2>&1 &
  echo $! > "$tmp/slow$i.pid"
  cleanup_fn kill_pidfile "$tmp/slow$i.pid"
  eps+=("127.0.0.1:$((23790 + i))")
done
for i in 1 2 3; do
  wait_for 10 "relay $i" on_host 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$((23790 + i))"
done

handoff keygen k.psk >/dev/null 2>&1
HD_NO_PEERS=1 start_handoffd 1 --cluster "etcd://$(IFS=,; echo "${eps[*]}")" \
  --cluster-ttl "${ttl}s" --metrics 127.0.0.1:9469
wait_for 15 "host 1's lease" bash -c \
  "[ \"\$(handoff --socket '$tmp/h1.sock' cluster hosts --json | jq -r .lease)\" = live ]"

make_test_vm "$tmp/vm1"
define_guest 1 web1 "$tmp/vm1" 128 records
hcli 1 start web1
wait_for 120 "web1's records" grep -q "HANDOFF-REC 3" "$tmp/h1/run/web1/serial.log"

for i in 1 2 3; do slow "$i" 1500; done
steady "every member 1.5 s late" $(( ttl * 4 ))

# The operator still sees the cluster, host 1's entry kept current.
hcli 1 cluster hosts --json > hosts.json ||
  fail "'handoff cluster hosts' fails while etcd answers late: $(cat hosts.json)"
jq -e '.lease == "live" and ([.hosts[] | select(.name == "host1" and .memory_free_mib > 0)] | length == 1)' \
  hosts.json > /dev/null || fail "host 1's entry is missing or empty: $(cat hosts.json)"
echo "'handoff cluster hosts' while every member is 1.5 s late: $(jq -c '[.lease, [.hosts[].name]]' hosts.json)"

# The metrics show it: refreshes answered, in more than a second.
under1=$(metric 1 'handoff_cluster_lease_refresh_seconds_bucket{le="1"}')
answered=$(metric 1 handoff_cluster_lease_refresh_seconds_count)
[ "$(( answered - under1 ))" -ge "$ttl" ] ||
  fail "the metrics show $(( answered - under1 )) refresh(es) over 1 s of $answered"
echo "metrics: $answered refreshes answered, $(( answered - under1 )) of them in over 1 s"

slow 1 hang
steady "member 1 silent, members 2 and 3 1.5 s late" $(( ttl * 3 ))

# The leader dies: the other two elect a new one, and refreshes wait
# for it rather than fail on members without a leader.
for i in 1 2 3; do slow "$i" 0; done
leader_ep=$(on_host 1 env ETCDCTL_API=3 etcdctl --endpoints "$ETCD_EPS" \
              endpoint status -w json |
            jq -r '.[] | select(.Status.header.member_id == .Status.leader) | .Endpoint')
leader=
for i in 1 2 3; do
  if [ "${ETCD_EP[$i]}" = "$leader_ep" ]; then leader=$i; fi
done
[ -n "$leader" ] || fail "no etcd member says it leads"
kill_pidfile "$tmp/etcd$leader.pid"
steady "etcd's leader (member $leader) killed" $(( ttl * 3 ))
grep -h "elected leader" "$tmp"/etcd[123].log | tail -1 || true

# Nobody answers: the fence falls while etcd (asked directly, from
# host 2) still holds host 1's entry under its lease.
for i in 1 2 3; do slow "$i" hang; done
fenced_in_time 1 web1 2 "$ETCD_EPS"
hcli 1 status web1 | grep -q "QEMU: paused" || fail "web1 is not paused on host 1"
echo "no member answers: web1 fenced, host 1's entry still in etcd; host 1 says:"
grep -E "lease was not refreshed|paused \(fenced\)" "$tmp/h1.log" | tail -2
before=$(serial_last REC "$tmp/h1/run/web1/serial.log")
for i in 1 2 3; do slow "$i" 0; done
wait_for 30 "host 1 to lift the fence" grep -q "web1 resumed: the fence is lifted" "$tmp/h1.log"
wait_for 30 "web1's records after the fence" records_past $((before + 1))
[ "$(metric 1 handoff_cluster_fences_total)" = 1 ] ||
  fail "handoff_cluster_fences_total is $(metric 1 handoff_cluster_fences_total), not 1"
[ "$(metric 1 handoff_cluster_lease_refresh_failures_total)" -ge 1 ] ||
  fail "no failed refresh in the metrics"
echo "metrics: 1 fence, $(metric 1 handoff_cluster_lease_refresh_failures_total) refresh(es) unanswered"
echo "ok"
