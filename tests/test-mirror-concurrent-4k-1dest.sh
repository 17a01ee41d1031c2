#!/usr/bin/env bash
# Mirror under concurrent guest I/O: chunk 4K, 1 destination(s).
exec bash "$(dirname "$0")/mirror-concurrent.sh" 4K 1 
