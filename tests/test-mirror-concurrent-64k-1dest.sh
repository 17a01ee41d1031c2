#!/usr/bin/env bash
# Mirror under concurrent guest I/O: chunk 64K, 1 destination(s).
exec bash "$(dirname "$0")/mirror-concurrent.sh" 64K 1 
