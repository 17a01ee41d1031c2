#!/usr/bin/env bash
# Fleet mode: 'handoff evacuate' on a real etcd (three members, one on
# each of three network-namespace hosts, handoffd on all three with
# --cluster and no --peer).
#  - Bad input changes nothing: an evacuation of a host whose admin
#    address the cluster does not know (host 3 has no --admin), asked
#    of another host's handoffd; a --parallel out of range; a bad host
#    name.
#  - Asked of host 2's handoffd, 'evacuate host1' is sent on to host
#    1's admin address (its --admin, from its cluster entry); so is
#    'undrain host1' asked of host 3.
#  - Host 1 runs web1 (writing checked records), web2 and web3, and
#    has web4 (stopped) and web5 (stopped, more memory than any host
#    has) defined.  'evacuate host1 --parallel 2': the three running
#    VMs move live and web4 offline, spread over hosts 2 and 3 by
#    placement; web5 cannot be placed and stays on host 1, defined as
#    it was; the exit status says so (5).
#  - A watcher reads every VM's console on every host ten times a
#    second throughout (tests/console-watch.py): no VM's console grows
#    on two hosts in two sweeps in a row (a cutover can make both grow
#    in one).  First it is shown to catch a VM whose console grows on
#    two hosts at once.
#  - Afterwards each VM runs (or, web4, is defined) on exactly one
#    host, the cluster names that host its owner, web1's records are
#    intact, and host 1 keeps nothing of them.
#  - Host 1 drains: its entry says so, placement from host 2 passes it
#    over, and a migration to it is refused; 'undrain' ends that and
#    web4 can come back.
#  - --copies 3: web4, running again on host 1, is copied to hosts 2
#    and 3 at once (the two with room), runs on one of them alone, and
#    the other keeps nothing of it.  Then again without copies, with
#    a bandwidth cap, its CLI killed (SIGTERM) once web4's move
#    started: the evacuation goes on in the daemon and web4 moves all
#    the same.
#  - Metrics (--metrics on each host's loopback): a valid Prometheus
#    exposition (other paths 404, other methods than GET and HEAD 405); during the evacuation host 1 shows each migration's
#    phase; after it, 4 migrations done as source on host 1 and 4 as
#    destination on hosts 2 and 3, 3 downtimes observed, bytes carried,
#    the lease live and the drain on, then off after undrain.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
requires etcd --version
requires etcdctl version
requires sqlite3 --version
requires curl --version
# The Debian package's module, whatever python3 comes first in PATH.
requires /usr/bin/python3 -c "import prometheus_client"
guest_hosts 3

ttl=4
owner ()
{
  on_host 1 env ETCDCTL_API=3 etcdctl --endpoints "$ETCD_EPS" \
    --command-timeout 10s get --print-value-only "/handoff/vms/$1"
}
members_seen ()
{
  hcli "$1" cluster hosts --json | jq -r '[.hosts[].name] | sort | join(",")'
}
sees () { [ "$(members_seen "$1")" = "$2" ]; }
# where VM: the hosts whose handoffd has VM defined, sorted.
where ()
{
  local i out=()
  for i in 1 2 3; do
    hcli "$i" list --json | jq -e --arg v "$1" '.vms[] | select(.name == $v)' \
      >/dev/null && out+=("host$i")
  done
  echo "${out[*]}"
}

etcd_cluster 3
handoff keygen k.psk >/dev/null 2>&1
# Hosts 1 and 2 take CLI requests from elsewhere (--admin), and the
# cluster knows where; host 3 does not.
for i in 1 2 3; do
  admin=()
  [ "$i" = 3 ] || admin=(--admin "tcp://${HOST_IP[$i]}:7901")
  HD_NO_PEERS=1 start_handoffd "$i" --cluster "etcd://$ETCD_EPS" \
    --cluster-ttl "${ttl}s" --metrics 127.0.0.1:9469 "${admin[@]}"
done
wait_for 20 "host 1 to see all three members" sees 1 host1,host2,host3
scrape 1 | /usr/bin/python3 -c '
import sys
from prometheus_client.parser import text_string_to_metric_families as parse
families = list(parse(sys.stdin.read()))
print("host 1 serves %d metric families" % len(families))' ||
  fail "host 1's metrics are not a valid Prometheus exposition"
