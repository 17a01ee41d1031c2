#!/usr/bin/env bash
# Every long option a program prints in --help appears in its man page.
source "$(dirname "$0")/functions.sh"
make_tmpdir

# man page : commands whose --help it documents
pages=(
  "handoff:handoff --help|handoff keygen --help"
  "handoff-mirror:handoff-mirror --help"
  "handoff-share:handoff-share --help"
  "handoff-volid:handoff-volid --help"
  "handoff-xfer:handoff-xfer --help"
  "handoffd:handoffd --help"
  "nbdkit-handoff-mirror-filter:"
)

checked=0
for entry in "${pages[@]}"; do
  page=${entry%%:*}
  cmds=${entry#*:}
  pod=$top/docs/$page.pod
  prog=${cmds%% *}
  if [ ! -f "$pod" ]; then
    # A program without a page is an error once the program exists.
    if [ -n "$prog" ] && command -v "$prog" >/dev/null; then
      fail "$prog is built but docs/$page.pod is missing"
    fi
    continue
  fi
  podchecker "$pod" >/dev/null 2>&1 || { podchecker "$pod"; fail "$pod"; }
  for sec in NAME SYNOPSIS DESCRIPTION OPTIONS EXIT\ STATUS EXAMPLES SEE\ ALSO; do
    grep -q "^=head1 $sec" "$pod" || fail "$pod has no $sec section"
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
[ $checked -gt 0 ] || fail "no options checked"
echo "$0: checked $checked options"
