#!/usr/bin/env python3
"""Run a command on a terminal of its own, as an operator would.

  tty-drive.py [--cols N] [--rows N] --log FILE
               [--expect REGEX --send TEXT]... -- COMMAND [ARGS...]

COMMAND runs on a new pseudo-terminal of N columns and rows (its
controlling terminal: Ctrl-C, "\\x03", is the line discipline's SIGINT
to it).  Everything it writes goes to FILE.  Each --expect waits (120 s)
for REGEX in what it has written since the previous match, then its
--send is typed (Python escapes: "\\x03", "y\\n").  Then the output is
read to its end.  Exits with COMMAND's exit status, or 99 if an expected
text never came.
"""
import argparse
import codecs
import fcntl
import os
import pty
import re
import select
import struct
import sys
import termios
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cols", type=int, default=80)
    ap.add_argument("--rows", type=int, default=24)
    ap.add_argument("--log", required=True)
    ap.add_argument("--expect", action="append", default=[])
    ap.add_argument("--send", action="append", default=[])
    ap.add_argument("command", nargs="+")
    a = ap.parse_args()
    if len(a.expect) != len(a.send):
        ap.error("each --expect needs its --send")
    steps = [(re.compile(e), codecs.decode(s, "unicode_escape"))
             for e, s in zip(a.expect, a.send)]

    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(a.command[0], a.command)
    fcntl.ioctl(fd, termios.TIOCSWINSZ,
                struct.pack("HHHH", a.rows, a.cols, 0, 0))
    log = open(a.log, "wb", buffering=0)
    seen = ""
    deadline = time.monotonic() + 120
    while True:
        if steps and steps[0][0].search(seen):
            os.write(fd, steps[0][1].encode())
            steps.pop(0)
            seen = ""
            deadline = time.monotonic() + 120
            continue
        if steps and time.monotonic() > deadline:
            sys.stderr.write("tty-drive: '%s' never came\n"
                             % steps[0][0].pattern)
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return 99
        r, _, _ = select.select([fd], [], [], 0.5)
        if not r:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:         # EIO: the command closed its terminal.
            data = b""
        if not data:
            break
        log.write(data)
        seen += data.decode("utf-8", "replace")
    _, status = os.waitpid(pid, 0)
    if steps:
        sys.stderr.write("tty-drive: the command ended before '%s'\n"
                         % steps[0][0].pattern)
        return 99
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128


if __name__ == "__main__":
    sys.exit(main())
