# Helpers for tests that run handoffd on network-namespace hosts.
# Source after functions.sh.
#
#   guest_hosts N               what a test of guests on hosts needs
#                               first: network namespaces, FUSE, the test
#                               guest, $tmp (the current directory from
#                               then on) and N hosts (make_hosts)
#   start_handoffd I [ARGS...]  host I's daemon: state $tmp/hI, CLI socket
#                               $tmp/hI.sock, peers on port 7800 of every
#                               host (named host1, host2, ...), the test
#                               PSK $tmp/k.psk, policy $tmp/hI.policy if it
#                               exists, event hooks in $tmp/hooks; log
#                               $tmp/hI.log; with HD_NO_WAIT=1 it does
#                               not wait for the CLI socket, with
#                               HD_NO_PEERS=1 it names no --peer
#   stop_handoffd I             SIGTERM (VMs keep running)
#   crash_handoffd I            SIGKILL
#   hcli I ARGS...              "handoff ARGS" against host I's daemon
#   host_pids I                 pids of the processes handoffd recorded on I
#                               (run/*/*.pid): what cleanup kills
#   check_records IMAGE         highest intact guest record on IMAGE
#   make_test_vm DIR            a VM directory (the test guest's kernel and
#                               initrd, a config file) and DIR.img, a 64 MiB
#                               disk with random data past the first MiB
#   ns_strays I                 processes in host I's namespace other than
#                               its handoffd
#   host_idle I                 nothing but handoffd runs in host I's
#                               namespace (waits 20 s for helpers leaving)
#   vm_gone_from I NAME         host I holds nothing of NAME: no files, no
#                               run directory, no processes, no rows, no
#                               open migration (waits 30 s for the files)
#   vm_runs_on I NAME           NAME's QEMU runs on host I
#   journals_closed             no migration open in either host's journal
#   vm_qemu_on I NAME           a QEMU named NAME is alive in host I's
#                               namespace (whatever handoffd knows of it)
#   host_cut I                  host I's traffic dropped (nft in its
#                               namespace; loopback spared): a partition
#   host_heal I                 the partition lifted
#   wait_log I N PAT            wait (60 s) for PAT in host I's log past
#                               its first N lines; returns as soon as it
#                               is written (a cut lands within ms of it)
#   ram_intact_on I NAME        NAME's guest (handoff.ram=MIB) checked its
#                               whole RAM pattern twice on host I and
#                               never found it changed, on any host
#   expect_rc RC TEXT CMD...    CMD exits RC and says TEXT (a regex)
#   etcd_cluster N              etcd members on hosts 1..N (ETCD_EPS);
#                               etcd_member I starts member I again
#   define_guest I NAME DIR MIB MODE [ARGS...]
#                               defines NAME on host I: the test guest of
#                               DIR (make_test_vm) with MIB of memory, the
#                               guest program in MODE (records, idle, ...)

HD_PORT=7800

