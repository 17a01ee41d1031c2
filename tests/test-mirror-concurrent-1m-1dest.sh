#!/usr/bin/env bash
# Mirror under concurrent guest I/O: chunk 1M, 1 destination; guest
# threads sleep at once for their replies (reply-poll=0), the path the
# other variants take only after polling.
MIRROR_PARAMS=mirror-reply-poll=0 exec bash "$(dirname "$0")/mirror-concurrent.sh" 1M 1
