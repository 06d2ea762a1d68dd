"""How much particle data a RELION job reads: the count and box of a particles STAR file, cheaply.

RELION writes two shapes of particles file:

* 3.1, 4.0 and 5.0: a ``data_optics`` loop (``_rlnOpticsGroup``, ``_rlnImageSize``, optionally
  ``_rlnImageDimensionality``) and a ``data_particles`` loop whose rows name their ``_rlnOpticsGroup``
  (``Experiment::read`` in src/exp_model.cpp; ``getOpticsImageSize`` is what ml_optimiser_mpi.cpp compares with
  the GPU's box limit);
* 3.0: one loop (``data_`` or ``data_images``) without optics; the box is then in the MRC header of the images.

Reading must stay cheap at submit time: the particles loop's rows are counted, never split (1,000,000 particles in
0.26-0.35 s on the 2-core development machine, benchmarks/bench_star.py); only when optics groups have different
boxes is each row's optics group read (0.8 s). One MRC header is read when the STAR file does not give the box.
Damage is a ``ParticlesError`` with one line naming the file; the caller turns it into a warning, never a refusal by
itself.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import mrc
from .star import parse

FLOAT_BYTES = 4  # RELION holds and copies images as float: "MRC images are stored in floats!" (exp_model.cpp)
MRC_HEADER_BYTES = mrc.HEADER_BYTES
OPTICS, PARTICLES = "optics", "particles"
IMAGE_NAME = "rlnImageName"


class ParticlesError(Exception):
    """The particles file cannot be read or sized (one line, naming the file)."""


@dataclass(frozen=True, slots=True)
class OpticsGroup:
    number: int
    box: int  # pixels along x (= y)
    dimensionality: int  # 2 for single particles, 3 for subtomograms
    count: int  # particles in this group

    def image_bytes(self) -> int:
        """Bytes of one particle image as RELION holds it in memory (float)."""
        side: int = self.box
        return side * side * (side if self.dimensionality == 3 else 1) * FLOAT_BYTES

    def scratch_bytes(self) -> int:
        """Bytes one particle takes on scratch: copyParticlesToScratch's ``one_part_space`` (src/exp_model.cpp).

        NZYXSIZE * sizeof(float), plus the 1024-byte MRC header for 3D particles, which are written one file each.
        (The doubling for 3D CTF images is left out: the particles file alone does not say whether RELION will
        copy them, so the figure stays a lower bound.)
        """
        extra = MRC_HEADER_BYTES if self.dimensionality == 3 else 0
        return self.image_bytes() + extra


@dataclass(frozen=True, slots=True)
class Particles:
    path: str
    shape: str  # "3.0 single table" or "3.1+ optics groups"
    groups: tuple[OpticsGroup, ...]

    @property
    def count(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def box(self) -> int:
        """The largest box (what RELION compares with the GPU's limit: optics group 1's, all equal in practice)."""
        return max((g.box for g in self.groups), default=0)

    def image_bytes(self) -> int:
        """All particles as RELION holds them in RAM with --preread_images (each one an Image<float>)."""
        return sum(g.count * g.image_bytes() for g in self.groups)

    def scratch_bytes(self) -> int:
        """What copyParticlesToScratch writes to each node's scratch directory for all particles."""
        return sum(g.count * g.scratch_bytes() for g in self.groups)

    def describe(self) -> str:
        boxes = sorted({g.box for g in self.groups})
        box = " and ".join(f"{b} px" for b in boxes)
        return f"{self.count:,} particles of box {box} ({self.path})"


# ------------------------------------------------------------------------------------------- the STAR layout


@dataclass(frozen=True, slots=True)
class _Loop:
    name: str
    labels: tuple[str, ...]
    first_row: tuple[str, ...]
    rows: int
    offset: int  # byte offset of the first row
    start: int  # byte offset of the block's data_ line
    stop: int  # byte offset after the last row


# From a newline: a line that is no row (blank or a comment), or the next block. One scan over the rows finds both.
_NOT_A_ROW = re.compile(rb"\n(?:[ \t\r]*(?:#[^\n]*)?(?=\n)|data_)")


def _loops(data: bytes) -> Iterator[_Loop]:
    """Each loop of the file: its block name, labels, first row and row count.

    Headers are read line by line; a loop's rows are counted with one regex scan (for blank lines and the next
    ``data_``) and bytes.count, never split: that is what keeps 1,000,000 particles well under a second.
    """
    pos, size = 0, len(data)
    name, block, in_loop = "", 0, False
    labels: list[str] = []
    while pos < size:
        end = data.find(b"\n", pos)
        end = size if end < 0 else end
        start, line, pos = pos, data[pos:end].strip(), end + 1
        if not line or line.startswith(b"#"):
            continue
        if line.startswith(b"data_"):
            if in_loop:  # a loop without rows
                yield _Loop(name, tuple(labels), (), 0, start, block, start)
            name, block, in_loop = line[5:].decode(errors="replace").strip(), start, False
        elif line.startswith(b"loop_"):
            in_loop, labels = True, []
        elif in_loop and line.startswith(b"_"):
            labels.append(line.split()[0][1:].decode(errors="replace"))
        elif in_loop:
            stop, rows = _rows(data, start)
            first = tuple(line.decode(errors="replace").split())
            yield _Loop(name, tuple(labels), first, rows, start, block, stop)
            pos, in_loop = stop, False
    if in_loop:
        yield _Loop(name, tuple(labels), (), 0, size, block, size)


