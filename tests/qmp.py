#!/usr/bin/env python3
"""Minimal QMP client for tests.

  qmp.py SOCKET COMMAND [JSON-ARGUMENTS]   run one command, print the
                                           "return" value as JSON
  qmp.py SOCKET --hmp 'HMP COMMAND LINE'   run a human monitor command

Exits 1 with the error on stderr if QEMU answers with an error.
"""
import json
import socket
import sys
import time


def connect(path, timeout=30):
    deadline = time.time() + timeout
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    s.settimeout(timeout)
    f = s.makefile('rwb', buffering=0)
    json.loads(f.readline())                     # greeting
    call(f, 'qmp_capabilities')
    return f


def call(f, name, args=None):
    msg = {'execute': name}
    if args:
        msg['arguments'] = args
    f.write((json.dumps(msg) + '\n').encode())
    while True:
        r = json.loads(f.readline())
        if 'event' in r:
            continue
        if 'error' in r:
            raise RuntimeError(f"{name}: {r['error'].get('desc', r['error'])}")
        return r['return']


def main():
    path, cmd = sys.argv[1], sys.argv[2]
    f = connect(path)
    try:
        if cmd == '--hmp':
            out = call(f, 'human-monitor-command',
                       {'command-line': sys.argv[3]})
            sys.stdout.write(out)
            # HMP reports failures as text, not as QMP errors.
            if 'error' in out.lower() or 'failed' in out.lower():
                sys.exit(1)
        else:
            args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
            print(json.dumps(call(f, cmd, args)))
    except RuntimeError as e:
        print(e, file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()
