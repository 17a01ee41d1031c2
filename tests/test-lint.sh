#!/usr/bin/env bash
# cppcheck and clang-tidy find nothing in the tree.
source "$(dirname "$0")/functions.sh"
# The sources are the same in every build: the plain pass lints them.
[ -z "${SANITIZE:-}" ] || skip "lint reads the sources, not the sanitized build"
requires cppcheck --version
requires clang-tidy --version
requires git -C "$top" rev-parse
"$top/scripts/lint"
