"""Empty, truncated, corrupt and undersized micrographs/movies: the seed's "FFTW plans cannot be created" and
AutoPick's ``std::bad_alloc`` ("Corrupt or blank image", "Corrupted micrographs").

The seed's own advice is ``ls -l *.mrc`` and looking for sizes that do not belong, or ``relion_image_handler
--stats`` on every file ("this can take quite a while"). Here: one ``os.scandir`` per directory for the sizes and
one 1024-byte read per MRC file for its header (TIFF/EER: 4 bytes), so thousands of files take well under a second.

Which files: ``--path GLOB`` if given; else the names in the micrograph/movie STAR files of the project's jobs
(``_rlnMicrographMovieName`` / ``_rlnMicrographName`` in Import's movies.star, MotionCorr's
corrected_micrographs.star, CtfFind's micrographs_ctf.star, ...); else ``Movies/`` and ``Micrographs/``.

Globs are matched by ``walk_glob``, not ``glob.glob``: symlinked directories are followed (``Movies/`` often is
one) but no directory is entered twice for the same part of the pattern, so a link loop (``ln -s . Movies/a``)
costs one extra entry, not an exponential walk. Only regular files are images: anything else (a FIFO, a socket,
a directory named ``*.mrc``) is reported as not a regular file and never opened (a FIFO would block).
"""

from __future__ import annotations

import fnmatch
import os
import stat
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..formats import mrc
from ..formats import star as starfile
from .finding import Finding

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
    """Image name -> where it was listed ("listed in Import/job001/movies.star": the first STAR file naming it)."""
    listed: dict[str, str] = {}
    for pattern in STAR_GLOBS:
        for star in sorted(project.glob(pattern)):
            try:
                if not star.is_file():  # a FIFO would block
                    continue
                text = star.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            source = f"listed in {star.relative_to(project)}"
            for name in names_in_star(text):
                listed.setdefault(os.path.normpath(name), source)
    return listed


def _has_magic(part: str) -> bool:
    return any(c in part for c in "*?[")


def _closure(parts: Sequence[str], states: Iterable[int]) -> frozenset[int]:
    """Add the states reached by letting each ``**`` match no directory at all."""
    out = set(states)
    todo = list(out)
    while todo:
        i = todo.pop()
        if i < len(parts) and parts[i] == "**" and i + 1 not in out:
            out.add(i + 1)
            todo.append(i + 1)
    return frozenset(out)


def _step(parts: Sequence[str], states: frozenset[int], name: str) -> frozenset[int]:
    """The pattern positions reached after one more path component ``name`` (glob's rules: no hidden matches)."""
    hidden = name.startswith(".")
    nxt: set[int] = set()
    for i in states:
        if i == len(parts):
            continue
        part = parts[i]
        if part == "**":
            if not hidden:
                nxt.add(i)
        elif not _has_magic(part):
            if name == part:
                nxt.add(i + 1)
        elif (not hidden or part.startswith(".")) and fnmatch.fnmatchcase(name, part):
            nxt.add(i + 1)
    return _closure(parts, nxt)


