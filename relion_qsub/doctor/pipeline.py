"""The project's ``default_pipeline.star`` and ``.relion_lock`` (the seed's last two project-level problems).

What RELION 3.1.3 does, verified with ``relion_pipeliner --addJob`` on damaged copies:

- a nodes loop without ``_rlnPipeLineNodeType`` -> "PipeLine::read: cannot find name or type in pipeline_nodes
  table" (the seed's message; pipeliner.cpp checks each table's columns only when it has rows);
- a row with more or fewer values than the loop has labels -> "Error in line: ...";
- no ``data_pipeline_general`` -> the job counter stays 1 and the next job clashes with job001;
- an empty file is read as a pipeline without jobs: RELION silently numbers the next job job001 again;
- every failed read leaves ``.relion_lock/`` behind, and the next RELION then waits for it forever
  ("WARNING: trying to read pipeline.star, but directory .relion_lock exists").

RELION writes a copy of the whole pipeline into every new job dir (``<Type>/jobNNN/default_pipeline.star``): the
newest readable copy is the seed's fix ("copying a default_pipeline.star file from the latest run job"). A copy whose
job counter fits the job dirs on disk is preferred; otherwise the counter of the restored file is raised above the
highest job number on disk, so RELION does not reuse the number of an existing job.

A lock is called stale only when it is older than LOCK_STALE_SECONDS and no RELION process of this user runs in
the project on this host; a RELION GUI or pipeliner on another node cannot be seen from here.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..formats import star as starfile
from ..fsio import atomic_write
from .finding import Finding

PIPELINE = "default_pipeline.star"
LOCK = ".relion_lock"
LOCK_STALE_SECONDS = 600  # younger: RELION (maybe on another host) may be using it or have just let go
_JOB_NAME = re.compile(r"(?:^|/)job(\d+)/?$")

# The columns PipeLine::read needs per table (RELION 4/5 write *Label variants of type and status).
# Each entry: (table, RELION's message when missing, alternatives per required column).
REQUIRED: tuple[tuple[str, str, tuple[tuple[str, ...], ...]], ...] = (
    (
        "pipeline_nodes",
        "cannot find name or type in pipeline_nodes table",
        (("rlnPipeLineNodeName",), ("rlnPipeLineNodeType", "rlnPipeLineNodeTypeLabel")),
    ),
    (
        "pipeline_processes",
        "cannot find name or type in pipeline_processes table",
        (
            ("rlnPipeLineProcessName",),
            ("rlnPipeLineProcessAlias",),
            ("rlnPipeLineProcessType", "rlnPipeLineProcessTypeLabel"),
            ("rlnPipeLineProcessStatus", "rlnPipeLineProcessStatusLabel"),
        ),
    ),
    (
        "pipeline_input_edges",
        "cannot find procname or fromnodename in pipeline_edges table",
        (("rlnPipeLineEdgeProcess",), ("rlnPipeLineEdgeFromNode",)),
    ),
    (
        "pipeline_output_edges",
        "cannot find procname or tonodename in pipeline_edges table",
        (("rlnPipeLineEdgeProcess",), ("rlnPipeLineEdgeToNode",)),
    ),
)


@dataclass(frozen=True)
class Problem:
    level: str
    what: str


def job_number(name: str) -> int | None:
    match = _JOB_NAME.search(name.rstrip("/") + "/")
    return int(match.group(1)) if match else None


def _job_counter(star: starfile.Star) -> tuple[int | None, list[Problem]]:
    """_rlnPipeLineJobCounter of data_pipeline_general, the number RELION gives the next job."""
    general = star.block("pipeline_general")
    if general is None:
        return None, [
            Problem(
                "error", "no data_pipeline_general block: RELION's job counter restarts at 1 and clashes with job001"
            )
        ]
    raw = general.pairs.get("rlnPipeLineJobCounter")
    if raw is None or not raw.lstrip("-").isdigit() or int(raw) < 0:
        return None, [Problem("error", f"bad or missing _rlnPipeLineJobCounter ({raw!r}) in data_pipeline_general")]
    return int(raw), []


def _missing_columns(star: starfile.Star) -> list[Problem]:
    """The columns without which RELION's PipeLine::read gives up (REQUIRED), per non-empty table."""
    problems = []
    for table, message, columns in REQUIRED:
        block = star.block(table)
        if block is None or not block.rows:
            continue
        missing = [alts[0] for alts in columns if not any(a in block.labels for a in alts)]
        if missing:
            cols = ", ".join("_" + m for m in missing)
            problems.append(Problem("error", f"RELION: 'PipeLine::read: {message}' (data_{table} lacks {cols})"))
    return problems


