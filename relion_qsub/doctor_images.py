"""Empty, truncated, corrupt and undersized micrographs/movies: the seed's "FFTW plans cannot be created" and
AutoPick's ``std::bad_alloc`` ("Corrupt or blank image", "Corrupted micrographs").

The seed's own advice is ``ls -l *.mrc`` and looking for sizes that do not belong, or ``relion_image_handler
--stats`` on every file ("this can take quite a while"). Here: one ``os.scandir`` per directory for the sizes and
one 1024-byte read per MRC file for its header (TIFF/EER: 4 bytes), so thousands of files take well under a second.

Which files: ``--path GLOB`` if given; else the names in the micrograph/movie STAR files of the project's jobs
(``_rlnMicrographMovieName`` / ``_rlnMicrographName`` in Import's movies.star, MotionCorr's
corrected_micrographs.star, CtfFind's micrographs_ctf.star, ...); else ``Movies/`` and ``Micrographs/``.
"""

from __future__ import annotations

import glob
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import mrc, starfile
from .doctor import Finding

IMAGE_COLUMNS = ("rlnMicrographMovieName", "rlnMicrographName")
STAR_GLOBS = ("*/job[0-9]*/movies.star", "*/job[0-9]*/*micrographs*.star")
DEFAULT_GLOBS = ("Movies/**/*", "Micrographs/**/*")
IMAGE_EXTENSIONS = mrc.MRC_EXTENSIONS | mrc.TIFF_EXTENSIONS
OUTLIER_RATIO = 0.5  # smaller than half the median of its siblings
OUTLIER_MIN_SIBLINGS = 3  # a median of fewer files says nothing
FIX_DAMAGED = "copy it again from the source, or leave it out with a Select job (re-Import without it)"


@dataclass(frozen=True)
class Scanned:
    where: str  # as listed (relative to the project)
    size: int | None  # None: missing or unreadable
    verdict: mrc.Verdict


def names_in_star(text: str) -> list[str]:
    """The image names of the first loop holding a micrograph/movie column (``N@stack`` prefixes stripped)."""
    star = starfile.parse(text)
    for block in star.blocks:
        for column in IMAGE_COLUMNS:
            if column in block.labels:
                return [v.split("@", 1)[-1] for v in block.column(column)]
    return []


def star_listed(project: Path) -> dict[str, str]:
    """Image name -> the first STAR file (relative) that lists it."""
    listed: dict[str, str] = {}
    for pattern in STAR_GLOBS:
        for star in sorted(project.glob(pattern)):
            try:
                text = star.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            source = str(star.relative_to(project))
            for name in names_in_star(text):
                listed.setdefault(os.path.normpath(name), source)
    return listed


def glob_listed(project: Path, patterns: Sequence[str], only_images: bool) -> dict[str, str]:
    listed: dict[str, str] = {}
    for pattern in patterns:
        for name in sorted(glob.glob(pattern, root_dir=project, recursive=True)):
            if only_images and os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            if (project / name).is_dir():
                continue
            listed.setdefault(os.path.normpath(name), f"--path {pattern}")
    return listed


def judge(name: str, size: int, head: bytes) -> mrc.Verdict:
    ext = os.path.splitext(name)[1].lower()
    if ext in mrc.MRC_EXTENSIONS:
        return mrc.judge_mrc(size, head)
    if ext in mrc.TIFF_EXTENSIONS:
        return mrc.judge_tiff(size, head)
    return mrc.Verdict("error", "empty file (0 bytes)") if size == 0 else mrc.Verdict("ok", "size only")


def _head(path: str, ext: str) -> bytes:
    want = mrc.HEADER_BYTES if ext in mrc.MRC_EXTENSIONS else 4 if ext in mrc.TIFF_EXTENSIONS else 0
    if not want:
        return b""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, want)
    finally:
        os.close(fd)


