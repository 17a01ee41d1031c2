#!/usr/bin/env bash
# A mirror between two hosts (network namespaces) over NBD with TLS and
# a pre-shared key; a destination with another key is refused.
source "$(dirname "$0")/functions.sh"
requires_netns
requires nbdkit --version
make_tmpdir

make_hosts 2
handoff keygen "$tmp/k.psk"
handoff keygen "$tmp/other.psk"
size=$((256 << 20))
truncate -s $size "$tmp/src.img" "$tmp/dst.img"
dd if=/dev/urandom of="$tmp/src.img" bs=1M count=96 conv=notrunc status=none

# Host 2: the destination, TLS only, on its own address.
on_host 2 nbdkit --exit-with-parent -P "$tmp/dst.pid" -i "${HOST_IP[2]}" \
  -p 10809 --tls=require --tls-psk="$tmp/k.psk" file "$tmp/dst.img" &
cleanup_fn kill_pidfile "$tmp/dst.pid"
on_host 2 nbdkit --exit-with-parent -P "$tmp/oth.pid" -i "${HOST_IP[2]}" \
  -p 10810 --tls=require --tls-psk="$tmp/other.psk" file "$tmp/dst.img" &
cleanup_fn kill_pidfile "$tmp/oth.pid"
# Host 1: the source disk with the filter.
on_host 1 "${NBDKIT_ENV[@]}" nbdkit --exit-with-parent -P "$tmp/src.pid" -U "$tmp/src.sock" \
  --filter="$HANDOFF_FILTER" file "$tmp/src.img" mirror-control="$tmp/ctl.sock" \
  mirror-tls-psk="$tmp/k.psk" &
cleanup_fn kill_pidfile "$tmp/src.pid"
wait_for_file "$tmp/dst.pid"
wait_for_file "$tmp/oth.pid"
wait_for_file "$tmp/src.pid"
wait_for_socket "$tmp/ctl.sock"

if handoff mirror start "$tmp/ctl.sock" --to "nbds://${HOST_IP[2]}:10810/" \
     2>"$tmp/err"; then
  fail "a destination with another key was accepted"
fi
cat "$tmp/err"
grep -q "no destination could be used: nbds://${HOST_IP[2]}:10810/: connect: .*gnutls_handshake" "$tmp/err" ||
  fail "the refusal does not name the destination and the failed handshake"

handoff mirror start "$tmp/ctl.sock" --to "nbds://${HOST_IP[2]}/"
qemu-io -f raw "nbd+unix:///?socket=$tmp/src.sock" \
  -c "write -P 7 1M 1M" -c "write -P 8 200M 3M" -c flush >/dev/null
handoff mirror complete --verify "$tmp/ctl.sock"
kill_pidfile "$tmp/src.pid"
kill_pidfile "$tmp/dst.pid"
cmp "$tmp/src.img" "$tmp/dst.img" || fail "destination differs"
echo "$0: PASS"