def judge_pipeline(text: str, disk_jobs: Iterable[str] = ()) -> list[Problem]:
    """What RELION would make of this pipeline text; ``disk_jobs`` are the ``<Type>/jobNNN`` dirs that exist."""
    disk = sorted(disk_jobs)
    star = starfile.parse(text)
    problems: list[Problem] = []
    if not star.blocks:
        if disk:
            return [
                Problem(
                    "error",
                    f"no pipeline tables ({len(text)} bytes): RELION reads it as a project without jobs and numbers "
                    f"the next job job001 again, beside the {len(disk)} job dir(s) on disk",
                )
            ]
        return [Problem("warning", "no pipeline tables: an empty project")]
    for line, message in star.problems:
        problems.append(Problem("error", f"line {line}: {message} (RELION: 'Error in line')"))
    counter, counter_problems = _job_counter(star)
    problems += counter_problems + _missing_columns(star)
    processes = star.block("pipeline_processes")
    names = processes.column("rlnPipeLineProcessName") if processes else []
    numbers = [n for n in (job_number(name) for name in names + disk) if n is not None]
    if counter is not None and numbers and counter <= max(numbers):
        problems.append(
            Problem(
                "error",
                f"_rlnPipeLineJobCounter is {counter} but job{max(numbers):03d} exists: RELION would reuse the "
                f"number of an existing job",
            )
        )
    listed = {name.rstrip("/") for name in names}
    unlisted = [d for d in disk if d not in listed]
    if names and unlisted:
        problems.append(
            Problem(
                "warning",
                f"{len(unlisted)} job dir(s) on disk missing from the pipeline (first: {unlisted[0]}); a truncated "
                "file loses the last jobs",
            )
        )
    if names and star.block("pipeline_nodes") is None:
        problems.append(Problem("warning", "processes but no data_pipeline_nodes table: the file may be truncated"))
    return problems


def disk_jobs(project: Path) -> list[str]:
    """``<Type>/jobNNN`` dirs of the project (real dirs only: RELION's aliases are symlinks to them)."""
    found = []
    for path in project.glob("*/job[0-9]*"):
        if job_number(path.name) is not None and path.is_dir() and not path.is_symlink():
            found.append(f"{path.parent.name}/{path.name}")
    return sorted(found)


def _read(path: Path) -> str | None:
    """The text of a regular file; None when missing, unreadable or not a regular file (a FIFO would block)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


_COUNTER_LINE = re.compile(rb"^([ \t]*_rlnPipeLineJobCounter[ \t]+)(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Restore:
    """A job copy to put in place of the project's pipeline file, and the job counter it needs, if raised."""

    source: Path
    counter: int  # the copy's _rlnPipeLineJobCounter
    raise_to: int | None = None  # above the highest job number on disk, when the copy's counter is not
    highest: str = ""  # the job dir with that number

    def counter_note(self, verb: str) -> str:
        """Empty, or "; raise(d) its _rlnPipeLineJobCounter from 2 to 3 (Import/job002 exists)"."""
        if self.raise_to is None:
            return ""
        return f"; {verb} its _rlnPipeLineJobCounter from {self.counter} to {self.raise_to} ({self.highest} exists)"


def _counter(text: str) -> int | None:
    general = starfile.parse(text).block("pipeline_general")
    raw = general.pairs.get("rlnPipeLineJobCounter") if general else None
    return int(raw) if raw is not None and raw.isdigit() else None