[ "$(metric 1 handoff_cluster_lease_live)" = 1 ] || fail "metrics: host 1's lease is not live"
# Only /metrics is served, and only to GET and HEAD.
http_code () { on_host 1 curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(http_code http://127.0.0.1:9469/other)" = 404 ] || fail "metrics: another path is not 404"
[ "$(http_code -X POST http://127.0.0.1:9469/metrics)" = 405 ] || fail "metrics: POST is not 405"
[ "$(http_code -I http://127.0.0.1:9469/metrics)" = 200 ] || fail "metrics: HEAD is not 200"

for n in 1 2 3 4; do make_test_vm "$tmp/vm$n"; done
define_guest 1 web1 "$tmp/vm1" 128 records
define_guest 1 web2 "$tmp/vm2" 128 idle
define_guest 1 web3 "$tmp/vm3" 128 idle
define_guest 1 web4 "$tmp/vm4" 128 idle
truncate -s 16M "$tmp/vm5.img"
hcli 1 define web5 --memory 1000000 --disk "$tmp/vm5.img" \
  --kernel "$tmp/vm1/vmlinux" --initrd "$tmp/vm1/initrd.gz"
for v in web1 web2 web3; do hcli 1 start "$v"; done
for v in web1 web2 web3; do
  wait_for 180 "$v to boot" grep -q HANDOFF-BOOT "$tmp/h1/run/$v/serial.log"
done
wait_for 120 "web1's records" grep -q "HANDOFF-REC 3" "$tmp/h1/run/web1/serial.log"

# Bad input: refused before anything drains or moves.
expect_rc 1 "knows no admin address of host3" hcli 1 evacuate host3
expect_rc 1 "parallel" hcli 1 evacuate host1 --parallel 9
expect_rc 1 "must be" hcli 1 evacuate 'host/1'
hcli 1 cluster hosts --json |
  jq -e '[.hosts[] | select(.draining)] | length == 0' >/dev/null ||
  fail "a refused evacuation left a host draining"
[ "$(where web1)" = host1 ] || fail "a refused evacuation moved web1"

# The watcher catches a VM whose console grows on two hosts at once.
mkdir -p fake/h8/run/ghost fake/h9/run/ghost
python3 "$top/tests/console-watch.py" "$tmp/fake" 0.1 > fake.out 2>&1 &
fake_pid=$!
for (( k = 0; k < 10; k++ )); do
  echo tick >> fake/h8/run/ghost/serial.log
  echo tick >> fake/h9/run/ghost/serial.log
  sleep 0.1
done
kill -TERM "$fake_pid"
if wait "$fake_pid"; then
  cat fake.out
  fail "the watcher did not see a VM on two hosts"
fi
grep -q "ran on two hosts: ghost on hosts 8,9" fake.out || { cat fake.out; fail "the watcher's report"; }

# The watcher: every VM's console on every host, ten times a second.
console_watch_start
# Host 1's migration phases from its metrics, while they run.
( while :; do scrape 1 | grep '^handoff_migration_phase{' >> phases.log || true; sleep 0.2; done ) &
echo $! > phases.pid
cleanup_fn kill_pidfile "$tmp/phases.pid"

# Asked of host 2's handoffd, the CLI is sent on to host 1's.
rc=0
hcli 2 --psk "$tmp/k.psk" evacuate host1 --parallel 2 > ev.out 2>&1 || rc=$?
cat ev.out
grep -q "^handoff: this is host host2, not host1: host1's handoffd takes 'evacuate' at tcp://${HOST_IP[1]}:7901; asking it there" ev.out ||
  fail "host 2 did not send the CLI on to host 1's admin address"
[ "$rc" = 5 ] || fail "evacuate exited $rc; web5 cannot move, so 5 was expected"
grep -q "^web5 did not move: .*MiB free for web5" ev.out ||
  fail "evacuate does not say why web5 stayed"
kill_pidfile "$tmp/phases.pid"
console_watch_stop

# What the metrics say of it.
grep -q 'handoff_migration_phase{vm="web1",phase="[a-z_]*"' phases.log ||
  fail "host 1's metrics never showed web1's migration phase"
echo "metrics: phases seen on host 1: $(sed 's/.*phase="\([a-z_]*\)".*/\1/' phases.log | sort -u | paste -sd' ')"
[ "$(metric 1 'handoff_migrations_total{role="source",outcome="done"}')" = 4 ] ||
  fail "metrics: host 1 counts $(metric 1 'handoff_migrations_total{role="source",outcome="done"}') migrations done, not 4"
dest=$(( $(metric 2 'handoff_migrations_total{role="destination",outcome="done"}') +
         $(metric 3 'handoff_migrations_total{role="destination",outcome="done"}') ))
[ "$dest" = 4 ] || fail "metrics: hosts 2 and 3 count $dest migrations received, not 4"
[ "$(metric 1 handoff_migration_downtime_seconds_count)" = 3 ] ||
  fail "metrics: $(metric 1 handoff_migration_downtime_seconds_count) downtimes, not 3"
for st in disk ram; do
  b=$(metric 1 "handoff_migration_bytes_total{stream=\"$st\"}")
  [ "${b%.*}" -gt 0 ] || fail "metrics: no $st bytes counted"
done
[ "$(metric 1 handoff_cluster_draining)" = 1 ] || fail "metrics: host 1 does not drain"
scrape 1 | grep -E '^handoff_migration_(downtime_seconds_sum|bytes_total)'

# Two VMs at once, never more: each "->" came while fewer than two ran.
awk '/ -> /{n++; if (n - done > 2) bad = 1} / runs on | is on /{done++}
     END {exit bad}' ev.out || fail "more than two migrations ran at once"

# Where each VM went: one host each, its owner, both hosts used.
declare -A at
for v in web1 web2 web3 web4; do
  at[$v]=$(where "$v")
  case ${at[$v]} in
    host2|host3) ;;
    *) fail "$v is on '${at[$v]}' after the evacuation" ;;
  esac
  [ "$(owner "$v")" = "${at[$v]}" ] ||
    fail "$v is on ${at[$v]} but the cluster says $(owner "$v") owns it"
  echo "$v: on ${at[$v]}, its owner in the cluster"
