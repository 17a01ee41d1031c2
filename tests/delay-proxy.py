#!/usr/bin/env python3
"""A TCP proxy that adds one-way latency: every chunk read from either
side is written to the other DELAY seconds after it arrived, in order.
Stands in for a distant site where the kernel has no netem.

usage: delay-proxy.py LISTEN_HOST LISTEN_PORT TO_HOST TO_PORT DELAY_S
Prints "ready" once listening; serves connections until killed."""
import collections
import socket
import sys
import threading
import time


def pump(src, dst, delay):
    queue = collections.deque()
    cond = threading.Condition()
    done = []

    def reader():
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            with cond:
                queue.append((time.monotonic() + delay, data))
                cond.notify()
            if not data:
                return

    threading.Thread(target=reader, daemon=True).start()
    while True:
        with cond:
            while not queue:
                cond.wait()
            due, data = queue.popleft()
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        if not data:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        try:
            dst.sendall(data)
        except OSError:
            return


def serve(conn, to, delay):
    try:
        up = socket.create_connection(to)
    except OSError:
        conn.close()
        return
    a = threading.Thread(target=pump, args=(conn, up, delay), daemon=True)
    b = threading.Thread(target=pump, args=(up, conn, delay), daemon=True)
    a.start()
    b.start()
    a.join()
    b.join()
    conn.close()
    up.close()


def main():
    host, port, to_host, to_port, delay = sys.argv[1:6]
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(8)
    print("ready", flush=True)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve, daemon=True,
                         args=(conn, (to_host, int(to_port)),
                               float(delay))).start()


if __name__ == "__main__":
    main()