def best_copy(project: Path, jobs: list[str]) -> Restore | None:
    """The newest ``<Type>/jobNNN/default_pipeline.star`` RELION can read, preferring one consistent with the job
    dirs on disk; for any other, the counter raise that makes it consistent. None when no copy is readable."""
    dated = []
    for job in jobs:
        copy = project / job / PIPELINE
        try:
            dated.append((copy.stat().st_mtime, job_number(job) or 0, copy))
        except OSError:
            continue
    readable: list[tuple[Path, str]] = []
    for _, _, copy in sorted(dated, reverse=True):
        text = _read(copy)
        if text is None or not starfile.parse(text).blocks:
            continue
        if any(p.level == "error" for p in judge_pipeline(text, [])):
            continue
        if not any(p.level == "error" for p in judge_pipeline(text, jobs)):
            return Restore(copy, _counter(text) or 0)
        readable.append((copy, text))
    if not readable:
        return None
    copy, text = readable[0]
    counter = _counter(text) or 0
    numbered = [(job_number(job) or 0, job) for job in jobs]
    highest, name = max(numbered) if numbered else (0, "")
    return Restore(copy, counter, highest + 1, name) if counter <= highest else Restore(copy, counter)


def restore_pipeline(project: Path, restore: Restore) -> str:
    """Back the broken file up (never deleted), then put the copy (counter raised if needed) in place atomically."""
    target = project / PIPELINE
    data = restore.source.read_bytes()  # bytes: the copy stays byte for byte, but for the counter
    if restore.raise_to is not None:
        value = b"%d" % restore.raise_to
        data, n = _COUNTER_LINE.subn(lambda m: m.group(1) + value, data, count=1)
        if n != 1:  # best_copy read a counter from this file: it changed since
            raise OSError(0, "its _rlnPipeLineJobCounter line changed while the doctor ran", str(restore.source))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup_note = ""
    if target.exists():
        backup = target.with_name(f"{PIPELINE}.broken-{stamp}")
        shutil.copy2(target, backup)
        backup_note = f"; the broken file is kept as {backup.name}"
    atomic_write(target, data)
    return f"copied {restore.source.relative_to(project)} to {PIPELINE}{restore.counter_note('raised')}{backup_note}"


# ---- the lock -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    pid: int
    name: str


def relion_processes(project: Path) -> list[Holder]:
    """This user's live RELION processes (name relion*) whose working directory is the project."""
    import psutil  # lazily: only the doctor needs it

    here = os.path.realpath(project)
    uid = os.getuid()
    holders = []
    for proc in psutil.process_iter(["pid", "name", "uids", "cwd"]):
        info = proc.info
        name = info.get("name") or ""
        uids = info.get("uids")
        if not name.startswith("relion") or uids is None or uids.real != uid or proc.pid == os.getpid():
            continue
        cwd = info.get("cwd")
        if cwd and os.path.realpath(cwd) == here:
            holders.append(Holder(proc.pid, name))
    return holders


