#!/usr/bin/env python3
"""Migrate a running guest with QEMU's own storage path, as libvirt's
'virsh migrate --live --copy-storage-all' does, and time it.

usage: qemu-migrate.py SRC-QMP DST-QMP DST-ADDR [MAX-DOWNTIME-MS]

The source QEMU runs the guest with its disk as node 'disk0'; the
destination QEMU was started with -S -incoming defer, an empty disk of
the same size as node 'disk0', and tls-creds-psk objects 'tls0'
(endpoint=client on the source, server on the destination).  Steps:
the destination exports disk0 over NBD (TLS); the source mirrors its
disk there (blockdev-mirror sync=full) until the job is ready, then
migrates RAM (TLS); once the source has sent everything (paused), it
completes the mirror (block-job-cancel of a ready job), the destination
stops its NBD server and resumes the guest.

Prints one JSON object: total_s (blockdev-mirror to RESUME on the
destination) and downtime_ms (STOP on the source to RESUME on the
destination, both from QMP event timestamps).
"""
import json
import socket
import sys
import time


class Qmp:
    def __init__(self, path, timeout=600):
        deadline = time.time() + 30
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        self.s.settimeout(timeout)
        self.f = self.s.makefile('rwb', buffering=0)
        self.events = []
        json.loads(self.f.readline())
        self.cmd('qmp_capabilities')

    def _read(self):
        r = json.loads(self.f.readline())
        if 'event' in r:
            self.events.append(r)
        return r

    def cmd(self, command, **args):
        msg = {'execute': command}
        if args:
            msg['arguments'] = args
        self.f.write((json.dumps(msg) + '\n').encode())
        while True:
            r = self._read()
            if 'event' in r:
                continue
            if 'error' in r:
                sys.exit(f"{command}: {r['error'].get('desc', r['error'])}")
            return r['return']

    def wait_event(self, name, pred=lambda e: True):
        """The event's wall-clock timestamp, in seconds."""
        while True:
            for e in self.events:
                if e['event'] == name and pred(e):
                    self.events.remove(e)
                    ts = e['timestamp']
                    return ts['seconds'] + ts['microseconds'] / 1e6
            self._read()


def main():
    src_path, dst_path, addr = sys.argv[1:4]
    max_downtime = int(sys.argv[4]) if len(sys.argv) > 4 else 300
    src, dst = Qmp(src_path), Qmp(dst_path)

    dst.cmd('nbd-server-start', **{'tls-creds': 'tls0'},
            addr={'type': 'inet', 'data': {'host': addr, 'port': '10809'}})
    dst.cmd('block-export-add', type='nbd', id='e0', **{'node-name': 'disk0'},
            writable=True, name='disk0')
    dst.cmd('migrate-set-parameters', **{'tls-creds': 'tls0'})
    dst.cmd('migrate-incoming', uri=f'tcp:{addr}:4444')

    t0 = time.time()
    src.cmd('blockdev-add', driver='nbd', **{'node-name': 'target0'},
            export='disk0', **{'tls-creds': 'tls0'},
            server={'type': 'inet', 'host': addr, 'port': '10809'})
    src.cmd('blockdev-mirror', **{'job-id': 'm0'}, device='disk0',
            target='target0', sync='full')
    src.wait_event('BLOCK_JOB_READY')
    ready = time.time() - t0
    # Unthrottled, as handoff's stream and libvirt's default are (QEMU's
    # own default caps a migration at 128 MiB/s).
    src.cmd('migrate-set-parameters', **{'downtime-limit': max_downtime,
                                        'max-bandwidth': 1 << 40,
                                        'tls-creds': 'tls0'})
    src.cmd('migrate', uri=f'tcp:{addr}:4444')
    stopped = src.wait_event('STOP')
    # Terminates: the migration completes or fails.
    while True:
        st = src.cmd('query-migrate')
        if st.get('status') in ('completed', 'failed', 'cancelled'):
            break
        time.sleep(0.005)
    if st['status'] != 'completed':
        sys.exit(f"migration {st['status']}: {st.get('error-desc', '')}")
    src.cmd('block-job-cancel', device='m0')
    src.wait_event('BLOCK_JOB_COMPLETED')
    # Terminates: the destination has loaded the whole stream.
    while dst.cmd('query-migrate').get('status') != 'completed':
        time.sleep(0.005)
    dst.cmd('nbd-server-stop')
    dst.cmd('cont')
    resumed = dst.wait_event('RESUME')
    print(json.dumps({
        'total_s': round(resumed - t0, 3),
        'disk_ready_s': round(ready, 3),
        'downtime_ms': round((resumed - stopped) * 1000, 1),
        'qemu_downtime_ms': st.get('downtime'),
    }))


main()
