#!/usr/bin/env bash
# Mirror under concurrent guest I/O: chunk 1M, 1 destination(s).
exec bash "$(dirname "$0")/mirror-concurrent.sh" 1M 1 
