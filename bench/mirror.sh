#!/usr/bin/env bash
# bench/mirror.sh: the mirror filter against its anchors, in one run.
#
# 1. Copy throughput: a 2 GiB image (1 GiB of data, 1 GiB of holes) to an
#    'nbdkit file' destination over a unix socket, by handoff's mirror,
#    by nbdcopy and by QEMU's blockdev-mirror.  Goals: >= 1.0x nbdcopy,
#    >= 1.2x QEMU's mirror.  Like is compared with like: the time to
#    copy everything (handoff's "ready_after", nbdcopy without --flush,
#    QEMU until BLOCK_JOB_READY), and the time to a durable copy
#    (handoff's complete, which flushes, vs nbdcopy --flush).  Dirty
#    pages are written back (sync) before each run so one contender's
#    writeback does not slow the next.  Then the same copy over TLS
#    (PSK, TCP): handoff's mirror with the cipher handoffd gives its
#    nbdkits (AES-GCM) and with GnuTLS's own choice, beside nbdcopy.
# 2. Guest 4k random-write IOPS (fio, nbd engine): through the filter
#    with no mirror vs plain 'nbdkit file' (goal >= 0.95x), and with an
#    active mirror that sends every write to a destination (>= 0.7x),
#    beside QEMU's own active mirror (write-blocking, in
#    qemu-storage-daemon) to the same destination (goal >= 1.3x);
#    and, for information, mirroring to nbdkit null (the source side's
#    own cost, without a destination server sharing the cores).
#
# Each measurement runs ROUNDS times, interleaved; medians are compared.
# Files are written once before timing so page-cache allocation does not
# count (see MACHINE-NOTES).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export O=${O:-build}
source "$top/tests/functions.sh"
set +e
set -e
ROUNDS=${ROUNDS:-3}
FIO_TIME=${FIO_TIME:-8}
make_tmpdir


size=$((2 << 30))
echo "preparing a 2 GiB source (1 GiB data, 1 GiB holes)"
truncate -s $size "$tmp/src.img"
for i in 0 2 4 6; do
  dd if=/dev/urandom of="$tmp/src.img" bs=1M count=256 seek=$((i * 256)) \
     conv=notrunc status=none
done
# The destination file: full size, pages already in memory.
dd if=/dev/zero of="$tmp/dst.img" bs=1M count=2048 status=none

start_nbdkit "$tmp/dst.sock" file "$tmp/dst.img"
start_nbdkit "$tmp/src.sock" --filter="$HANDOFF_FILTER" file "$tmp/src.img" \
  mirror-control="$tmp/ctl.sock"
dst_uri="nbd+unix:///?socket=$tmp/dst.sock"

refill () {
  # Put data back everywhere (holes freed the pages) without timing it.
  nbdcopy --synchronous "$tmp/src.img" "$dst_uri" >/dev/null 2>&1 || true
  dd if=/dev/zero of="$tmp/dst.img" bs=1M count=2048 conv=notrunc status=none
}

