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
expect_error "unrecognized option" handoff --bogus
expect_error "too many arguments" handoff keygen a b
expect_error "unrecognized option" handoff keygen --bogus

# keygen to stdout.
handoff keygen - | grep -Eq '^handoff:[0-9a-f]{64}$' || fail "keygen -"
echo "$0: PASS"