def judge_lock(age_seconds: float, holders: list[Holder]) -> Problem:
    age = _age(age_seconds)
    if holders:
        who = ", ".join(f"{h.name} (pid {h.pid})" for h in holders)
        return Problem("warning", f"held {age} by a live RELION in this project: {who}")
    if age_seconds < LOCK_STALE_SECONDS:
        return Problem(
            "warning",
            f"made {age} ago: in use or just left; check again later (only this host's processes were checked: "
            "no RELION of yours runs in this project here, but one on another host cannot be seen)",
        )
    return Problem(
        "error",
        f"stale: made {age} ago and no RELION process of yours runs in this project on this host (only this host's "
        "processes were checked); RELION waits for it forever ('trying to read pipeline.star, but directory "
        ".relion_lock exists')",
    )


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def remove_lock(project: Path) -> str:
    """Remove a stale lock made by RELION (only ``lock_*`` files inside); anything else is renamed, not deleted."""
    lock = project / LOCK
    if not lock.is_dir() or lock.is_symlink():
        moved = lock.with_name(f"{LOCK}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
        os.rename(lock, moved)
        return f"renamed it to {moved.name} (not a plain directory)"
    entries = list(lock.iterdir())
    if all(e.name.startswith("lock_") and e.is_file() and not e.is_symlink() for e in entries):
        for entry in entries:
            entry.unlink()
        lock.rmdir()
        return "removed it"
    moved = lock.with_name(f"{LOCK}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
    os.rename(lock, moved)
    return f"renamed it to {moved.name} (it holds files RELION does not write)"


# ---- the check ------------------------------------------------------------------------------------------------


def lock_age(lock: Path, now: float) -> float:
    """Seconds since the lock (or a file in it) last changed; 0 when that cannot be told."""
    try:
        newest = lock.lstat().st_mtime
        if lock.is_dir() and not lock.is_symlink():
            for entry in os.scandir(lock):
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    except OSError:
        return 0.0
    return max(0.0, now - newest)


def _lock_findings(project: Path) -> tuple[list[Finding], list[Holder], bool]:
    """The lock's finding, the RELION processes holding it, and whether it is busy (not yet stale): then the pipeline
    file is left alone too."""
    lock = project / LOCK
    if not os.path.lexists(lock):
        return [Finding("ok", LOCK, "no lock", check="lock")], [], False
    holders = relion_processes(project)
    verdict = judge_lock(lock_age(lock, time.time()), holders)
    if verdict.level == "error":
        fix = "if no RELION runs in this project on any host, remove it (`rm -rf .relion_lock`, or --fix)"
        return [Finding("error", LOCK, verdict.what, fix, "lock", repair=lambda: remove_lock(project))], holders, False
    fix = (
        "close that RELION before changing the project"
        if holders
        else f"run the doctor again later: a lock older than {LOCK_STALE_SECONDS // 60} min is called stale"
    )
    return [Finding("warning", LOCK, verdict.what, fix, "lock")], holders, True


def _pipeline_fix(
    project: Path, jobs: list[str], holders: list[Holder], lock_busy: bool
) -> tuple[str, Callable[[], str] | None]:
    """How to repair a broken pipeline file: from the newest readable job copy, by --fix only when nothing holds it."""
    best = best_copy(project, jobs)
    if best is None:
        return "no readable job copy (<Type>/jobNNN/default_pipeline.star) found; rebuild it by hand", None
    source, note = best.source.relative_to(project), best.counter_note("raise")
    if holders:
        return f"close RELION (pid {holders[0].pid}), then copy {source} over it{note}", None
    if lock_busy:
        return f"when {LOCK} is gone or stale, copy {source} over it{note} (--fix; backup kept)", None
    return f"copy the newest readable job copy {source} over it{note} (--fix; backup kept)", _restorer(project, best)


def check(project: Path) -> list[Finding]:
    findings, holders, lock_busy = _lock_findings(project)

    jobs = disk_jobs(project)
    path = project / PIPELINE
    text = _read(path)
    if text is None:
        if jobs:
            problems = [Problem("error", f"missing or unreadable, but {len(jobs)} job dir(s) exist")]
        else:
            return [
                *findings,
                Finding("warning", PIPELINE, "missing: not a RELION project directory?", check="pipeline"),
            ]
    else:
        problems = judge_pipeline(text, jobs)
    if not problems:
        findings.append(Finding("ok", PIPELINE, f"readable ({len(jobs)} job dir(s))", check="pipeline"))
        return findings
    broken = any(p.level == "error" for p in problems)
    fix, repair = _pipeline_fix(project, jobs, holders, lock_busy) if broken else ("", None)
    for problem in problems:
        if problem.level == "error":
            findings.append(Finding("error", PIPELINE, problem.what, fix, "pipeline", repair=repair))
        else:
            findings.append(Finding(problem.level, PIPELINE, problem.what, check="pipeline"))
    return findings


def _restorer(project: Path, restore: Restore) -> Callable[[], str]:
    """One restore shared by every error of the file: the first call copies, later calls report the same."""
    done: list[str] = []

    def repair() -> str:
        if not done:
            done.append(restore_pipeline(project, restore))
        return done[0]

    return repair