timed () { local t0; t0=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $t0" | bc; }

ours=() oursd=() nbdc=() nbdcf=() qemu=()
for r in $(seq "$ROUNDS"); do
  refill; sync
  oursd+=("$(timed bash -c "handoff mirror start '$tmp/ctl.sock' --to '$dst_uri' && handoff mirror complete '$tmp/ctl.sock'")")
  ours+=("$(handoff mirror status --json "$tmp/ctl.sock" | jq .ready_after)")
  cmp -s "$tmp/src.img" "$tmp/dst.img" || { echo "mirror copy differs"; exit 1; }

  refill; sync
  nbdc+=("$(timed nbdcopy "$tmp/src.img" "$dst_uri")")
  refill; sync
  nbdcf+=("$(timed nbdcopy --flush "$tmp/src.img" "$dst_uri")")

  refill; sync
  qemu+=("$("$top/bench/qemu-mirror.py" "$tmp/src.img" "$tmp/dst.sock")")
  echo "round $r: handoff ${ours[-1]}s (durable ${oursd[-1]}s)  nbdcopy ${nbdc[-1]}s (--flush ${nbdcf[-1]}s)  qemu-mirror ${qemu[-1]}s"
done
o=$(printf '%s\n' "${ours[@]}" | median)
od=$(printf '%s\n' "${oursd[@]}" | median)
n=$(printf '%s\n' "${nbdc[@]}" | median)
nf=$(printf '%s\n' "${nbdcf[@]}" | median)
q=$(printf '%s\n' "${qemu[@]}" | median)
gb () { echo "scale=2; 2.0 / $1" | bc; }
echo
echo "copy 2 GiB (half holes), median of $ROUNDS:"
printf '  handoff mirror, copied   %6.2fs  %s GiB/s\n' "$o" "$(gb "$o")"
printf '  nbdcopy                  %6.2fs  %s GiB/s\n' "$n" "$(gb "$n")"
printf '  QEMU mirror, ready       %6.2fs  %s GiB/s\n' "$q" "$(gb "$q")"
printf '  handoff mirror, durable  %6.2fs  %s GiB/s\n' "$od" "$(gb "$od")"
printf '  nbdcopy --flush          %6.2fs  %s GiB/s\n' "$nf" "$(gb "$nf")"
echo "  ratio vs nbdcopy:          $(ratio "$n" "$o")x (goal >= 1.0)"
echo "  ratio vs nbdcopy, durable: $(ratio "$nf" "$od")x"
echo "  ratio vs QEMU mirror:      $(ratio "$q" "$o")x (goal >= 1.2)"


# The same copy over TLS with a pre-shared key, as a migration's copy
# goes between hosts (TCP on loopback here).  With a PSK, GnuTLS picks
# ChaCha20-Poly1305 for libnbd and nbdkit; handoffd gives the nbdkits
# it spawns a GnuTLS configuration that disables it, so they use
# AES-GCM (ctl/daemon/nbd-tls.c writes the same two lines).  nbdcopy
# runs as a user would run it, with GnuTLS's own choice.
echo
echo "copy the same 2 GiB over TLS (PSK, TCP on loopback), median of $ROUNDS:"
handoff keygen "$tmp/k.psk" >/dev/null 2>&1
printf '[overrides]\ntls-disabled-cipher = CHACHA20-POLY1305\n' > "$tmp/gnutls-nbd.conf"
aes=(env "GNUTLS_SYSTEM_PRIORITY_FILE=$tmp/gnutls-nbd.conf")
declare -A tport
for how in aes default; do
  tport[$how]=$(free_port)
  env=()
  [ "$how" = default ] || env=("${aes[@]}")
  "${env[@]}" nbdkit --exit-with-parent -P "$tmp/dst-$how.pid" -i 127.0.0.1 \
    -p "${tport[$how]}" --tls=require --tls-psk="$tmp/k.psk" file "$tmp/dst.img" \
    2>>"$tmp/dst-$how.log" &
  cleanup_fn kill_pidfile "$tmp/dst-$how.pid"
  wait_for_file "$tmp/dst-$how.pid" 30
  # The source as handoffd starts it: the filter, its client keyed.
  "${env[@]}" nbdkit --exit-with-parent -P "$tmp/srct-$how.pid" -U "$tmp/srct-$how.sock" \
    --filter="$HANDOFF_FILTER" file "$tmp/src.img" \
    mirror-control="$tmp/ctlt-$how.sock" mirror-tls-psk="$tmp/k.psk" \
    2>>"$tmp/srct-$how.log" &
  cleanup_fn kill_pidfile "$tmp/srct-$how.pid"
  wait_for_socket "$tmp/ctlt-$how.sock" 30
  echo "  cipher, $how: $(nbd_tls_cipher \
    "nbds://handoff@127.0.0.1:${tport[$how]}/?tls-psk-file=$tmp/k.psk" "${env[@]:1}")"
done
tls_copy () {
  local how=$1
  handoff mirror start "$tmp/ctlt-$how.sock" --to "nbds://127.0.0.1:${tport[$how]}/" >/dev/null
  wait_for 120 "the copy over TLS" bash -c \
    "handoff mirror status --json '$tmp/ctlt-$how.sock' | jq -e '.state == \"ready\"' >/dev/null"
  handoff mirror status --json "$tmp/ctlt-$how.sock" | jq .ready_after
  handoff mirror complete "$tmp/ctlt-$how.sock" >/dev/null
  cmp -s "$tmp/src.img" "$tmp/dst.img" || { echo "mirror copy over TLS differs" >&2; exit 1; }
}
t_aes=() t_def=() t_nbdc=()
for r in $(seq "$ROUNDS"); do
  refill; sync
  t_aes+=("$(tls_copy aes)")
  refill; sync
  t_def+=("$(tls_copy default)")
  refill; sync
  t_nbdc+=("$(timed nbdcopy "$tmp/src.img" \
    "nbds://handoff@127.0.0.1:${tport[default]}/?tls-psk-file=$tmp/k.psk")")
  echo "round $r: handoff (AES-GCM) ${t_aes[-1]}s  handoff (GnuTLS's choice) ${t_def[-1]}s  nbdcopy ${t_nbdc[-1]}s"
done
ta=$(printf '%s\n' "${t_aes[@]}" | median)
td=$(printf '%s\n' "${t_def[@]}" | median)
tn=$(printf '%s\n' "${t_nbdc[@]}" | median)
printf '  handoff mirror, copied   %6.2fs  %s GiB/s\n' "$ta" "$(gb "$ta")"
printf '  the same, GnuTLS choice  %6.2fs  %s GiB/s\n' "$td" "$(gb "$td")"
printf '  nbdcopy                  %6.2fs  %s GiB/s\n' "$tn" "$(gb "$tn")"
echo "  ratio vs nbdcopy over TLS: $(ratio "$tn" "$ta")x; AES-GCM vs GnuTLS's choice: $(ratio "$td" "$ta")x"
echo "  bound: 2 cores encrypt, decrypt, read and write; the plain copy above is the ceiling"

echo
echo "guest 4k random writes (fio nbd engine, iodepth 16, ${FIO_TIME}s):"
kill_pidfile "$tmp/src.sock.pid"
rm -f "$tmp/src.sock"
truncate -s 1G "$tmp/g.img"
dd if=/dev/urandom of="$tmp/g.img" bs=1M count=1024 conv=notrunc status=none
start_nbdkit "$tmp/plain.sock" file "$tmp/g.img"
start_nbdkit "$tmp/f.sock" --filter="$HANDOFF_FILTER" file "$tmp/g.img" \
  mirror-control="$tmp/gctl.sock"
rm -f "$tmp/gdst.img"
dd if=/dev/zero of="$tmp/gdst.img" bs=1M count=1024 status=none
start_nbdkit "$tmp/gdst.sock" file "$tmp/gdst.img"
# For information: a destination that does no work, so the figure shows
# what mirroring costs the source side alone.  With the file
# destination, its server shares this machine's cores with the guest.
start_nbdkit "$tmp/null.sock" null 1G

# Where the CPU goes: around every fio run the machine's busy time and
# each server's own are logged to $tmp/cpu.log as "LABEL WRITES BUSY
# SERVER DESTINATION" (ticks of 1/100 s) and divided by the writes at
# the end.  On a small machine the mirroring figure is bound by it: the
# guest, the source server and the destination server share the cores.
iops () {                       # iops SERVER-SOCKET LABEL [DEST-SOCKET]
  local dpid=${3:+$3.pid} b0 s0 d0=0 dt=0 out
  b0=$(busy_ticks); s0=$(proc_ticks "$1.pid")
  [[ -z $dpid ]] || d0=$(proc_ticks "$dpid")
  out=$(fio --name=r --ioengine=nbd --uri="nbd+unix:///?socket=$1" \
      --rw=randwrite --bs=4k --size=1g --iodepth=16 --time_based \
      --runtime="$FIO_TIME" --invalidate=0 --output-format=json 2>/dev/null |
    sed -n '/^{/,$p' | jq '.jobs[0].write.iops')
  [[ -z $dpid ]] || dt=$(( $(proc_ticks "$dpid") - d0 ))
  echo "$2 $(echo "$out * $FIO_TIME" | bc) $(( $(busy_ticks) - b0 ))" \
    "$(( $(proc_ticks "$1.pid") - s0 )) $dt" >> "$tmp/cpu.log"
  echo "$out"
}
mirror_iops () {                # mirror_iops DEST-SOCKET LABEL
  handoff mirror start "$tmp/gctl.sock" --to "nbd+unix:///?socket=$1" >/dev/null
  wait_for 60 "mirror ready" bash -c \
    "handoff mirror status --json '$tmp/gctl.sock' | jq -e '.state == \"ready\"'"
  iops "$tmp/f.sock" "$2" "$1"
  handoff mirror complete "$tmp/gctl.sock" >/dev/null
}
# The peer a QEMU user would pick: QEMU's active mirror (blockdev-mirror
# copy-mode=write-blocking, libvirt's --copy-storage-synchronous-writes)
# in qemu-storage-daemon, exporting the same image over NBD and
# mirroring every write to the same destination server before it
# completes.
qemu_active_iops () {           # qemu_active_iops LABEL
  local q=$tmp/qsd
  rm -f "$q.sock" "$q.qmp"
  qemu-storage-daemon \
    --blockdev "driver=file,filename=$tmp/g.img,node-name=gf,cache.direct=off,aio=threads" \
    --blockdev driver=raw,file=gf,node-name=g \
    --blockdev "driver=nbd,server.type=unix,server.path=$tmp/gdst.sock,node-name=t" \
    --nbd-server "addr.type=unix,addr.path=$q.sock" \
    --export type=nbd,id=e0,node-name=g,name=,writable=on \
    --chardev "socket,path=$q.qmp,server=on,wait=off,id=m0" --monitor chardev=m0 \
    --pidfile "$q.sock.pid" > "$q.log" 2>&1 &
  wait_for_socket "$q.qmp" 30
  wait_for_socket "$q.sock" 30
  qmp qsd blockdev-mirror '{"job-id":"m","device":"g","target":"t","sync":"full","copy-mode":"write-blocking"}' >/dev/null
  wait_for 120 "QEMU's mirror ready" bash -c \
    "'$top/tests/qmp.py' '$q.qmp' query-block-jobs | jq -e '.[0].ready'"
  iops "$q.sock" "$1" "$tmp/gdst.sock"
  qmp qsd block-job-cancel '{"device":"m"}' >/dev/null 2>&1 || true
  qmp qsd quit >/dev/null 2>&1 || true
  kill_pidfile "$q.sock.pid" 2>/dev/null || true
  wait
}
plain=() idle=() active=() tonull=() qactive=()
: > "$tmp/cpu.log"
for r in $(seq "$ROUNDS"); do
  plain+=("$(iops "$tmp/plain.sock" plain)")
  idle+=("$(iops "$tmp/f.sock" idle)")
  active+=("$(mirror_iops "$tmp/gdst.sock" mirroring)")
  qactive+=("$(qemu_active_iops qemu-active)")
  tonull+=("$(mirror_iops "$tmp/null.sock" to-null)")
  echo "round $r: plain ${plain[-1]}  filter idle ${idle[-1]}  filter mirroring ${active[-1]}  QEMU active mirror ${qactive[-1]}  to null ${tonull[-1]}"
done
p=$(printf '%s\n' "${plain[@]}" | median)
i=$(printf '%s\n' "${idle[@]}" | median)
a=$(printf '%s\n' "${active[@]}" | median)
z=$(printf '%s\n' "${tonull[@]}" | median)
printf '  plain nbdkit file     %8.0f IOPS\n' "$p"
printf '  filter, no mirror     %8.0f IOPS  %sx (goal >= 0.95)\n' "$i" "$(ratio "$i" "$p")"
qa=$(printf '%s\n' "${qactive[@]}" | median)
printf '  filter, mirroring     %8.0f IOPS  %sx (goal >= 0.7)\n' "$a" "$(ratio "$a" "$p")"
printf "  QEMU's active mirror  %8.0f IOPS  %sx plain; handoff mirroring is %sx of it (goal >= 1.3)\n" \
  "$qa" "$(ratio "$qa" "$p")" "$(ratio "$a" "$qa")"
printf '  filter, mirroring to nbdkit null %8.0f IOPS  %sx (for information)\n' \
  "$z" "$(ratio "$z" "$p")"
# Per write, in microseconds (a tick is 10^4 of them): "LABEL ALL
# SERVER DESTINATION BUSY-CPUS", the median round by ALL.
per_write () {                  # per_write LABEL
  awk -v l="$1" -v t="$FIO_TIME" '$1 == l {
      printf "%s %.1f %.1f %.1f %.2f\n", $1, $3 * 1e4 / $2, $4 * 1e4 / $2,
        $5 * 1e4 / $2, $3 / (100 * t) }' "$tmp/cpu.log" |
    sort -g -k2 | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'
}
echo "  CPU per guest write (median, microseconds; machine busy in CPUs of $(nproc)):"
for l in plain idle mirroring qemu-active to-null; do
  read -r _ all srv dst busy < <(per_write "$l")
  printf '    %-10s all %6.1f  filter/server %6.1f  destination %6.1f  busy %s\n' \
    "$l" "$all" "$srv" "$dst" "$busy"
done
# A mirrored write costs at least what a plain one does plus the
# destination server's write; with every core busy that bounds it.
read -r _ pa _ _ _ < <(per_write plain)
read -r _ _ _ md _ < <(per_write mirroring)
bound=$(echo "scale=0; $(nproc) * 1000000 / ($pa + $md)" | bc)
printf '  mirroring bound here: %s CPUs / (plain write %s us + destination write %s us) = %s IOPS, %sx plain; reached %sx of it\n' \
  "$(nproc)" "$pa" "$md" "$bound" "$(ratio "$bound" "$p")" "$(ratio "$a" "$bound")"
