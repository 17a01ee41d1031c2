#!/usr/bin/env python3
"""Time QEMU's own blockdev-mirror of SRC (a raw file) to an NBD export.

usage: qemu-mirror.py SRC.img NBD-SOCKET

Starts QEMU (-machine none), mirrors with sync=full, waits for the job
to be ready (everything copied), completes it, and prints the seconds
from blockdev-mirror to BLOCK_JOB_READY.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

src, nbd_sock = sys.argv[1], sys.argv[2]
d = tempfile.mkdtemp()
qmp_path = os.path.join(d, 'qmp.sock')
q = subprocess.Popen(
    ['qemu-system-x86_64', '-machine', 'none', '-nodefaults', '-display',
     'none', '-qmp', f'unix:{qmp_path},server=on,wait=off',
     '-blockdev', f'driver=file,filename={src},node-name=srcf,'
                  'cache.direct=off,aio=threads',
     '-blockdev', 'driver=raw,file=srcf,node-name=src'],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        if os.path.exists(qmp_path):
            break
        time.sleep(0.1)
    s = socket.socket(socket.AF_UNIX)
    s.connect(qmp_path)
    f = s.makefile('rwb', buffering=0)
    json.loads(f.readline())
    events = []

    def cmd(name, **args):
        f.write((json.dumps({'execute': name, 'arguments': args}) + '\n')
                .encode())
        while True:
            r = json.loads(f.readline())
            if 'event' in r:
                events.append(r)
                continue
            if 'error' in r:
                raise RuntimeError(f'{name}: {r["error"]}')
            return r['return']

    def wait_event(name):
        while True:
            for e in events:
                if e['event'] == name:
                    events.remove(e)
                    return e
            r = json.loads(f.readline())
            if 'event' in r:
                events.append(r)

    cmd('qmp_capabilities')
    cmd('blockdev-add', **{'driver': 'nbd', 'node-name': 'dst',
                           'server': {'type': 'unix', 'path': nbd_sock}})
    t0 = time.time()
    cmd('blockdev-mirror', **{'job-id': 'm', 'device': 'src',
                              'target': 'dst', 'sync': 'full'})
    wait_event('BLOCK_JOB_READY')
    secs = time.time() - t0
    cmd('block-job-complete', device='m')
    wait_event('BLOCK_JOB_COMPLETED')
    print(f'{secs:.3f}')
finally:
    q.terminate()
    q.wait()