def _rows(data: bytes, start: int) -> tuple[int, int]:
    """(where the rows starting at ``start`` end, how many there are): lines that are neither blank nor comments."""
    blank, stop = 0, len(data)
    for match in _NOT_A_ROW.finditer(data, start):
        if match.group().startswith(b"\ndata_"):
            stop = match.start() + 1
            break
        blank += 1
    lines = data.count(b"\n", start, stop)
    last = data.rfind(b"\n", start, stop) + 1  # a last line without a newline (the end of the file)
    tail = data[last:stop].strip()
    if tail and not tail.startswith(b"#"):
        lines += 1
    return stop, lines - blank


def _column(loop: _Loop, label: str) -> int | None:
    return loop.labels.index(label) if label in loop.labels else None


def _int(value: str, what: str, path: str) -> int:
    try:
        return int(float(value))
    except ValueError:
        raise ParticlesError(f"{path}: {what} {value!r} is not a number") from None


# ------------------------------------------------------------------------------------------- reading


def read(path: str | os.PathLike[str], project_dir: str | os.PathLike[str] = ".") -> Particles:
    """Count and box of the particles in ``path`` (image paths in it are relative to ``project_dir``)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ParticlesError(f"cannot read the particles file {name}: {exc.strerror}") from None
    loops = {loop.name: loop for loop in _loops(data)}
    if OPTICS in loops and PARTICLES in loops:
        return _with_optics(name, data, loops[OPTICS], loops[PARTICLES], Path(project_dir))
    images = [loop for loop in loops.values() if IMAGE_NAME in loop.labels]
    if not images:
        raise ParticlesError(f"{name}: no loop with _{IMAGE_NAME}: not a particles file")
    loop = images[0]
    box = _header_box(name, loop, Path(project_dir))
    return Particles(name, "3.0 single table", (OpticsGroup(1, box, 2, loop.rows),))


def _with_optics(path: str, data: bytes, optics_loop: _Loop, particles: _Loop, project_dir: Path) -> Particles:
    """RELION 3.1+: boxes from data_optics; particles per group counted (read per row only if boxes differ)."""
    table = parse(_block_text(data, optics_loop)).block(OPTICS)
    if table is None or "rlnOpticsGroup" not in table.labels:
        raise ParticlesError(f"{path}: data_optics has no _rlnOpticsGroup column")
    numbers = [_int(v, "_rlnOpticsGroup", path) for v in table.column("rlnOpticsGroup")]
    sizes = table.column("rlnImageSize")
    dims = table.column("rlnImageDimensionality") or ["2"] * len(numbers)
    if len(sizes) != len(numbers):
        header = _header_box(path, particles, project_dir)
        sizes = [str(header)] * len(numbers)
    boxes = {
        n: (_int(s, "_rlnImageSize", path), _int(d, "_rlnImageDimensionality", path))
        for n, s, d in zip(numbers, sizes, dims, strict=False)
    }
    if len(set(boxes.values())) <= 1:
        counts = {numbers[0]: particles.rows} if numbers else {}
    else:
        counts = _count_by_group(path, data, particles)
    groups = tuple(OpticsGroup(n, boxes[n][0], boxes[n][1], counts.get(n, 0)) for n in numbers)
    if not groups:
        raise ParticlesError(f"{path}: data_optics lists no optics group")
    return Particles(path, "3.1+ optics groups", groups)


def _block_text(data: bytes, loop: _Loop) -> str:
    """The text of a small block (data_optics, a few lines per optics group), from its data_ line to the next."""
    end = data.find(b"\ndata_", loop.start)
    return data[loop.start : end if end >= 0 else len(data)].decode(errors="replace")


def _count_by_group(path: str, data: bytes, particles: _Loop) -> dict[int, int]:
    """Particles per optics group: every row's group column, found by one regex with possessive quantifiers (no
    backtracking, no Python loop per row: 1,000,000 rows in about 0.55 s)."""
    column = _column(particles, "rlnOpticsGroup")
    if column is None:
        raise ParticlesError(f"{path}: data_particles has no _rlnOpticsGroup column but data_optics has groups")
    nth = re.compile(rb"^[ \t]*+(?!#)(?:\S++[ \t]++){%d}(\S++)" % column, re.M)
    counts = Counter(nth.findall(data, particles.offset, particles.stop))
    return {_int(value.decode(errors="replace"), "_rlnOpticsGroup", path): n for value, n in counts.items()}


def _header_box(path: str, loop: _Loop, project_dir: Path) -> int:
    """The box from the MRC header of the first particle's stack (``N@stack.mrcs``, relative to the project)."""
    column = _column(loop, IMAGE_NAME)
    if column is None or len(loop.first_row) <= column:
        raise ParticlesError(f"{path}: no _{IMAGE_NAME} in the first row: cannot find the box")
    image = loop.first_row[column].split("@", 1)[-1]
    stack = project_dir / image
    try:
        with open(stack, "rb") as fh:
            header = mrc.parse_header(fh.read(MRC_HEADER_BYTES))
    except OSError as exc:
        raise ParticlesError(f"cannot read {stack} (first image of {path}): {exc.strerror}") from None
    if header is None or header.nx <= 0:
        raise ParticlesError(f"{stack} (first image of {path}): not a readable MRC header")
    return header.nx
