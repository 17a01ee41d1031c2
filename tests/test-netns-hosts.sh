#!/usr/bin/env bash
# The host helper: two network namespaces reach each other, a cut link
# separates them, and teardown leaves no namespace behind, even when
# the test using them fails.
source "$(dirname "$0")/functions.sh"
requires_netns
requires ping -V
make_tmpdir

make_hosts 2
on_host 1 ping -c 1 -W 2 "${HOST_IP[2]}" >/dev/null || fail "1 cannot reach 2"
on_host 2 ping -c 1 -W 2 "${HOST_IP[1]}" >/dev/null || fail "2 cannot reach 1"
# Each host sees only its own addresses.
on_host 1 ip -4 -o addr show dev eth0 | grep -q "${HOST_IP[1]}/24"
if on_host 1 ip -4 -o addr | grep -q "${HOST_IP[2]}/"; then
  fail "host 1 holds host 2's address"
fi

host_link 2 down
if on_host 1 ping -c 1 -W 1 "${HOST_IP[2]}" >/dev/null 2>&1; then
  fail "ping crossed a cut link"
fi
host_link 2 up
wait_for 10 "link back up" on_host 1 ping -c 1 -W 1 "${HOST_IP[2]}"

# Each host has its own mounts.
on_host 1 mkdir -p "$tmp/m1"
on_host 1 mount -t tmpfs none "$tmp/m1"
on_host 1 mountpoint -q "$tmp/m1" || fail "host 1 does not see its mount"
if on_host 2 mountpoint -q "$tmp/m1"; then fail "host 2 sees host 1's mount"; fi
if mountpoint -q "$tmp/m1"; then fail "the test sees host 1's mount"; fi

host_rate 1 50mbit
on_host 1 tc qdisc show dev eth0 | grep -q tbf || fail "rate limit not set"

prefix=$HOST_PREFIX
remove_hosts
if ip netns list | grep -q "^$prefix"; then fail "namespaces left behind"; fi
if ls "$HOST_NSDIR/$prefix"* >/dev/null 2>&1; then fail "mount namespaces left"; fi

# A failing test still tears its hosts down.
cat > "$tmp/failing.sh" <<SCRIPT
source "$top/tests/functions.sh"
make_hosts 3
echo "\$HOST_PREFIX" > "$tmp/prefix"
false
SCRIPT
if bash "$tmp/failing.sh" >/dev/null 2>&1; then fail "inner test passed"; fi
p=$(cat "$tmp/prefix")
[ -n "$p" ] || fail "inner test made no hosts"
if ip netns list | grep -q "^$p"; then fail "failing test left namespaces"; fi
echo "$0: PASS"