done
for v in web1 web2 web3; do
  vm_runs_on "${at[$v]#host}" "$v"
done
hcli "${at[web4]#host}" status web4 --json | jq -e '.state == "stopped"' >/dev/null ||
  fail "web4 is not stopped on ${at[web4]}"
[ "$(printf '%s\n' "${at[@]}" | sort -u | wc -l)" = 2 ] ||
  fail "placement put every VM on one host: ${at[*]}"
[ "$(where web5)" = host1 ] || fail "web5 is on '$(where web5)', not host 1"
for v in web1 web2 web3 web4; do
  vm_gone_from 1 "$v"
done
h=${at[web1]#host}
acked=$(serial_last REC "$tmp/h$h/run/web1/serial.log")
last=$(check_records "$(hcli "$h" status web1 --json | jq -r '.def.disks[0].path')") ||
  fail "web1's records"
[ "${acked:-0}" -le "$last" ] || fail "web1's disk ends at record $last, the guest wrote $acked"
echo "web1: records intact up to $last on host $h"

# Host 1 drains: placement from host 2 passes it over; it refuses VMs.
hcli 1 cluster hosts
hcli 2 cluster hosts --json |
  jq -e '.hosts[] | select(.name == "host1") | .draining == true' >/dev/null ||
  fail "host 1's entry does not say it drains"
expect_rc 8 "none draining" hcli "${at[web2]#host}" migrate web2 --to auto:2
vm_runs_on "${at[web2]#host}" web2
expect_rc 4 "drains" hcli "${at[web4]#host}" migrate web4 --offline --to host1
[ "$(where web4)" = "${at[web4]}" ] || fail "a refused migration moved web4"
expect_rc 1 "knows no admin address of host3" hcli 1 undrain host3
hcli 3 --psk "$tmp/k.psk" undrain host1 2> undrain.err || fail "undrain host1 from host 3"
grep -q "asking it there" undrain.err || fail "host 3's CLI was not sent on to host 1"
[ "$(metric 1 handoff_cluster_draining)" = 0 ] || fail "metrics: host 1 drains after undrain"
hcli 2 cluster hosts --json |
  jq -e '.hosts[] | select(.name == "host1") | .draining == false' >/dev/null ||
  fail "host 1 still drains after undrain"
hcli "${at[web4]#host}" migrate web4 --offline --to host1 ||
  fail "web4 back to host 1 after undrain"
[ "$(where web4)" = host1 ] || fail "web4 is on '$(where web4)' after its move back"
[ "$(owner web4)" = host1 ] || fail "web4's owner is '$(owner web4)' after its move back"

# --copies: web4, running, is copied to every host with room at once
# (hosts 2 and 3: three copies were asked, two hosts can take it); the
# first ready runs it, the other drops its copy.  Bad --copies first.
expect_rc 1 "copies" hcli 1 evacuate host1 --copies 5
expect_rc 1 "copies" hcli 1 evacuate host1 --copies 0
hcli 1 undefine web5
hcli 1 start web4
wait_for 180 "web4 to boot" grep -q HANDOFF-BOOT "$tmp/h1/run/web4/serial.log"
console_watch_start
hcli 1 evacuate host1 --copies 3 > ev2.out 2>&1 ||
  { cat ev2.out; fail "evacuate --copies 3 failed"; }
console_watch_stop
cat ev2.out
grep -q "up to 3 copies of each running one" ev2.out ||
  fail "evacuate does not say how many copies"
grep -Eq "^web4 -> host(2,host3|3,host2) \(live\)" ev2.out ||
  fail "web4 was not copied to both hosts 2 and 3"
w=$(where web4)
case $w in
  host2|host3) ;;
  *) fail "web4 is on '$w' after the evacuation with copies" ;;
