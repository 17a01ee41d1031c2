#!/usr/bin/env bash
# Live QEMU migration through handoff-xfer relays over TCP: single.
exec bash "$(dirname "$0")/xfer-migrate.sh" single
