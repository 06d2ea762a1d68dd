"""Benchmark (not a test): how fast ``relion-qsub doctor`` scans micrographs/movies (header reads only).

Builds a project with N synthetic MRC movies (default 5,000; 4096x4096x40 float16 headers, written sparse so each
looks 1.3 GB to ``ls -l`` like the seed's listing but takes no disk), 1% of them damaged (empty, truncated, wrong
magic, short), listed in an Import ``movies.star``. Measures, warm page cache (medians of R runs):

- the scan alone (doctor_images.check: STAR read, one scandir per directory, one 1024-byte read per file): files/s;
- the whole CLI (``bin/relion-qsub doctor PROJECT``), start-up included;
- for scale, the seed's other advice, ``relion_image_handler --stats`` per file, on small 512x512 images
  (it reads every voxel; on real 1.3 GB movies it is far slower still).

Run: ``.venv/bin/python benchmarks/bench_doctor.py [N] [R]``.
"""

from __future__ import annotations

import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from summary import figure  # noqa: E402

from relion_qsub.doctor import images as doctor_images  # noqa: E402


def header(nx: int, ny: int, nz: int, mode: int) -> bytes:
    raw = bytearray(1024)
    struct.pack_into("<4i", raw, 0, nx, ny, nz, mode)
    raw[208:216] = b"MAP \x44\x44\x00\x00"
    return bytes(raw)


def write(path: Path, nx: int, ny: int, nz: int, mode: int = 12, cut: int = 0) -> None:
    bpv = {0: 1, 1: 2, 2: 4, 6: 2, 12: 2}[mode]
    with open(path, "wb") as fh:
        fh.write(header(nx, ny, nz, mode))
        fh.truncate(1024 + nx * ny * nz * bpv - cut)  # sparse: no data blocks written


def build(root: Path, n: int) -> None:
    movies = root / "Movies"
    movies.mkdir()
    names = []
    for i in range(n):
        path = movies / f"Data_{i:06d}.mrc"
        kind = i % 100
        if kind == 23:
            path.touch()  # the seed's 0-byte Data_..._000023.mrc
        elif kind == 25:
            write(path, 4096, 4096, 40, cut=787206144)  # the seed's 555008000-byte one
        elif kind == 50:
            path.write_bytes(b"\0" * 4096)
        elif kind == 75:
            write(path, 4096, 4096, 12)  # consistent but short: an outlier
        else:
            write(path, 4096, 4096, 40)
        names.append(f"Movies/{path.name}")
    job = root / "Import" / "job001"
    job.mkdir(parents=True)
    rows = "".join(f"{name} 1\n" for name in names)
    (job / "movies.star").write_text(
        "data_movies\n\nloop_\n_rlnMicrographMovieName #1\n_rlnOpticsGroup #2\n" + rows,
    )


def median_time(fn: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    with tempfile.TemporaryDirectory(prefix="bench-doctor-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        build(root, n)
        print(f"built {n} sparse movies in {time.perf_counter() - start:.2f} s under {root}")

        findings, scanned = doctor_images.check(root, [])
        bad = sum(1 for f in findings if f.level != "ok")
        assert scanned == n, scanned
        print(f"findings: {bad} problem lines (expected {4 * (n // 100)})")

        scan = median_time(lambda: doctor_images.check(root, []), repeats)
        print(f"scan (STAR + scandir + headers): {scan * 1000:.1f} ms for {n} files = {n / scan:,.0f} files/s")
        figure("doctor", f"image header scan, {n} files", n / scan, "files/s", "", None)

        cli = [str(ROOT / "bin" / "relion-qsub"), "doctor", str(root)]
        runs = max(3, repeats // 2)
        whole = median_time(lambda: subprocess.run(cli, capture_output=True, check=False), runs)
        print(f"whole CLI (python start-up included): {whole * 1000:.0f} ms = {n / whole:,.0f} files/s")

        handler = shutil.which("relion_image_handler")
        if handler:
            small = root / "small"
            small.mkdir()
            files = []
            for i in range(10):
                path = small / f"m{i}.mrc"
                with open(path, "wb") as fh:
                    fh.write(header(512, 512, 1, 2))
                    fh.write(struct.pack("<f", 1.0) * 512 * 512)
                files.append(path)
            start = time.perf_counter()
            for path in files:
                subprocess.run([handler, "--stats", "--i", str(path)], capture_output=True, check=False)
            per = (time.perf_counter() - start) / len(files)
            print(
                f"relion_image_handler --stats: {per * 1000:.0f} ms per 1 MB image = {1 / per:,.0f} files/s "
                f"({n * per:.0f} s for {n} files even at this size)"
            )


if __name__ == "__main__":
    main()