esac
grep -q "^web4 runs on $w " ev2.out || fail "evacuate does not name $w as web4's"
vm_runs_on "${w#host}" web4
[ "$(owner web4)" = "$w" ] || fail "web4 runs on $w but its owner is '$(owner web4)'"
vm_gone_from 1 web4
loser=$(( 5 - ${w#host} ))
[ ! -e "$tmp/h$loser/run/web4" ] && [ ! -e "$tmp/h$loser/images/web4" ] ||
  fail "host $loser kept its copy of web4"
[ "$(sqlite3 "$tmp/h$loser/state.db" "select count(*) from vms where name = 'web4'")" = 0 ] ||
  fail "host $loser kept web4's row"
echo "web4: copied to hosts 2 and 3, runs on $w alone"

# The evacuation is the daemon's: a CLI killed once it started
# leaves it going, and host 1 is emptied all the same.
hcli 1 undrain host1
hcli "${w#host}" migrate web4 --to host1 > /dev/null
vm_runs_on 1 web4
# Capped at 8 MiB/s, web4's move takes seconds: time to interrupt it.
hcli 1 evacuate host1 --bandwidth 8M > ev3.out 2>&1 &
ev_pid=$!
wait_for 30 "the evacuation to start web4's move" grep -q "^web4 -> " ev3.out
# The CLI itself (the job is a subshell around it).  SIGTERM: a
# background job of a script ignores SIGINT.
pkill -TERM -f "handoff --socket $tmp/h1.sock evacuate host1 --bandwidth" ||
  fail "no evacuate CLI to interrupt"
wait "$ev_pid" || true
! grep -q "^web4 runs on" ev3.out || fail "the CLI was not killed before web4 moved"
wait_for 120 "web4 to leave host 1 without its CLI" \
  bash -c "[ ! -e '$tmp/h1/run/web4' ]"
w=$(where web4)
case $w in
  host2|host3) vm_runs_on "${w#host}" web4 ;;
  *) fail "web4 is on '$w' after the evacuation its CLI left" ;;
esac
[ "$(owner web4)" = "$w" ] || fail "web4 runs on $w but its owner is '$(owner web4)'"
grep -q "evacuate: 1 VM moved off host1, 0 not" "$tmp/h1.log" ||
  fail "host 1's log does not end the evacuation"
echo "web4: moved to $w by an evacuation whose CLI was killed"
echo "ok"
