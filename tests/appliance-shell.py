#!/usr/bin/env python3
"""Run a shell command on an appliance booted by a test, through its
serial console (a unix socket; the appliance's getty there lets root
in without a password).  Kernel messages are turned off the console
first, so that they do not mix with the command's output.

  appliance-shell.py SOCKET COMMAND

Prints what COMMAND writes (stdout and stderr) and exits with its exit
status; 99 if the console never gave a shell (120 s).  Each call logs
in and out again, so calls do not depend on each other.
"""
import re
import socket
import sys
import time

TIMEOUT = 120


def read_until(sock, buf, pattern, deadline):
    """Read into buf until pattern matches it; the match, or None at the
    deadline."""
    rx = re.compile(pattern, re.S)
    while True:
        m = rx.search(buf[0])
        if m:
            return m
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return None
        if not data:
            return None
        buf[0] += data.decode("utf-8", "replace")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, command = sys.argv[1], sys.argv[2]
    deadline = time.monotonic() + TIMEOUT
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    buf = [""]
    # A login prompt, or a shell left by an earlier call that did not
    # log out: either way, end up at a prompt of our own.
    sock.sendall(b"\r")
    m = read_until(sock, buf, r"login: $|[#$] $", deadline)
    while m and m.group(0).startswith("login"):
        buf[0] = ""
        sock.sendall(b"root\r")
        m = read_until(sock, buf, r"login: $|[#$] $", deadline)
        if m is None or not m.group(0).startswith("login"):
            break
        time.sleep(1)
    if m is None:
        sys.stderr.write("appliance-shell: no shell on %s: %r\n"
                         % (path, buf[0][-300:]))
        sys.exit(99)
    # Markers the echo of the command line cannot match (the command
    # line has them split by quotes).
    buf[0] = ""
    sock.sendall(("stty -echo; dmesg -n 1; echo '@@''BEGIN'; ( %s ) 2>&1; "
                  "echo \"@@END $?\"; exit\r" % command).encode())
    m = read_until(sock, buf, r"@@BEGIN\r?\n(.*?)@@END (\d+)", deadline)
    if m is None:
        sys.stderr.write("appliance-shell: no end of the command: %r\n"
                         % buf[0][-300:])
        sys.exit(99)
    sys.stdout.write(m.group(1).replace("\r\n", "\n"))
    sys.exit(int(m.group(2)))


if __name__ == "__main__":
    main()
