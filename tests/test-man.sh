#!/usr/bin/env bash
# Every long option a program prints in --help appears in its man page.
source "$(dirname "$0")/functions.sh"
make_tmpdir

# man page : commands whose --help it documents
pages=(
  "handoff:handoff --help|handoff keygen --help|handoff scan --help|handoff hostid --help|handoff migrate --help|handoff define --help|handoff job --help|handoff stop --help|handoff help migrate"
  "handoff-mirror:handoff-mirror --help"
  "handoff-share:handoff-share --help"
  "handoff-volume:handoff-volid --help|handoff volume --help"
  "handoff-xfer:handoff-xfer --help"
  "handoffd:handoffd --help"
  "nbdkit-handoff-mirror-filter:"
)

# The filter's parameters (key=) from nbdkit's help.
filter_keys ()
{
  "${NBDKIT_ENV[@]}" nbdkit --filter="$HANDOFF_FILTER" null --help 2>/dev/null |
    sed -n '/^mirror-control=/,/^$/p' | grep -oE '^[a-z-]+=' | sort -u
}

# The policy example of handoffd(8) is a file an operator can copy.
sed -n '/^=item B<-p> FILE, B<--policy> FILE/,/^=over/p' "$top/docs/handoffd.pod" |
  sed -n '/^ {/,/^ }/p' > "$tmp/policy.json"
[ -s "$tmp/policy.json" ] || fail "no policy example in handoffd(8)"
jq -e 'type == "object"' "$tmp/policy.json" > /dev/null ||
  fail "the policy example of handoffd(8) does not parse: $(cat "$tmp/policy.json")"

# Every variable the programs read is documented; no page names an
# internal constant or a source file; every page of ours that a page
# refers to exists, in its section.
for v in $(grep -rhoE 'getenv \("HANDOFF_[A-Z_]+"\)' "$top"/lib "$top"/ctl \
             "$top"/nbd-mirror "$top"/fuse-share "$top"/rdma-xfer "$top"/volume-id |
           grep -oE 'HANDOFF_[A-Z_]+' | grep -v '^HANDOFF_TEST_' | sort -u); do
  grep -lq "C<$v>" "$top"/docs/*.pod || fail "no man page documents $v"
done
for pod in "$top"/docs/handoff.pod "$top"/docs/handoffd.pod; do
  grep -q '^=head1 ENVIRONMENT' "$pod" || fail "$pod has no ENVIRONMENT section"
done
! grep -nE '\bRC_[A-Z_]+|F<[a-z-]+/[a-z-]+\.[ch]>' "$top"/docs/*.pod ||
  fail "a page names an internal constant or a source file"
for ref in $(grep -ohE 'L<(handoff|handoffd|nbdkit-handoff)[a-z-]*\([0-9]\)>' "$top"/docs/*.pod | sort -u); do
  name=${ref#L<}; name=${name%%(*}; sec=${ref%)>}; sec=${sec##*(}
  [ -f "$top/docs/$name.pod" ] || fail "$ref: no such page"
  want=1; [ "$name" = handoffd ] && want=8
  [ "$sec" = "$want" ] || fail "$ref: the page is in section $want"
done
# A page's NAME is what a user types: handoff-volume, for "handoff volume".
grep -q '^handoff-volume - ' "$top/docs/handoff-volume.pod" ||
  fail "the volume page is not named after its command"

checked=0
for entry in "${pages[@]}"; do
  page=${entry%%:*}
  cmds=${entry#*:}
  pod=$top/docs/$page.pod
  prog=${cmds%% *}
  if [ ! -f "$pod" ]; then
    # A program without a page is an error once the program exists.
    if [ -n "$prog" ] && command -v "$prog" >/dev/null 2>&1; then
      fail "$prog is built but docs/$page.pod is missing"
    fi
    continue
  fi
  podchecker "$pod" >/dev/null 2>&1 || { podchecker "$pod"; fail "$pod"; }
  for sec in NAME SYNOPSIS DESCRIPTION 'OPTIONS|PARAMETERS' EXIT\ STATUS \
             EXAMPLES SEE\ ALSO; do
    grep -qE "^=head1 ($sec)" "$pod" || fail "$pod has no $sec section"
  done
  IFS='|' read -r -a list <<< "$cmds"
  for cmd in "${list[@]}"; do
    [ -n "$cmd" ] || continue
    $cmd > "$tmp/help" || fail "$cmd"
    for opt in $(grep -oE -- '--[a-z][a-z0-9-]+' "$tmp/help" | sort -u); do
      grep -qE -- "$opt([^a-z0-9-]|\$)" "$pod" ||
        fail "$page.pod does not document $opt (from '$cmd')"
      checked=$((checked + 1))
    done
  done
done
if [ -f "$HANDOFF_FILTER" ]; then
  keys=$(filter_keys)
  [ -n "$keys" ] || fail "no filter parameters found"
  for k in $keys; do
    grep -q "B<$k>" "$top/docs/nbdkit-handoff-mirror-filter.pod" ||
      fail "nbdkit-handoff-mirror-filter.pod does not document $k"
    checked=$((checked + 1))
  done
fi
[ $checked -gt 0 ] || fail "no options checked"
echo "$0: checked $checked options"
