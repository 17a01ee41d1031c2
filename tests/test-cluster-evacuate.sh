#!/usr/bin/env bash
# Fleet mode: 'handoff evacuate' on a real etcd (three members, one on
# each of three network-namespace hosts, handoffd on all three with
# --cluster and no --peer).
#  - Bad input changes nothing: an evacuation asked of another host's
#    handoffd, a --parallel out of range, a bad host name.
#  - Host 1 runs web1 (writing checked records), web2 and web3, and
#    has web4 (stopped) and web5 (stopped, more memory than any host
#    has) defined.  'evacuate host1 --parallel 2': the three running
#    VMs move live and web4 offline, spread over hosts 2 and 3 by
#    placement; web5 cannot be placed and stays on host 1, defined as
#    it was; the exit status says so (5).
#  - A watcher polls every host's QEMUs throughout: no VM ever runs on
#    two hosts (running, not paused, in two sweeps in a row: one sweep
#    reads the hosts one after the other, so a cutover between two
#    reads can show a VM on both once).
#  - Afterwards each VM runs (or, web4, is defined) on exactly one
#    host, the cluster names that host its owner, web1's records are
#    intact, and host 1 keeps nothing of them.
#  - Host 1 drains: its entry says so, placement from host 2 passes it
#    over, and a migration to it is refused; 'undrain' ends that and
#    web4 can come back.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/handoffd.sh"
requires etcd --version
requires etcdctl version
requires sqlite3 --version
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
# watch_vms: one line per sweep in watch.log, the time and each
# VM@HOST whose QEMU is running (not paused), until killed.
watch_vms ()
{
  local i line v
  while :; do
    line=$(date +%s.%N)
    for i in 1 2 3; do
      for v in $(hcli "$i" list --json 2>/dev/null |
                   jq -r '.vms[] | select(.run_state == "running") | .name'); do
        line+=" $v@host$i"
      done
    done
    echo "$line" >> watch.log
    sleep 0.2
  done
}

etcd_cluster 3
handoff keygen k.psk >/dev/null 2>&1
for i in 1 2 3; do
  HD_NO_PEERS=1 start_handoffd "$i" --cluster "etcd://$ETCD_EPS" \
    --cluster-ttl "${ttl}s"
done
wait_for 20 "host 1 to see all three members" sees 1 host1,host2,host3

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
expect_rc 1 "this is host host2, not host1" hcli 2 evacuate host1
expect_rc 1 "parallel" hcli 1 evacuate host1 --parallel 9
expect_rc 1 "must be" hcli 1 evacuate 'host/1'
hcli 1 cluster hosts --json |
  jq -e '[.hosts[] | select(.draining)] | length == 0' >/dev/null ||
  fail "a refused evacuation left a host draining"
[ "$(where web1)" = host1 ] || fail "a refused evacuation moved web1"

watch_vms &
echo $! > watch.pid
cleanup_fn kill_pidfile "$tmp/watch.pid"
wait_for 20 "the watcher's first sweep" grep -q "web1@host1" watch.log

rc=0
hcli 1 evacuate host1 --parallel 2 > ev.out 2>&1 || rc=$?
cat ev.out
[ "$rc" = 5 ] || fail "evacuate exited $rc; web5 cannot move, so 5 was expected"
grep -q "^web5 did not move: .*MiB free for web5" ev.out ||
  fail "evacuate does not say why web5 stayed"
kill_pidfile "$tmp/watch.pid"
echo "watcher: $(wc -l < watch.log) sweeps"

# Two VMs at once, never more: each "->" came while fewer than two ran.
awk '/ -> /{n++; if (n - done > 2) bad = 1} / runs on | is on | did not move/{done++}
     END {exit bad}' ev.out || fail "more than two migrations ran at once"

# No VM ever ran on two hosts.
awk '{ delete seen; twice = ""
       for (f = 2; f <= NF; f++) { split($f, p, "@"); if (p[1] in seen) twice = twice " " p[1]; seen[p[1]] = 1 }
       if (twice != "" && prev != "") { n = split(twice, t, " "); for (k = 1; k <= n; k++) if (index(prev, " " t[k] " ")) { print "sweep at " $1 ":" twice; bad = 1 } }
       prev = " " twice " " }
     END { exit bad }' watch.log || fail "a VM ran on two hosts at once (watch.log)"

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
top=$(check_records "$(hcli "$h" status web1 --json | jq -r '.def.disks[0].path')") ||
  fail "web1's records"
[ "${acked:-0}" -le "$top" ] || fail "web1's disk ends at record $top, the guest wrote $acked"
echo "web1: records intact up to $top on host $h"

# Host 1 drains: placement from host 2 passes it over; it refuses VMs.
hcli 1 cluster hosts
hcli 2 cluster hosts --json |
  jq -e '.hosts[] | select(.name == "host1") | .draining == true' >/dev/null ||
  fail "host 1's entry does not say it drains"
o=$(( 5 - ${at[web4]#host} ))     # the other of hosts 2 and 3
expect_rc 8 "none draining" hcli "${at[web2]#host}" migrate web2 --to auto:2
vm_runs_on "${at[web2]#host}" web2
expect_rc 4 "drains" hcli "${at[web4]#host}" migrate web4 --offline --to host1
[ "$(where web4)" = "${at[web4]}" ] || fail "a refused migration moved web4"
expect_rc 1 "this is host host1, not host$o" hcli 1 undrain host$o
hcli 1 undrain host1
hcli 2 cluster hosts --json |
  jq -e '.hosts[] | select(.name == "host1") | .draining == false' >/dev/null ||
  fail "host 1 still drains after undrain"
hcli "${at[web4]#host}" migrate web4 --offline --to host1 ||
  fail "web4 back to host 1 after undrain"
[ "$(where web4)" = host1 ] || fail "web4 is on '$(where web4)' after its move back"
[ "$(owner web4)" = host1 ] || fail "web4's owner is '$(owner web4)' after its move back"
echo "ok"
