#!/usr/bin/env python3
"""A TCP relay in front of one etcd member that makes it answer late,
or not at all, as a loaded or leaderless member does.

  slow-member.py LISTEN_PORT TARGET_HOST:PORT CONTROL_FILE

Listens on 127.0.0.1:LISTEN_PORT and relays each connection to TARGET.
What a client sends waits, before it is passed on, for what
CONTROL_FILE says when the connection's first bytes arrive: a number
of milliseconds, or 'hang' (held while the file says so).  The
member's answers pass at once.  A missing or empty file is 0.
"""
import asyncio
import sys


def control(path):
    try:
        with open(path) as f:
            return f.read().strip() or "0"
    except OSError:
        return "0"


async def hold(path):
    c = control(path)
    while c == "hang":
        await asyncio.sleep(0.05)
        c = control(path)
    if int(c) > 0:
        await asyncio.sleep(int(c) / 1000)


async def pipe(reader, writer, path):
    first = True
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if path and (first or control(path) == "hang"):
                await hold(path)
            first = False
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main():
    port = int(sys.argv[1])
    host, tport = sys.argv[2].rsplit(":", 1)
    path = sys.argv[3]

    async def client(cr, cw):
        try:
            tr, tw = await asyncio.open_connection(host, int(tport))
        except OSError:
            cw.close()
            return
        await asyncio.gather(pipe(cr, tw, path), pipe(tr, cw, None))

    server = await asyncio.start_server(client, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
