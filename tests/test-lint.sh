#!/usr/bin/env bash
# cppcheck and clang-tidy find nothing in the tree.
source "$(dirname "$0")/functions.sh"
requires cppcheck --version
requires clang-tidy --version
requires git -C "$top" rev-parse
"$top/scripts/lint"
