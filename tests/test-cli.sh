#!/usr/bin/env bash
# The handoff CLI: help, version, dispatch and refusals.
source "$(dirname "$0")/functions.sh"
make_tmpdir

handoff --help > "$tmp/help"
grep -q '^Usage: handoff' "$tmp/help" || fail "--help"
handoff help | cmp - "$tmp/help"
version=$(sed -n 's/^VERSION := //p' "$top/Makefile")
handoff --version | grep -q "^handoff $version " || fail "--version"
handoff -V | grep -q "^handoff $version " || fail "-V"
handoff version | grep -q "^handoff $version " || fail "version"
# Every program names the same version and source revision.
rev=$(handoff --version | sed -n 's/^handoff [^ ]* (\(.*\))$/\1/p')
[ -n "$rev" ] || fail "handoff --version names no revision"
for p in handoffd handoff-xfer handoff-share handoff-mirror handoff-volid; do
  [ "$($p --version)" = "$p $version ($rev)" ] ||
    fail "$p --version: $($p --version)"
done
"${NBDKIT_ENV[@]}" nbdkit --filter="$HANDOFF_FILTER" null --help 2>&1 |
  grep -q "handoff $version ($rev)" || fail "the filter's --help does not name its version"

expect_error ()
{
  local want=$1
  shift
  if "$@" >"$tmp/out" 2>"$tmp/err"; then fail "'$*' succeeded"; fi
  grep -q "$want" "$tmp/err" || {
    cat "$tmp/err"
    fail "'$*': error does not mention '$want'"
  }
  [ "$(wc -l < "$tmp/err")" -ge 1 ]
}
expect_error "no command given" handoff
expect_error "unknown command 'frobnicate'" handoff frobnicate
expect_error "handoff: unknown option '--bogus' (see 'handoff --help')" handoff --bogus
expect_error "handoff migrate: option '--to' needs a value (see 'handoff migrate --help')" \
  handoff migrate web1 --to
expect_error "handoff define: unknown option '--frob'" handoff define --frob
expect_error "handoff list: unknown option '--frob' (see 'handoff list --help')" handoff list --frob
[ "$(wc -l < "$tmp/err")" = 1 ] || fail "an unknown option printed more than one line"
expect_error "too many arguments" handoff keygen a b
expect_error "handoff keygen: unknown option '--bogus' (see 'handoff keygen --help')" handoff keygen --bogus

# keygen to stdout.
handoff keygen - | grep -Eq '^handoff:[0-9a-f]{64}$' || fail "keygen -"
echo "$0: PASS"