start_handoffd ()
{
  local i=$1
  shift
  local peers=() j
  # HD_NO_PEERS=1: no --peer (fleet mode learns its peers from etcd).
  for (( j=1; j<=${#HOST_NS[@]}; j++ )); do
    [ "$j" = "$i" ] || [ -n "${HD_NO_PEERS:-}" ] ||
      peers+=(--peer "host$j=tcp://${HOST_IP[$j]}:$HD_PORT")
  done
  [ -f "$tmp/k.psk" ] || handoff keygen "$tmp/k.psk" >/dev/null 2>&1
  mkdir -p "$tmp/hooks"
  local env=()
  [ -n "${SANITIZE:-}" ] && env=(env "HANDOFF_NBDKIT_PRELOAD=${NBDKIT_ENV[1]#LD_PRELOAD=}")
  on_host "$i" "${env[@]}" handoffd --name "host$i" --state-dir "$tmp/h$i" \
    --listen "tcp://${HOST_IP[$i]}:$HD_PORT" --control "$tmp/h$i.sock" \
    --psk "$tmp/k.psk" --policy "$tmp/h$i.policy" --hook-dir "$tmp/hooks" \
    "${peers[@]}" \
    --io-timeout "${HD_IO_TIMEOUT:-15s}" -v "$@" >> "$tmp/h$i.log" 2>&1 &
  echo $! > "$tmp/h$i.pid"
  if [ -z "${HD_CLEANUP_SET[$i]:-}" ]; then
    cleanup_fn cleanup_host_vms "$i"
    cleanup_fn kill_pidfile "$tmp/h$i.pid"
    HD_CLEANUP_SET[$i]=1
  fi
  # HD_NO_WAIT=1: a daemon meant to die (a test hook) before it listens.
  [ -n "${HD_NO_WAIT:-}" ] ||
    wait_for 30 "handoffd on host $i" test -S "$tmp/h$i.sock"
}
declare -A HD_CLEANUP_SET

stop_handoffd ()
{
  local pid
  pid=$(pgrep -P "$(cat "$tmp/h$1.pid")" | head -n 1)
  kill_pidfile "$tmp/h$1.pid"
  [ -z "$pid" ] ||
    wait_for 20 "handoffd $1 to stop" bash -c "! kill -0 $pid 2>/dev/null"
  rm -f "$tmp/h$1.sock"
}

crash_handoffd ()
{
  local pid
  pid=$(pgrep -P "$(cat "$tmp/h$1.pid")" | head -n 1)
  crash_pidfile "$tmp/h$1.pid"
  [ -n "$pid" ] &&
    wait_for 10 "handoffd $1 to die" bash -c "! kill -0 $pid 2>/dev/null"
  rm -f "$tmp/h$1.sock"
}

hcli ()
{
  local i=$1
  shift
  on_host "$i" handoff --socket "$tmp/h$i.sock" "$@"
}

host_pids ()
{
  local f pid
  for f in "$tmp/h$1"/run/*/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null) || continue
    kill -0 "$pid" 2>/dev/null && echo "$pid"
  done
  return 0
}

cleanup_host_vms ()
{
  local i=$1 pid m
  for pid in $(host_pids "$i"); do kill -KILL "$pid" 2>/dev/null || true; done
  for m in "$tmp/h$i"/run/*/dir; do
    [ -d "$m" ] && unmount_fuse_on "$i" "$m" 2>/dev/null
  done
  return 0
}

guest_hosts ()
{
  requires_netns
  requires_fuse
  guest_build
  make_tmpdir
  cd "$tmp" || fail "cannot enter $tmp"
  make_hosts "$1"
}

define_guest ()
{
  local i=$1 name=$2 dir=$3 mib=$4 mode=$5
  shift 5
  hcli "$i" define "$name" --memory "$mib" --disk "$dir.img" --dir "$dir" \
    --kernel "$dir/vmlinux" --initrd "$dir/initrd.gz" \
    --append "console=ttyS0 quiet panic=-1 handoff.mode=$mode" "$@"
}

make_test_vm ()
{
  local dir=$1
  mkdir -p "$dir"
  cp "$GUEST_DIR/vmlinux" "$GUEST_DIR/initrd.gz" "$dir/"
  echo "name=web1" > "$dir/config"
  truncate -s 64M "$dir.img"
  dd if=/dev/urandom of="$dir.img" bs=1M seek=1 count=63 conv=notrunc \
     status=none
}

# check_records IMAGE: the guest's records (mode "records") on a disk
# image, each checked against its checksum and sequence number; prints
# the highest valid one, fails (non-zero, with the record) on a corrupt
# one.
check_records ()
{
  python3 - "$1" <<'PY'
import hashlib, sys
data = open(sys.argv[1], 'rb').read(16 << 20)
top = 0
for n in range(1, 32768):
    rec = data[n * 512:(n + 1) * 512].decode('latin1').rstrip('\n ')
    if not rec.startswith('REC '):
        break
    body, _, s = rec[4:].rpartition(' sum=')
    if hashlib.md5(body.encode()).hexdigest() != s or not body.startswith('seq=%d ' % n):
        sys.exit('record %d is corrupt: %r' % (n, rec[:80]))
    top = n
print(top)
PY
}

# clear_records IMAGE TOP: zero records 1..TOP of a stopped guest's
# disk.  A new boot writes its records from 1 again, over the last
# boot's: left in place, the old boot's higher records would make every
# later check_records pass whatever the new boot lost.
clear_records ()
{
  dd if=/dev/zero of="$1" bs=512 seek=1 count="$2" conv=notrunc status=none
}

# boots LOG: how many times the guest booted into the console log LOG.
boots ()
{
  local n
  n=$(grep -ac HANDOFF-BOOT "$1" 2>/dev/null)
  echo "${n:-0}"
}

# wait_reboot LOG BOOTS N: wait until a boot after the BOOTS counted
# before has printed record N (records of older boots do not count).
wait_reboot ()
{
  wait_for 120 "the guest to boot again and write record $3" bash -c \
    "[ \$(grep -ac HANDOFF-BOOT '$1') -gt $2 ] && [ \$(serial_last REC '$1') -ge $3 ]"
}

# netns_pids I: every process in host I's network namespace.
netns_pids ()
{
  ip netns pids "${HOST_NS[$1]}" 2>/dev/null || true
}

# crash_host I [PID...]: host I loses power: its handoffd and every
# process in its namespace die at once (SIGKILL) - except PID... and
# their children (a test's own clients).  Its disk stays as it was; a
# FUSE share's mount is left dead behind its killed process.
crash_host ()
{
  local i=$1 keep=" " p pids
  local -a todo=("${@:2}")
  # Terminates: each pass takes one pid off the list; a process tree is
  # finite.
  while [ ${#todo[@]} -gt 0 ]; do
    p=${todo[0]}
    todo=("${todo[@]:1}" $(pgrep -P "$p" 2>/dev/null || true))
    keep+="$p "
  done
  [ -s "$tmp/h$i.pid" ] && crash_pidfile "$tmp/h$i.pid"
  pids=$(netns_pids "$i")
  for p in $pids; do
    [[ "$keep" == *" $p "* ]] || kill -KILL "$p" 2>/dev/null || true
  done
  for p in $pids; do
    [[ "$keep" == *" $p "* ]] && continue
    wait_for 10 "process $p to die" bash -c \
      "! kill -0 $p 2>/dev/null || grep -q '^State:.*Z' /proc/$p/status"
  done
  rm -f "$tmp/h$i.sock"
}

ns_strays ()
{
  local p comm
  for p in $(netns_pids "$1"); do
    comm=$(cat "/proc/$p/comm" 2>/dev/null) || continue
    # etcd: a member a fleet test runs on the host, not handoff's.
    case $comm in handoffd|ip|etcd) ;; *) echo "$p:$comm" ;; esac
  done
}

host_idle ()
{
  local n
  # Terminates: 100 rounds.  Helpers that are on their way out get 20 s.
  for (( n = 0; n < 100; n++ )); do
    [ -z "$(ns_strays "$1")" ] && return 0
    sleep 0.2
  done
  fail "host $1 kept processes: $(ns_strays "$1")"
}

# disks_on_files I VM: VM's QEMU on host I reaches its disk on its own
# file driver (QEMU's query-named-block-nodes, through 'status
# --json'): disk0 over a file, no NBD node, no nbdkit for it.
disks_on_files ()
{
  local nodes
  nodes=$(hcli "$1" status "$2" --json | jq -c '.block_nodes')
  jq -e 'any(.[]; .node == "disk0" and (.file | startswith("/")))' \
    <<<"$nodes" >/dev/null || fail "$2's disk on host $1 is not on its file: $nodes"
  jq -e 'any(.[]; .driver == "nbd") | not' <<<"$nodes" >/dev/null ||
    fail "$2 on host $1 has an NBD node with no migration: $nodes"
  wait_for 10 "no nbdkit for $2's disk on host $1" bash -c \
    "! pgrep -f -- '$tmp/h$1/run/$2/disk0[.]sock' >/dev/null"
}

# disks_on_mirror I VM: VM's disk on host I goes through the mirror: an
# NBD node under disk0.
disks_on_mirror ()
{
  local nodes
  nodes=$(hcli "$1" status "$2" --json | jq -c '.block_nodes')
  jq -e 'any(.[]; .node == "nbd0" and .driver == "nbd") and
         any(.[]; .node == "disk0" and (.file | startswith("nbd")))' \
    <<<"$nodes" >/dev/null || fail "$2's disk on host $1 is not on the mirror: $nodes"
}

# disks_tls_aes I VM: the nbdkit of VM's disk 0 on host I carries the
# GnuTLS configuration handoffd wrote to keep its TLS on AES-GCM (with
# a pre-shared key GnuTLS would pick ChaCha20, several times slower
# here: ctl/daemon/nbd-tls.c), and that configuration does settle a
# real nbdkit and libnbd on AES-GCM.  A CPU without AES instructions,
# or an administrator's own GnuTLS configuration, gets no file.
disks_tls_aes ()
{
  local i=$1 vm=$2 conf=$tmp/h$1/gnutls-nbd.conf pid cipher
  if ! grep -qw aes /proc/cpuinfo || ! grep -qw pclmulqdq /proc/cpuinfo ||
     [ -e /etc/gnutls/config ] || [ -n "${GNUTLS_SYSTEM_PRIORITY_FILE:-}" ]; then
    [ ! -e "$conf" ] || fail "host $i wrote $conf over GnuTLS's own choice"
    echo "disks' TLS: GnuTLS's own choice here (no AES instructions, or a configuration of the host's)"
    return 0
  fi
  grep -qx 'tls-disabled-cipher = CHACHA20-POLY1305' "$conf" ||
    fail "host $i: $conf does not disable ChaCha20"
  pid=$(cat "$tmp/h$i/run/$vm/disk0.pid")
  tr '\0' '\n' < "/proc/$pid/environ" | grep -qx "GNUTLS_SYSTEM_PRIORITY_FILE=$conf" ||
    fail "$vm's nbdkit on host $i was not given $conf"
  for how in with without; do
    local env=()
    [ "$how" = without ] || env=(env "GNUTLS_SYSTEM_PRIORITY_FILE=$conf")
    truncate -s 1M "$tmp/tls-$how.img"
    "${env[@]}" nbdkit -U "$tmp/tls-$how.sock" -P "$tmp/tls-$how.pid" \
      --tls=require --tls-psk="$tmp/k.psk" file "$tmp/tls-$how.img"
    cleanup_fn kill_pidfile "$tmp/tls-$how.pid"
    wait_for_socket "$tmp/tls-$how.sock" 30
    cipher=$(nbd_tls_cipher \
      "nbds+unix://handoff@/?socket=$tmp/tls-$how.sock&tls-psk-file=$tmp/k.psk" \
      "${env[@]:1}")
    kill_pidfile "$tmp/tls-$how.pid"
    echo "disks' TLS $how handoffd's configuration: ${cipher:-none}"
    [ "$how" = without ] || [[ "$cipher" == AES-*-GCM ]] ||
      fail "with $conf nbdkit and libnbd settle on '${cipher:-nothing}', not AES-GCM"
  done
}

vm_gone_from ()
{
  local i=$1 vm=$2
  wait_for 30 "host $i to drop $vm" bash -c "[ ! -e '$tmp/h$i/images/$vm' ]"
  [ ! -e "$tmp/h$i/run/$vm" ] || fail "host $i kept $vm's run directory"
  host_idle "$i"
  [ "$(sqlite3 "$tmp/h$i/state.db" "select count(*) from vms where name = '$vm'; select count(*) from objects where vm = '$vm'")" = "0
0" ] || fail "host $i kept $vm's rows"
  [ "$(sqlite3 "$tmp/h$i/state.db" "select count(*) from journal where vm = '$vm' and result is null")" = 0 ] ||
    fail "host $i has a migration of $vm still open"
}

ram_intact_on ()
{
  local i=$1 vm=$2
  # Two whole rounds: the second began after the VM came here.
  wait_for 180 "two full checks of $vm's RAM on host $i" bash -c \
    "[ \$(grep -ac 'HANDOFF-RAM ok' '$tmp/h$i/run/$vm/serial.log') -ge 2 ]"
  # Every console the guest had, here and on the hosts it left.
  if grep -a "HANDOFF-RAM BAD" "$tmp"/h*/run/"$vm"/serial.log \
       "$tmp"/h*/logs/"$vm"-*/serial.log 2>/dev/null; then
    fail "$vm's RAM changed under it"
  fi
  echo "$vm's RAM pattern checked whole on host $i:" \
    "$(grep -ac 'HANDOFF-RAM ok' "$tmp/h$i/run/$vm/serial.log") rounds, none bad"
}

# vm_owner VM N: the one host of 1..N that lists VM (a host whose
# daemon is down lists nothing); fails, showing every list, unless
# exactly one does.
vm_owner ()
{
  local vm=$1 i n=0 who=
  for (( i=1; i<=$2; i++ )); do
    if hcli "$i" list --json 2>/dev/null | jq -r '.vms[]?.name' | grep -qx "$vm"; then
      n=$((n + 1)); who=$i
    fi
  done
  [ "$n" = 1 ] || {
    for (( i=1; i<=$2; i++ )); do hcli "$i" list >&2 || true; done
    fail "$vm is listed on $n hosts"
  }
  echo "$who"
}

vm_runs_on ()
{
  hcli "$1" status "$2" | grep -q "QEMU: running" ||
    fail "$2 does not run on host $1"
}

journals_closed ()
{
  local i
  for i in 1 2; do
    [ "$(sqlite3 "$tmp/h$i/state.db" "select count(*) from journal where result is null")" = 0 ] ||
      return 1
  done
}

vm_qemu_on ()
{
  local p
  for p in $(netns_pids "$1"); do
    tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null |
      grep -q "^qemu-system.* -name $2 " && return 0
  done
  return 1
}

host_cut ()
{
  on_host "$1" nft -f - <<'EOF'
table inet handoff_cut {
  chain in { type filter hook input priority 0; iifname != "lo" drop; }
  chain out { type filter hook output priority 0; oifname != "lo" drop; }
}
EOF
}

host_heal ()
{
  on_host "$1" nft delete table inet handoff_cut 2>/dev/null || true
}

# notes_writer HOST VM INTERVAL_S: append "note N" lines to the VM's
# directory through host HOST's share, one every INTERVAL_S; notes.acked
# holds the last one the write returned for.  Ends when the directory
# refuses writes (it left the host); killed at cleanup.
notes_writer ()
{
  on_host "$1" bash -c "
    i=0
    while [ \$i -lt 100000 ]; do
      i=\$((i + 1))
      echo \"note \$i\" >> '$tmp/h$1/run/$2/dir/notes.log' || exit 0
      # Renamed into place: a reader never sees the file empty.
      echo \$i > '$tmp/notes.acked.new'
      mv '$tmp/notes.acked.new' '$tmp/notes.acked'
      sleep $3
    done" &
  echo $! > "$tmp/writer.pid"
  cleanup_fn kill_pidfile "$tmp/writer.pid"
}

wait_log ()
{
  python3 - "$tmp/h$1.log" "$2" "$3" <<'PY' || fail "host $1 did not log '$3'"
import sys, time
path, skip, pat = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
end = time.time() + 60
with open(path, "rb") as f:
    for _ in range(skip):
        f.readline()
    buf = b""
    while time.time() < end:
        chunk = f.readline()
        if not chunk:
            time.sleep(0.002)
            continue
        buf += chunk
        if chunk.endswith(b"\n"):
            if pat in buf:
                sys.exit(0)
            buf = b""
sys.exit(1)
PY
}

expect_rc ()
{
  local want=$1 text=$2 rc=0
  shift 2
  "$@" > out.txt 2>&1 || rc=$?
  cat out.txt
  [ "$rc" = "$want" ] || fail "'$*' exited $rc, expected $want"
  grep -qi -- "$text" out.txt || fail "'$*' does not say '$text'"
}

# etcd_cluster N: an etcd member on each of hosts 1..N (client port 2379,
# peer port 2380 on each host's address), data in $tmp/etcdI, killed at
# cleanup; waits until they answer.  ETCD_EP[I] is member I's
# HOST:PORT, ETCD_EPS all of them comma-separated.  etcd_member I
# starts member I again (its data kept).
declare -a ETCD_EP=()
ETCD_EPS=
ETCD_INITIAL=
etcd_cluster ()
{
  local n=$1 i members=()
  for (( i=1; i<=n; i++ )); do
    members+=("e$i=http://${HOST_IP[$i]}:2380")
    ETCD_EP[$i]=${HOST_IP[$i]}:2379
  done
  ETCD_INITIAL=$(IFS=,; echo "${members[*]}")
  ETCD_EPS=$(IFS=,; echo "${ETCD_EP[*]}")
  for (( i=1; i<=n; i++ )); do etcd_member "$i"; done
  wait_for 60 "etcd's $n members" on_host 1 env ETCDCTL_API=3 etcdctl \
    --endpoints "$ETCD_EPS" endpoint health
}
etcd_member ()
{
  local i=$1
  on_host "$i" etcd --name "e$i" --data-dir "$tmp/etcd$i" \
    --listen-client-urls "http://${HOST_IP[$i]}:2379" \
    --advertise-client-urls "http://${HOST_IP[$i]}:2379" \
    --listen-peer-urls "http://${HOST_IP[$i]}:2380" \
    --initial-advertise-peer-urls "http://${HOST_IP[$i]}:2380" \
    --initial-cluster "$ETCD_INITIAL" --initial-cluster-state new \
    --initial-cluster-token "hoff$$" > "$tmp/etcd$i.log" 2>&1 &
  echo $! > "$tmp/etcd$i.pid"
  cleanup_fn kill_pidfile "$tmp/etcd$i.pid"
}

# scrape I: host I's metrics (handoffd --metrics 127.0.0.1:9469).
# metric I SERIES: one series' value there.
scrape () { on_host "$1" curl -sf "http://127.0.0.1:9469/metrics"; }
metric () { scrape "$1" | awk -v k="$2" '$1 == k {print $2}'; }

# fenced_in_time I VM J EPS: waits up to three TTLs ($ttl) for host I
# to pause VM for the fence, and fails if etcd, asked from host J at
# EPS, drops host I's entry first: the pause must land while the lease
# still lives.
fenced_in_time ()
{
  local i=$1 vm=$2 j=$3 eps=$4 seen= n entry
  for (( n = 0; n < ttl * 30; n++ )); do
    grep -q "$vm paused (fenced)" "$tmp/h$i.log" && seen=1
    entry=$(on_host "$j" env ETCDCTL_API=3 etcdctl --endpoints "$eps" \
              --command-timeout 5s get --print-value-only "/handoff/hosts/host$i") ||
      fail "etcd does not answer host $j"
    [ -n "$entry" ] || fail "etcd ended host $i's lease before $vm was fenced:" \
      "$(grep -E 'cluster: .*(lease|fenced)' "$tmp/h$i.log" | tail -4)"
    [ -n "$seen" ] && return 0
    sleep 0.1
  done
  fail "host $i did not fence $vm within $((ttl * 3)) s"
}

# console_watch_start: tests/console-watch.py over every host's VM
# consoles, ten sweeps a second, ahead of the guests for the CPU (a
# starved watcher sees little).  console_watch_stop: stop it; fail if
# it saw a VM run on two hosts at once.
console_watch_start ()
{
  nice -n -15 python3 "$top/tests/console-watch.py" "$tmp" 0.1 \
    > "$tmp/watch.out" 2>&1 &
  CONSOLE_WATCH_PID=$!
  echo "$CONSOLE_WATCH_PID" > "$tmp/watch.pid"
  cleanup_fn kill_pidfile "$tmp/watch.pid"
}
console_watch_stop ()
{
  local rc=0
  kill -TERM "$CONSOLE_WATCH_PID"
  wait "$CONSOLE_WATCH_PID" || rc=$?
  cat "$tmp/watch.out"
  [ "$rc" = 0 ] || fail "a VM ran on two hosts at once"
  grep -q "no VM ran on two hosts" "$tmp/watch.out" ||
    fail "the console watcher did not finish"
}
