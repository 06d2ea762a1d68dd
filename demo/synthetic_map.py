"""Write a small synthetic density map for the demo, without numpy (the demo must run on a bare install).

The map is two soft Gaussian blobs of different size and height, off-centre, so that its 2D projections differ
with orientation and a 2-class Class2D has something to separate. `demo/run` projects it into particles with
relion_project (the approach of tests/test_launch_cluster.py).

    python3 demo/synthetic_map.py ref.mrc [--size 32] [--angpix 3]
"""

from __future__ import annotations

import argparse
import math
import struct
from array import array
from pathlib import Path


def density(size: int) -> array[float]:
    """size^3 float32 voxels, x fastest (MRC order)."""
    values: array[float] = array("f")
    c = size / 2
    for z in range(size):
        for y in range(size):
            for x in range(size):
                d1 = (x - c + 4) ** 2 + (y - c) ** 2 + (z - c) ** 2
                d2 = (x - c - 5) ** 2 + (y - c + 3) ** 2 + (z - c - 2) ** 2
                values.append(math.exp(-d1 / 18.0) + 0.6 * math.exp(-d2 / 10.0))
    return values


def mrc_bytes(values: array[float], size: int, angpix: float) -> bytes:
    """A mode-2 (float32) MRC2014 file: the 1024-byte header, then the voxels (little-endian, as on x86)."""
    header = bytearray(1024)
    length = size * angpix
    # nx ny nz, mode, nxstart nystart nzstart, mx my mz, cell lengths, cell angles, axis order, dmin dmax dmean
    struct.pack_into(
        "<3i i 3i 3i 3f 3f 3i 3f",
        header,
        0,
        *(size, size, size),
        2,
        *(0, 0, 0),
        *(size, size, size),
        *(length, length, length),
        *(90.0, 90.0, 90.0),
        *(1, 2, 3),
        min(values),
        max(values),
        sum(values) / len(values),
    )
    header[208:212] = b"MAP "
    header[212:216] = bytes([0x44, 0x44, 0, 0])  # machine stamp: little-endian
    return bytes(header) + values.tobytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a synthetic two-blob density map (MRC, float32).")
    parser.add_argument("out", type=Path, help="the .mrc file to write")
    parser.add_argument("--size", type=int, default=32, help="box size in pixels (default 32)")
    parser.add_argument("--angpix", type=float, default=3.0, help="pixel size in Å (default 3)")
    args = parser.parse_args(argv)
    args.out.write_bytes(mrc_bytes(density(args.size), args.size, args.angpix))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