def walk_glob(root: Path, pattern: str) -> Iterator[str]:
    """The non-directories matching ``pattern`` (``**`` for any depth) below ``root``, as glob.glob(root_dir=root,
    recursive=True) names them, without its exponential walk through directory symlink loops.

    A directory is entered at most once per set of pattern positions (its (st_dev, st_ino) tells the same directory
    reached through a link), so the walk ends whatever links exist.
    """
    parts = [p for p in pattern.split("/") if p] or [""]
    start = Path("/") if pattern.startswith("/") else root
    prefix = "/" if pattern.startswith("/") else ""
    seen: set[tuple[int, int, frozenset[int]]] = set()
    stack: list[tuple[str, frozenset[int]]] = [("", _closure(parts, {0}))]
    while stack:
        rel, states = stack.pop()
        directory = start / rel if rel else start
        try:
            info = directory.stat()
        except OSError:
            continue
        live = frozenset(i for i in states if i < len(parts))  # (the end of the pattern matters for files only)
        key = (info.st_dev, info.st_ino, live)
        if key in seen:
            continue
        seen.add(key)
        literal = {parts[i] for i in live if not _has_magic(parts[i]) and parts[i] != "**"}
        entries: list[tuple[str, bool, bool]] = []  # (name, is a directory (following links), is a link)
        if len(literal) == len(live):  # only literal names wanted here: no listing (also finds "." and "..")
            for name in literal:
                if os.path.lexists(directory / name):
                    entries.append((name, os.path.isdir(directory / name), os.path.islink(directory / name)))
        else:
            try:
                with os.scandir(directory) as it:
                    for entry in it:
                        try:
                            entries.append((entry.name, entry.is_dir(), entry.is_symlink()))
                        except OSError:
                            entries.append((entry.name, False, True))
            except OSError:
                continue
        # Depth first, real directories before links, by name: a directory reached both ways is named by its real
        # path, whatever order the file system lists it in.
        for name, is_dir, _ in sorted(entries, key=lambda e: (e[2], e[0]), reverse=True):
            nxt = _step(parts, states, name)
            if not nxt:
                continue
            child = f"{rel}/{name}" if rel else name
            if len(parts) in nxt and not is_dir:
                yield prefix + child
            if is_dir and any(i < len(parts) for i in nxt):
                stack.append((child, nxt))


def glob_listed(project: Path, patterns: Sequence[str], only_images: bool, label: str) -> dict[str, str]:
    """Image name -> where it came from: ``label`` with the pattern in it ("matched by --path {}")."""
    listed: dict[str, str] = {}
    for pattern in patterns:
        for name in sorted(set(walk_glob(project, pattern))):
            if only_images and os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            listed.setdefault(os.path.normpath(name), label.format(pattern))
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
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a regular file (checked); never block on a swapped-in FIFO
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
        stats: dict[str, os.stat_result] = {}
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name in wanted:
                        try:
                            stats[entry.name] = entry.stat()  # follows symlinks (Movies/ often is one)
                        except OSError:
                            pass  # a dangling link: reported as missing below
        except OSError:
            pass
        for file in files:
            where = os.path.join(rel_dir, file)
            info = stats.get(file)
            if info is None:
                results.append(Scanned(where, None, mrc.Verdict("error", "missing (or a dangling link)")))
                continue
            if not stat.S_ISREG(info.st_mode):
                results.append(Scanned(where, None, mrc.Verdict("error", f"not a regular file ({_kind(info)})")))
                continue
            size = info.st_size
            ext = os.path.splitext(file)[1].lower()
            try:
                raw = _head(os.path.join(directory, file), ext) if size else b""
            except OSError as exc:
                results.append(Scanned(where, size, mrc.Verdict("error", f"unreadable: {exc.strerror}")))
                continue
            results.append(Scanned(where, size, judge(file, size, raw)))
    return results


def _kind(info: os.stat_result) -> str:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file"


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
        fix = "" if item.verdict.level == "ok" else f"{FIX_DAMAGED} ({sources.get(item.where, 'listed nowhere')})"
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
        sources, origin = glob_listed(project, paths, False, "matched by --path {}"), "the --path globs"
    else:
        sources, origin = star_listed(project), "the micrograph/movie STAR files"
        if not sources:
            label = "found by the default scan of {} (no --path given, no micrograph/movie STAR file)"
            sources = glob_listed(project, DEFAULT_GLOBS, True, label)
            origin = "Movies/ and Micrographs/"
    if not sources:
        return [Finding("ok", "images", f"no image files found in {origin}; use --path GLOB", check="images")], 0
    scanned = scan(project, sources)
    findings = findings_for(scanned, sources, verbose)
    bad = sum(1 for f in findings if f.level != "ok")
    summary = Finding(
        "ok", "images", f"{len(scanned)} file(s) from {origin} scanned, {bad} with problems", check="images"
    )
    return [summary, *findings], len(scanned)
