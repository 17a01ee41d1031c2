# handoff: helpers for shell tests.  Source it first:
#
#   source "$(dirname "$0")/functions.sh"
#
# A test exits 0 to pass, 77 to skip (after printing why), anything
# else to fail.  Everything a test creates is registered with
# cleanup_fn and undone from the EXIT trap, last registered first,
# whether the test passes or fails.

set -e

# The source tree, read-only: a test that reused the name for a value
# of its own would run the wrong helpers from then on.  (Sourced twice,
# the second time finds it set.)
if ! readonly -p | grep -q '^declare -r top='; then
  top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  readonly top
fi
O=${O:-build}
case $O in /*) build=$O ;; *) build=$top/$O ;; esac
export HANDOFF_BIN=$build/bin
export HANDOFF_LIBEXECDIR=$build/libexec
export HANDOFF_FILTER=$build/filters/nbdkit-handoff-mirror-filter.so
export PATH=$HANDOFF_BIN:$HANDOFF_LIBEXECDIR:$PATH
export LC_ALL=C

# Under SANITIZE=1 our programs carry ASan; nbdkit does not, so it
# needs the runtime preloaded before it can dlopen our filter.
if [ "${SANITIZE:-}" = 1 ]; then
  export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  NBDKIT_ENV=(env "LD_PRELOAD=$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
              ASAN_OPTIONS=detect_leaks=0:abort_on_error=1)
else
  NBDKIT_ENV=()
fi

# ---------------------------------------------------------------------
# Cleanup hooks.

_cleanup_hooks=()

# cleanup_fn CMD [ARGS...]: run CMD at exit (reverse order of
# registration).  Failures in hooks are reported, never fatal.
cleanup_fn ()
{
  local q
  printf -v q '%q ' "$@"
  _cleanup_hooks+=("$q")
}

_run_cleanup ()
{
  local rc=$? i
  set +e
  for (( i=${#_cleanup_hooks[@]}-1; i>=0; i-- )); do
    eval "${_cleanup_hooks[$i]}" || echo "$0: cleanup failed: ${_cleanup_hooks[$i]}" >&2
  done
  _cleanup_hooks=()
  exit $rc
}
trap _run_cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------
# Prerequisites.

skip ()
{
  echo "$0: SKIP: $*"
  exit 77
}

fail ()
{
  echo "$0: FAIL: $*" >&2
  exit 1
}

# requires CMD [ARGS...]: skip the test unless CMD runs successfully.
requires ()
{
  ( "$@" ) </dev/null >/dev/null 2>&1 || {
    echo "$0: '$*' failed with error code $?"
    skip "test prerequisite is missing or not working: $*"
  }
}

requires_root ()
{
  [ "$(id -u)" -eq 0 ] || skip "needs root"
}

requires_fuse ()
{
  [ -c /dev/fuse ] || skip "no /dev/fuse"
  requires fusermount3 --version
}

requires_netns ()
{
  requires_root
  requires ip netns list
  local t=handoff-probe-$$
  ip netns add "$t" 2>/dev/null || skip "cannot create network namespaces"
  ip netns del "$t"
}

# ---------------------------------------------------------------------
# Temporary files.

# Sets $tmp to a fresh directory removed at exit (kept, and named, when
# KEEP_TMP=1, for debugging).
make_tmpdir ()
{
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/handoff-test.XXXXXX")
  if [ "${KEEP_TMP:-}" = 1 ]; then
    echo "$0: keeping $tmp"
  else
    cleanup_fn rm -rf "$tmp"
  fi
}

# ---------------------------------------------------------------------
# Waiting.

# wait_for TIMEOUT_S DESCRIPTION CMD...: poll CMD every 0.1 s; fail the
# test on timeout (poll_for returns 1 instead).
poll_for ()
{
  local timeout=$1 i
  shift 2
  for (( i=0; i < timeout*10; i++ )); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

wait_for ()
{
  poll_for "$@" || fail "timed out after ${1}s waiting for $2"
}

wait_for_file ()
{
  wait_for "${2:-30}" "file $1" test -e "$1"
}

# wait_for_port PORT [SECONDS]: until something here listens on TCP PORT.
wait_for_port ()
{
  wait_for "${2:-30}" "a listener on port $1" \
    bash -c "ss -Hltn 'sport = :$1' | grep -q ."
}

wait_for_socket ()
{
  wait_for "${2:-30}" "socket $1" test -S "$1"
}

# free_port: a TCP port on 127.0.0.1 nothing listens on (now).
free_port ()
{
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# kill_quiet PID...: terminate processes that may already be gone.
kill_quiet ()
{
  kill "$@" 2>/dev/null || true
}

# unmount_fuse DIR: lazily unmount a FUSE mount here, if it is still
# there.
unmount_fuse ()
{
  if awk -v d="$1" '$2 == d { f = 1 } END { exit !f }' /proc/self/mounts; then
    fusermount3 -u -z "$1"
  fi
}

# unmount_fuse_on I DIR: lazily unmount a FUSE mount on host I, if it
# is still there (a killed daemon's mount may already be gone).
unmount_fuse_on ()
{
  if on_host "$1" awk -v d="$2" '$2 == d { f = 1 } END { exit !f }' \
       /proc/self/mounts; then
    on_host "$1" fusermount3 -u -z "$2"
  fi
}

# crash_pidfile FILE: SIGKILL the job in FILE and its children (a
# crash, not a shutdown).
crash_pidfile ()
{
  local pid pids p i
  pid=$(cat "$1")
  pids="$(pgrep -P "$pid" 2>/dev/null || true) $pid"
  for p in $pids; do
    kill -KILL "$p" 2>/dev/null || true
  done
  # SIGKILL is delivered asynchronously: wait until every one is gone (or
  # a zombie) so that what the test does next meets a dead process, not a
  # dying one.
  for i in $(seq 100); do
    for p in $pids; do
      [ -e "/proc/$p" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$p/stat" \
        2>/dev/null && break
      p=
    done
    [ -z "$p" ] && return 0
    sleep 0.05
  done
}

# kill_pidfile FILE: terminate the process named in FILE, then make
# sure it is gone.  Its children go first: "on_host I CMD &" leaves the
# shell of the background job in FILE, and CMD is its child.
kill_pidfile ()
{
  local pid i
  [ -s "$1" ] || return 0
  pid=$(cat "$1")
  # Its children first, and time for them to go while it is alive to
  # reap them: a child orphaned by killing PID at once would wait as a
  # zombie for init to reap it (here up to two seconds), and 'kill -0'
  # finds a zombie.  A wrapper (a subshell running a daemon) then ends
  # by itself.
  if pkill -TERM -P "$pid" 2>/dev/null; then
    for (( i=0; i<100; i++ )); do
      pgrep -P "$pid" > /dev/null || break
      sleep 0.05
    done
  fi
  kill "$pid" 2>/dev/null || return 0
  for (( i=0; i<50; i++ )); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------------
# Servers.

# start_nbdkit SOCKET [NBDKIT-ARGS...]: serve on a unix socket, wait
# until it is ready, stop it at exit.  The pid file is SOCKET.pid.
start_nbdkit ()
{
  local sock=$1
  shift
  rm -f "$sock" "$sock.pid"
  # --exit-with-parent keeps nbdkit in the foreground: run it as a job.
  "${NBDKIT_ENV[@]}" nbdkit --exit-with-parent -P "$sock.pid" -U "$sock" "$@" &
  wait_for_file "$sock.pid" 30
  wait_for_socket "$sock" 30
  cleanup_fn rm -f "$sock"
  cleanup_fn kill_pidfile "$sock.pid"
}

# start_daemon PIDFILE LOG CMD...: run CMD in the background, record
# its pid, stop it at exit.
start_daemon ()
{
  local pidfile=$1 log=$2
  shift 2
  "$@" >"$log" 2>&1 &
  echo $! >"$pidfile"
  cleanup_fn kill_pidfile "$pidfile"
}

# ---------------------------------------------------------------------
# Hosts: network namespaces joined by veth pairs to one bridge, each
# with its own mount namespace.
#
#   make_hosts N        creates hosts 1..N; host i has the address
#                       ${HOST_IP[i]} on its eth0, and a hub namespace
#                       holds the bridge.  Removed at exit.
#   on_host I CMD...    runs CMD inside host I's network and mount
#                       namespaces (mounts made there stay there)
#   host_link I down|up cuts or restores host I's link (a partition)
#   host_rate I RATE    limits host I's egress (tc tbf), e.g. 100mbit
#   host_inrate I RATE  limits host I's ingress; "off" lifts it

HOST_NS=()
HOST_IP=()
HOST_MNT=()
HOST_PREFIX=
HOST_NSDIR=/run/handoff-test-ns

make_hosts ()
{
  local n=$1 i hub subnet
  requires_netns
  HOST_PREFIX=hoff$$-
  hub=${HOST_PREFIX}hub
  # A /24 per test process so concurrent tests do not collide.
  subnet=10.$(( 200 + $$ % 50 )).$(( ($$ / 50) % 250 ))
  ip netns add "$hub"
  cleanup_fn remove_hosts
  ip -n "$hub" link add br0 type bridge
  ip -n "$hub" link set br0 up
  for (( i=1; i<=n; i++ )); do
    HOST_NS[$i]=${HOST_PREFIX}$i
    HOST_IP[$i]=$subnet.$i
    ip netns add "${HOST_NS[$i]}"
    ip -n "$hub" link add "h$i" type veth peer name eth0 netns "${HOST_NS[$i]}"
    ip -n "$hub" link set "h$i" master br0 up
    ip -n "${HOST_NS[$i]}" addr add "${HOST_IP[$i]}/24" dev eth0
    ip -n "${HOST_NS[$i]}" link set eth0 up
    ip -n "${HOST_NS[$i]}" link set lo up
    # A mount namespace kept alive by a bind mount of its nsfs file,
    # which must sit on a private mount.
    if ! mountpoint -q "$HOST_NSDIR"; then
      mkdir -p "$HOST_NSDIR"
      mount --bind "$HOST_NSDIR" "$HOST_NSDIR"
      mount --make-private "$HOST_NSDIR"
    fi
    HOST_MNT[$i]=$HOST_NSDIR/${HOST_NS[$i]}.mnt
    touch "${HOST_MNT[$i]}"
    unshare --mount="${HOST_MNT[$i]}" --propagation private true
  done
  export HOST_PREFIX
}

remove_hosts ()
{
  local ns m
  [ -n "$HOST_PREFIX" ] || return 0
  for ns in $(ip netns list | awk '{print $1}' | grep "^$HOST_PREFIX" || true); do
    # Anything still running in the namespace goes first.
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns"
  done
  for m in "$HOST_NSDIR/$HOST_PREFIX"*.mnt; do
    [ -e "$m" ] || continue
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    rm -f "$m"
  done
}

on_host ()
{
  local i=$1
  shift
  if [ -n "${HOST_MNT[$i]:-}" ]; then
    # cd after entering: a directory opened before (nsenter --wd) would
    # belong to the old mount namespace and relative mounts would fail.
    nsenter --mount="${HOST_MNT[$i]}" --net="/run/netns/${HOST_NS[$i]}" \
      -- sh -c 'cd "$0" && exec "$@"' "$PWD" "$@"
  else
    ip netns exec "${HOST_NS[$i]}" "$@"
  fi
}

host_link ()
{
  ip -n "${HOST_PREFIX}hub" link set "h$1" "$2"
}

host_rate ()
{
  ip netns exec "${HOST_NS[$1]}" tc qdisc replace dev eth0 root tbf \
     rate "$2" burst 256k latency 100ms
}

# host_inrate I RATE|off: limits what reaches host I (its link's other
# end, in the hub), or lifts the limit.
host_inrate ()
{
  if [ "$2" = off ]; then
    ip netns exec "${HOST_PREFIX}hub" tc qdisc del dev "h$1" root 2>/dev/null || true
  else
    ip netns exec "${HOST_PREFIX}hub" tc qdisc replace dev "h$1" root tbf \
       rate "$2" burst 256k latency 100ms
  fi
}

# fits_columns FILE COLS: what a program drew on a terminal (a
# typescript from 'script', whose own header and footer are left out),
# its escape sequences removed, has no line wider than COLS: nothing
# wrapped.
fits_columns ()
{
  python3 - "$1" "$2" <<'PY'
import re, sys
text = open(sys.argv[1], 'rb').read().decode('latin1')
text = re.sub(r'\x1b\[[0-9;?]*[A-Za-z]', '', text)
# The terminal's own echo of a Ctrl-C lands wherever the cursor is.
text = text.replace('^C', '')
lines = [l for l in re.split(r'[\r\n]', text)
         if l.strip() and not re.match(r'Script (started|done) on ', l)]
longest = max((len(l) for l in lines), default=0)
print("longest of %d lines drawn: %d columns (of %s)" % (len(lines), longest, sys.argv[2]))
sys.exit(0 if lines and longest <= int(sys.argv[2]) else 1)
PY
}

# ---------------------------------------------------------------------
# Data checks.

# make_pattern_file FILE SIZE: deterministic, non-zero data.
make_pattern_file ()
{
  nbdkit --exit-with-parent -U - pattern "$2" \
    --run "nbdcopy \"\$uri\" '$1'" >/dev/null
}

# ---------------------------------------------------------------------
# Test guests: Debian's kernel + a busybox initramfs (tests/guest/).
#
#   guest_build [--rdma]       build or reuse the cached guest; sets
#                              GUEST_DIR
#   start_guest NAME MODE [QEMU-ARGS...]
#                              run a guest (TCG, 256 MiB unless
#                              GUEST_MEM) with its serial console in
#                              $tmp/NAME.serial and QMP on
#                              $tmp/NAME.qmp; stopped at exit.  MODE is
#                              the init's handoff.mode.  Set GUEST_NS to
#                              a host number to run it in that host.
#   wait_serial NAME TEXT [TIMEOUT]
#   last_tick NAME             the guest's last HANDOFF-TICK counter
#   serial_last WORD FILE...   the guest's last HANDOFF-WORD counter in
#                              its console logs FILE...
#   qmp NAME ARGS...           tests/qmp.py on the guest's QMP socket

guest_build ()
{
  requires qemu-system-x86_64 --version
  GUEST_DIR=$("$top/tests/guest/build.sh" "$@") ||
    fail "cannot build the test guest"
  export GUEST_DIR
}

start_guest ()
{
  local name=$1 mode=$2 initrd=${GUEST_INITRD:-$GUEST_DIR/initrd.gz}
  shift 2
  local prefix=()
  [ -n "${GUEST_NS:-}" ] && prefix=(ip netns exec "${HOST_NS[$GUEST_NS]}")
  rm -f "$tmp/$name.serial" "$tmp/$name.qmp" "$tmp/$name.pid"
  "${prefix[@]}" timeout "${GUEST_TIMEOUT:-600}" qemu-system-x86_64 \
    -accel tcg -m "${GUEST_MEM:-256}" -smp 1 -display none -nodefaults \
    -no-reboot -pidfile "$tmp/$name.pid" \
    -serial "file:$tmp/$name.serial" \
    -qmp "unix:$tmp/$name.qmp,server=on,wait=off" \
    -kernel "$GUEST_DIR/vmlinux" -initrd "$initrd" \
    -append "console=ttyS0 quiet panic=-1 handoff.mode=$mode ${GUEST_APPEND:-}" \
    "$@" >"$tmp/$name.log" 2>&1 &
  echo $! > "$tmp/$name.job"
  cleanup_fn kill_pidfile "$tmp/$name.pid"
  wait_for_socket "$tmp/$name.qmp" 30
}

wait_serial ()
{
  wait_for "${3:-120}" "'$2' on $1's console" grep -q -- "$2" "$tmp/$1.serial"
}

last_tick ()
{
  serial_last TICK "$tmp/$1.serial"
}

# serial_last WORD FILE...: the highest N on a whole "HANDOFF-WORD N"
# line of the guest's current boot (after its last HANDOFF-BOOT line) in
# any of the console logs FILE..., or 0.  A log read while the guest
# prints can end in half a line ("HANDOFF-REC 2" of 207), and a host
# killed mid-line leaves that half glued to the next boot's first line:
# neither may be read as a number.  Exported: 'wait_for ... bash -c'
# conditions call it.
serial_last ()
{
  local word=$1 f
  local -a logs=()
  shift
  for f in "$@"; do [ -r "$f" ] && logs+=("$f"); done
  [ ${#logs[@]} -gt 0 ] || { echo 0; return; }
  awk -v w="HANDOFF-$word" '
    FNR == 1 { if (cur > best) best = cur; cur = 0 }
    index($0, "HANDOFF-BOOT ") { cur = 0; next }
    $1 == w && NF == 2 && $2 ~ /^[0-9]+\r?$/ { if ($2 + 0 > cur) cur = $2 + 0 }
    END { if (cur > best) best = cur; print best + 0 }' "${logs[@]}"
}
export -f serial_last

qmp ()
{
  local name=$1
  shift
  "$top/tests/qmp.py" "$tmp/$name.qmp" "$@"
}

# ---- Measuring (the benchmarks) ----

# median: the middle of the numbers on stdin, one per line.
median () { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# ratio A B: A / B to three decimals.
ratio () { echo "scale=3; $1 / $2" | bc; }

# nbd_tls_cipher URI [VAR=VALUE...]: the cipher libnbd (nbdinfo) and
# the server at the nbds:// URI settle on, with VAR=VALUE in nbdinfo's
# environment (GNUTLS_SYSTEM_PRIORITY_FILE, say); empty if none.
nbd_tls_cipher ()
{
  env "${@:2}" LIBNBD_DEBUG=1 nbdinfo "$1" 2>&1 |
    sed -n 's/.*connection is using TLS: cipher \([^ ]*\).*/\1/p' | head -n 1
}

# busy_ticks: time the whole machine has spent busy (user, nice, system,
# irq, softirq), in clock ticks of 1/100 s.
busy_ticks () { awk '/^cpu /{print $2+$3+$4+$7+$8; exit}' /proc/stat; }

# proc_ticks PIDFILE: CPU time (user + system) of the process PIDFILE
# names, in clock ticks.
proc_ticks () { awk '{print $14+$15}' "/proc/$(cat "$1")/stat"; }
