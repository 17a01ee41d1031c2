#!/usr/bin/env python3
"""Minimal QMP client for tests.

  qmp.py SOCKET COMMAND [JSON-ARGUMENTS]   run one command, print the
                                           "return" value as JSON
  qmp.py SOCKET --hmp 'HMP COMMAND LINE'   run a human monitor command
  qmp.py SOCKET --wait-migration [SECONDS] poll query-migrate until the
                                           migration ends; print the
                                           final query-migrate reply;
                                           exit 1 unless "completed"

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
        if 'return' in r:
            return r['return']
        # Anything else (a greeting QEMU sent again to a client that
        # queued behind another) is no answer: read on.


def main():
    path, cmd = sys.argv[1], sys.argv[2]
    f = connect(path)
    try:
        if cmd == '--wait-migration':
            limit = float(sys.argv[3]) if len(sys.argv) > 3 else 300
            end = time.time() + limit
            while True:
                r = call(f, 'query-migrate')
                st = r.get('status')
                if st in ('completed', 'failed', 'cancelled'):
                    print(json.dumps(r))
                    sys.exit(0 if st == 'completed' else 1)
                if time.time() > end:
                    print(json.dumps(r))
                    print('migration did not finish in time', file=sys.stderr)
                    sys.exit(1)
                time.sleep(0.1)
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
