#!/usr/bin/env python3
"""Print a qemu-io command script of random guest I/O for mirror tests.

usage: gen-io-script.py SIZE COUNT SEED

Writes of 512 B to 1 MiB at unaligned offsets, write-zeroes (some
allowed to unmap), discards, flushes, and batches of overlapping
asynchronous writes, all inside [0, SIZE).
"""
import random
import sys

size, count, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)


def span():
    length = rng.choice([512, 4096, 65536, rng.randint(1, 1 << 20)])
    offset = rng.randrange(0, size - length)
    return offset, length


for i in range(count):
    op = rng.random()
    off, ln = span()
    pat = rng.randrange(1, 256)
    if op < 0.55:
        print(f"write -P {pat} {off} {ln}")
    elif op < 0.68:
        print(f"write -z{' -u' if rng.random() < 0.5 else ''} {off} {ln}")
    elif op < 0.78:
        print(f"discard {off} {ln}")
    elif op < 0.85:
        print("flush")
    else:
        # Overlapping asynchronous writes: the order they land in must be
        # the same on the source and on every destination.
        base = off
        for j in range(4):
            o = min(base + rng.randrange(0, 8192), size - ln)
            print(f"aio_write -P {rng.randrange(1, 256)} {o} {ln}")
        print("aio_flush")
print("flush")
