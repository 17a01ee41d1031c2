#!/usr/bin/env bash
# Live QEMU migration through handoff-xfer relays over TCP to two
# destinations, the switch-over held by the relay until released.
exec bash "$(dirname "$0")/xfer-migrate.sh" hold
