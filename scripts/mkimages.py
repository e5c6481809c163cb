#!/usr/bin/env python3
"""mkimages.py writes a tiny image folder for scripts/gpu-check.sh, with
Python's standard library only: N PNGs (default 24) in each of two class
subfolders, red and blue, each image its class's colour with noise, 40 to
72 pixels a side.

    python3 scripts/mkimages.py DIR [N]
"""
import os
import random
import struct
import sys
import zlib


def png(path, w, h, rows):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw)))
        f.write(chunk(b"IEND", b""))


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: mkimages.py DIR [N]")
    root = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) == 3 else 24
    rng = random.Random(1)
    for name, (r, g, b) in {"red": (220, 40, 30), "blue": (30, 60, 220)}.items():
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(n):
            w, h = rng.randint(40, 72), rng.randint(40, 72)
            rows = []
            for _ in range(h):
                row = []
                for _ in range(w):
                    d = rng.randint(0, 40)
                    row += [max(r - d, 0), min(g + d, 255), max(b - d, 0)]
                rows.append(row)
            png(os.path.join(root, name, "%02d.png" % i), w, h, rows)


if __name__ == "__main__":
    main()
