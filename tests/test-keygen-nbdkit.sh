#!/usr/bin/env bash
# handoff keygen writes a key file that nbdkit (--tls-psk), libnbd
# (nbdinfo, nbdcopy) and QEMU (tls-creds-psk) all accept, and a wrong
# key or a plain connection is refused.
source "$(dirname "$0")/functions.sh"
requires nbdkit --version
requires nbdinfo --version
requires nbdcopy --version
make_tmpdir

handoff keygen "$tmp/keys.psk"
grep -Eq '^handoff:[0-9a-f]{64}$' "$tmp/keys.psk" || fail "key file format"
[ "$(stat -c %a "$tmp/keys.psk")" = 600 ] || fail "key file mode"
handoff keygen --identity other "$tmp/wrong.psk"

# Refusals: existing file, bad identity, too many arguments.
if handoff keygen "$tmp/keys.psk" 2>"$tmp/err"; then fail "overwrote a key"; fi
grep -q "already exists" "$tmp/err" || fail "no 'already exists' message"
if handoff keygen --identity 'a b' "$tmp/x.psk" 2>"$tmp/err"; then
  fail "accepted a bad identity"
fi
grep -q "username" "$tmp/err"
[ ! -e "$tmp/x.psk" ] || fail "left a file after refusing"
if handoff keygen a b 2>/dev/null; then fail "accepted two files"; fi
handoff keygen --force "$tmp/wrong.psk"
sed -i 's/^handoff:/other:/' "$tmp/wrong.psk"
# Same identity as the server, different key.
handoff keygen "$tmp/badkey.psk"

# A 16 MiB disk of known data, served over TLS only.
make_pattern_file "$tmp/disk.img" 16M
sum=$(sha256sum < "$tmp/disk.img")
start_nbdkit "$tmp/nbd.sock" --tls=require --tls-psk="$tmp/keys.psk" \
  file "$tmp/disk.img"

uri="nbds+unix://handoff@/?socket=$tmp/nbd.sock&tls-psk-file=$tmp/keys.psk"
nbdinfo "$uri" | grep -q 'export-size: 16777216' || fail "nbdinfo over TLS"
nbdcopy "$uri" "$tmp/copy.img"
[ "$(sha256sum < "$tmp/copy.img")" = "$sum" ] || fail "data differs"

if nbdinfo "nbd+unix:///?socket=$tmp/nbd.sock" >/dev/null 2>&1; then
  fail "plain connection was accepted"
fi
if nbdinfo "nbds+unix://handoff@/?socket=$tmp/nbd.sock&tls-psk-file=$tmp/badkey.psk" \
    >/dev/null 2>&1; then
  fail "wrong key was accepted"
fi
if nbdinfo "nbds+unix://other@/?socket=$tmp/nbd.sock&tls-psk-file=$tmp/wrong.psk" \
    >/dev/null 2>&1; then
  fail "unknown identity was accepted"
fi

# QEMU reads the same file (it wants it named keys.psk in a directory).
if command -v qemu-img >/dev/null; then
  mkdir "$tmp/qemu-creds"
  cp "$tmp/keys.psk" "$tmp/qemu-creds/keys.psk"
  qemu-img convert -O raw \
    --object "tls-creds-psk,id=tls0,endpoint=client,dir=$tmp/qemu-creds,username=handoff" \
    --image-opts "driver=nbd,server.type=unix,server.path=$tmp/nbd.sock,tls-creds=tls0" \
    "$tmp/qemu.img"
  [ "$(sha256sum < "$tmp/qemu.img")" = "$sum" ] || fail "QEMU copy differs"
fi
echo "$0: PASS"
