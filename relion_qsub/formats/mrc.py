"""A tiny MRC header reader and size judge: no numpy, no mrcfile, just the 1024-byte header and ``struct``.

MRC2014 (https://www.ccpem.ac.uk/mrc_format/mrc2014.php): words 1-4 are NX, NY, NZ, MODE (32-bit ints); word 24
(byte 92) NSYMBT, the extended header length; bytes 208-211 the "MAP " id; bytes 212-215 the machine stamp
(0x44 0x44/0x41 little-endian, 0x11 0x11 big-endian). The data follow header and extended header:
``1024 + NSYMBT + NX*NY*NZ*bytes_per_voxel``; mode 101 packs two 4-bit voxels per byte, each row padded to a byte.

RELION reads images by their header; a file shorter than its header says, or with zeros for a header, is what
gives the seed's "FFTW plans cannot be created" and AutoPick's ``std::bad_alloc``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER_BYTES = 1024

# MODE -> bytes per voxel (mode 101 is handled apart: half a byte).
BYTES_PER_VOXEL: dict[int, int] = {
    0: 1,  # int8
    1: 2,  # int16
    2: 4,  # float32
    3: 4,  # complex int16
    4: 8,  # complex float32
    6: 2,  # uint16
    12: 2,  # float16 (MRC2014 update, written by e.g. MotionCor2 / RELION 4 --float16)
}
MODE_4BIT = 101

# Extensions RELION treats as MRC (Image::read dispatches on the extension).
MRC_EXTENSIONS = frozenset({".mrc", ".mrcs", ".map", ".st", ".rec"})
TIFF_EXTENSIONS = frozenset({".tif", ".tiff", ".eer"})  # EER files are TIFF containers
TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")  # classic TIFF and BigTIFF, both byte orders


@dataclass(frozen=True)
class Header:
    nx: int
    ny: int
    nz: int
    mode: int
    nsymbt: int
    map_id: bytes
    little_endian: bool

    @property
    def has_map_id(self) -> bool:
        return self.map_id == b"MAP "

    def data_bytes(self) -> int | None:
        """Bytes of voxel data the header promises, None for an unknown mode."""
        if self.mode == MODE_4BIT:
            return ((self.nx + 1) // 2) * self.ny * self.nz
        bpv = BYTES_PER_VOXEL.get(self.mode)
        return None if bpv is None else self.nx * self.ny * self.nz * bpv

    def expected_size(self) -> int | None:
        data = self.data_bytes()
        return None if data is None else HEADER_BYTES + self.nsymbt + data


def _byte_order(raw: bytes) -> str:
    stamp = raw[212]
    if stamp == 0x44:
        return "<"
    if stamp == 0x11:
        return ">"
    # No (or a foreign) machine stamp: old writers. A sane MODE is a small number in the right byte order.
    (mode,) = struct.unpack_from("<i", raw, 12)
    return "<" if 0 <= mode < 0x10000 else ">"


def parse_header(raw: bytes) -> Header | None:
    """The header fields, or None when fewer than 1024 bytes are given."""
    if len(raw) < HEADER_BYTES:
        return None
    order = _byte_order(raw)
    nx, ny, nz, mode = struct.unpack_from(order + "4i", raw, 0)
    (nsymbt,) = struct.unpack_from(order + "i", raw, 92)
    return Header(nx, ny, nz, mode, nsymbt, bytes(raw[208:212]), order == "<")


@dataclass(frozen=True)
class Verdict:
    level: str  # "ok", "warning", "error"
    what: str


def judge_mrc(size: int, raw: bytes) -> Verdict:
    """Judge one MRC file from its size and its first (up to) 1024 bytes."""
    if size == 0:
        return Verdict("error", "empty file (0 bytes)")
    header = parse_header(raw)
    if header is None:
        return Verdict("error", f"truncated: {size} bytes, shorter than the {HEADER_BYTES}-byte MRC header")
    if not any(raw[:HEADER_BYTES]):
        return Verdict("error", "the header is all zeros (a hole left by an interrupted copy?)")
    if header.nx <= 0 or header.ny <= 0 or header.nz <= 0 or header.nsymbt < 0:
        label = "" if header.has_map_id else "not an MRC file: "
        return Verdict(
            "error", f"{label}impossible header: nx={header.nx} ny={header.ny} nz={header.nz} nsymbt={header.nsymbt}"
        )
    expected = header.expected_size()
    if expected is None:
        label = "" if header.has_map_id else "not an MRC file (no 'MAP ' id at byte 208): "
        return Verdict("error", f"{label}unknown MRC mode {header.mode}")
    shape = f"{header.nx}x{header.ny}x{header.nz} mode {header.mode}"
    if size < expected:
        missing = expected - size
        return Verdict(
            "error",
            f"truncated: {size} of {expected} bytes the header promises ({shape}); "
            f"{missing} bytes ({100 * missing / expected:.0f}%) missing",
        )
    if not header.has_map_id:
        return Verdict("warning", f"no 'MAP ' id at byte 208 (found {header.map_id!r}); size matches {shape}")
    if size > expected:
        return Verdict("warning", f"{size - expected} bytes more than the header promises ({shape})")
    return Verdict("ok", shape)


def judge_tiff(size: int, raw: bytes) -> Verdict:
    """TIFF/EER: only the size and the 4-byte magic (the frame directory is not walked)."""
    if size == 0:
        return Verdict("error", "empty file (0 bytes)")
    if raw[:4] not in TIFF_MAGIC:
        return Verdict("error", f"not a TIFF/EER file: starts with {raw[:4]!r}, not II*/MM* (or BigTIFF II+/MM+)")
    return Verdict("ok", "TIFF")
