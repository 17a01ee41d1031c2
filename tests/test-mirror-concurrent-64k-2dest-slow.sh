#!/usr/bin/env bash
# Mirror under concurrent guest I/O: chunk 64K, 2 destination(s), one slowed.
exec bash "$(dirname "$0")/mirror-concurrent.sh" 64K 2 slow
