#!/usr/bin/env python3
"""Speak handoff's framed channel by hand, to send bad input on purpose.

usage: chan-client.py SOCKET SERVICE ACTION [ARG]

SERVICE: a number (3 = mirror control).  ACTION:
  json TEXT       hello, then one frame holding TEXT; print the reply
  raw HEX         send HEX bytes with no hello; print "<hello, closed>"
                  if the server sent its hello and closed, else what came
  hello-raw HEX   hello, then HEX bytes; print what comes back
  badservice      hello with service+1000
Prints the reply frame (or "<closed>") and exits 0 unless the socket
could not be reached.
"""
import socket
import struct
import sys

MAGIC = 0x484e4446


def hello(service):
    return struct.pack('>IHHHHI', MAGIC, service, 1, 1, 0, 1 << 20)


def frame(b):
    return struct.pack('>I', len(b)) + b


def read_exact(s, n):
    out = b''
    while len(out) < n:
        c = s.recv(n - len(out))
        if not c:
            return None
        out += c
    return out


def read_frame(s):
    hdr = read_exact(s, 4)
    if hdr is None:
        return None
    (n,) = struct.unpack('>I', hdr)
    return read_exact(s, n)


def main():
    path, service, action = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    arg = sys.argv[4] if len(sys.argv) > 4 else ''
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(15)
    s.connect(path)
    try:
        if action == 'raw':
            # The write side stays open: the server must close because
            # of what it read, not because the input ended.
            s.sendall(bytes.fromhex(arg))
            data = b''
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            # The server speaks first: its hello and nothing more, then
            # the close, is a refusal; anything else is printed.
            (n,) = struct.unpack('>I', data[:4]) if len(data) >= 4 else (0,)
            if n == len(data) - 4 and data[4:8] == b'HNDF':
                print('<hello, closed>')
            else:
                print(repr(data))
            return
        if action == 'badservice':
            s.sendall(frame(hello(service + 1000)))
            read_frame(s)               # the server's hello
            r = read_frame(s)
            print('<closed>' if r is None else r.decode(errors='replace'))
            return
        s.sendall(frame(hello(service)))
        if read_frame(s) is None:
            print('<closed>')
            return
        if action == 'json':
            s.sendall(frame(arg.encode()))
        elif action == 'hello-raw':
            s.sendall(bytes.fromhex(arg))
            s.shutdown(socket.SHUT_WR)
        r = read_frame(s)
        print('<closed>' if r is None else r.decode(errors='replace'))
    except (ConnectionResetError, BrokenPipeError):
        print('<closed>')
    except socket.timeout:
        print('<no answer, not closed>')


if __name__ == '__main__':
    main()
