#!/usr/bin/env python3
"""Watch every test guest's console on every host and report any VM
that runs on two hosts at once.

  console-watch.py TMPDIR INTERVAL_S

A running test guest prints to its console several times a second
(tests/guest/init); handoffd keeps each VM's console in
TMPDIR/hN/run/VM/serial.log on the host that runs it.  Every INTERVAL_S
this reads the size of each such file; a VM ran on a host during the
interval if its console there grew.  A cutover can make two hosts'
consoles grow in one interval (the source's before the pause, the
destination's after the resume); a VM whose consoles grow on two
hosts in two intervals in a row ran on both at once.  Runs until
SIGTERM, then prints how many sweeps it made and every VM seen on two
hosts, and exits 1 if there was one.
"""
import glob
import os
import re
import signal
import sys
import time


def sizes(tmp):
    """{(vm, host): size} of every console now."""
    out = {}
    for path in glob.glob(os.path.join(tmp, "h*", "run", "*", "serial.log")):
        m = re.search(r"/h(\d+)/run/([^/]+)/serial\.log$", path)
        if not m:
            continue
        try:
            out[(m.group(2), m.group(1))] = os.stat(path).st_size
        except OSError:
            pass
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    tmp, interval = sys.argv[1], float(sys.argv[2])
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    before = sizes(tmp)
    twice_before = set()
    sweeps = 0
    bad = []
    while not stop:
        time.sleep(interval)
        now = sizes(tmp)
        grew = {}
        for key, size in now.items():
            if size > before.get(key, 0):
                grew.setdefault(key[0], []).append(key[1])
        twice = {vm for vm, hosts in grew.items() if len(hosts) > 1}
        for vm in twice & twice_before:
            bad.append("%s on hosts %s at %.3f" % (vm, ",".join(sorted(grew[vm])),
                                                   time.time()))
        twice_before = twice
        before = now
        sweeps += 1
    print("console-watch: %d sweeps of %d consoles; %s" % (
        sweeps, len(before), "no VM ran on two hosts" if not bad
        else "ran on two hosts: " + "; ".join(bad)))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