def scan(project: Path, names: Iterable[str]) -> list[Scanned]:
    """Sizes from one scandir per directory, then one header read per non-empty file."""
    by_dir: dict[str, list[str]] = defaultdict(list)
    for name in names:
        parent, base = os.path.split(name)
        by_dir[parent].append(base)
    results: list[Scanned] = []
    for rel_dir, files in by_dir.items():
        directory = os.path.join(project, rel_dir)
        wanted = set(files)
        sizes: dict[str, int] = {}
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name in wanted:
                        try:
                            sizes[entry.name] = entry.stat().st_size  # follows symlinks (Movies/ often is one)
                        except OSError:
                            pass  # a dangling link: reported as missing below
        except OSError:
            pass
        for file in files:
            where = os.path.join(rel_dir, file)
            size = sizes.get(file)
            if size is None:
                results.append(Scanned(where, None, mrc.Verdict("error", "missing (or a dangling link)")))
                continue
            ext = os.path.splitext(file)[1].lower()
            try:
                raw = _head(os.path.join(directory, file), ext) if size else b""
            except OSError as exc:
                results.append(Scanned(where, size, mrc.Verdict("error", f"unreadable: {exc.strerror}")))
                continue
            results.append(Scanned(where, size, judge(file, size, raw)))
    return results


def outliers(scanned: Sequence[Scanned]) -> list[tuple[Scanned, int]]:
    """Files below OUTLIER_RATIO of the median size of their siblings (same directory, same extension).

    Only files otherwise judged ok are reported (an empty or truncated file already has its error line).
    """
    groups: dict[tuple[str, str], list[Scanned]] = defaultdict(list)
    for item in scanned:
        if item.size is not None:
            head, tail = os.path.split(item.where)
            groups[(head, os.path.splitext(tail)[1].lower())].append(item)
    found = []
    for items in groups.values():
        if len(items) < OUTLIER_MIN_SIBLINGS:
            continue
        median = int(statistics.median(i.size for i in items if i.size is not None))
        for item in items:
            if item.verdict.level != "error" and item.size is not None and item.size < OUTLIER_RATIO * median:
                found.append((item, median))
    return found


def findings_for(scanned: Sequence[Scanned], sources: dict[str, str], verbose: bool) -> list[Finding]:
    findings: list[Finding] = []
    for item in scanned:
        if item.verdict.level == "ok" and not verbose:
            continue
        fix = "" if item.verdict.level == "ok" else f"{FIX_DAMAGED} (listed in {sources.get(item.where, '?')})"
        findings.append(Finding(item.verdict.level, item.where, item.verdict.what, fix, "images"))
    for item, median in outliers(scanned):
        assert item.size is not None
        findings.append(
            Finding(
                "warning",
                item.where,
                f"size outlier: {item.size} bytes, {100 * item.size / median:.0f}% of the median {median} of its "
                f"siblings ({item.verdict.what})",
                f"check it with `relion_image_handler --stats --i {item.where}`; if damaged, {FIX_DAMAGED}",
                "images",
            )
        )
    return findings


def check(project: Path, paths: Sequence[str], verbose: bool = False) -> tuple[list[Finding], int]:
    """Findings and the number of files scanned."""
    if paths:
        sources, origin = glob_listed(project, paths, only_images=False), "the --path globs"
    else:
        sources, origin = star_listed(project), "the micrograph/movie STAR files"
        if not sources:
            sources, origin = glob_listed(project, DEFAULT_GLOBS, only_images=True), "Movies/ and Micrographs/"
    if not sources:
        return [Finding("ok", "images", f"no image files found in {origin}; use --path GLOB", check="images")], 0
    scanned = scan(project, sources)
    findings = findings_for(scanned, sources, verbose)
    bad = sum(1 for f in findings if f.level != "ok")
    summary = Finding(
        "ok", "images", f"{len(scanned)} file(s) from {origin} scanned, {bad} with problems", check="images"
    )
    return [summary, *findings], len(scanned)
