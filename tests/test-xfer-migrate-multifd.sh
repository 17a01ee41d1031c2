#!/usr/bin/env bash
# Live QEMU migration through handoff-xfer relays over TCP: multifd.
exec bash "$(dirname "$0")/xfer-migrate.sh" multifd
