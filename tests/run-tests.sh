#!/usr/bin/env bash
# handoff test runner.
#
#   tests/run-tests.sh TEST...
#
# Runs each test (a C unit test binary or a shell script) with a time
# limit, keeps its output in $O/test-logs/NAME.log, and maps its exit
# status: 0 pass, 77 skip (the reason is printed), anything else fail.
# Ends with the line "N passed, N failed, N skipped" and exits non-zero
# if anything failed.
set -u

O=${O:-build}
logdir=$O/test-logs
mkdir -p "$logdir"
timeout_s=${TEST_TIMEOUT:-900}

pass=0 fail=0 skip=0
failed=()

# With STRICT_SKIPS=1 (CI) a skip counts as a failure unless
# tests/skips-allowed lets NAME skip in this pass.
skip_allowed ()
{
  local pass_name=plain
  [ -z "${STRICT_SKIPS:-}" ] && return 0
  [ -n "${SANITIZE:-}" ] && pass_name=sanitize
  grep -Eq "^$1[[:space:]]+($pass_name|any)([[:space:]]|\$)" \
    "$(dirname "$0")/skips-allowed"
}

for t in "$@"; do
  name=$(basename "$t")
  name=${name%.sh}
  log=$logdir/$name.log
  start=$(date +%s.%N)
  case $t in
    *.sh) cmd=(bash "$t") ;;
    *) cmd=("$t") ;;
  esac
  # setsid: a test's stray children die with its process group.
  timeout --kill-after=30 "$timeout_s" setsid "${cmd[@]}" >"$log" 2>&1 </dev/null
  rc=$?
  secs=$(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)")
  case $rc in
    0)
      pass=$((pass + 1))
      printf 'PASS: %-40s (%ss)\n' "$name" "$secs" ;;
    77)
      reason=$(grep -v '^+' "$log" | tail -n 1)
      if skip_allowed "$name"; then
        skip=$((skip + 1))
        printf 'SKIP: %-40s %s\n' "$name" "$reason"
      else
        fail=$((fail + 1))
        failed+=("$name")
        printf 'FAIL: %-40s (skipped, and tests/skips-allowed does not '\
'let it: %s)\n' "$name" "$reason"
      fi ;;
    *)
      fail=$((fail + 1))
      failed+=("$name")
      what="exit $rc"
      [ $rc -eq 124 ] && what="timed out after ${timeout_s}s"
      printf 'FAIL: %-40s (%s, %ss; log %s)\n' "$name" "$what" "$secs" "$log"
      tail -n 25 "$log" | sed 's/^/    | /' ;;
  esac
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
