"""One job dir, many runs: which submission of a RELION job dir is its current run.

RELION submits into the same job dir again and again (Continue, a scheduled rerun, 3.1's overwrite): before every run
``PipeLine::runJob`` (src/pipeliner.cpp, 3.1.3 and 5.0.1) has ``getCommandLineJob`` rewrite
``<jobdir>run_submit.script`` (``RelionJob::prepareFinalCommand`` writes it only when it makes the dir, i.e. only for
a run, never for "Print command" or "Save"), then removes ``RELION_JOB_EXIT_*`` and ``RELION_JOB_ABORT_NOW``, then
runs the Queue submit command. An exit file written afterwards for an EARLIER run (a late end-watcher, the old run's
relion-launch, doctor) is read by RELION as the NEW run's ending, and the pipeline never looks again.

So every writer of an exit file asks :func:`superseded` first. A run is identified by its :class:`Stamp`: the inode
and nanosecond mtime of the script relion-qsub submitted, taken when relion-qsub read it; RELION's rewrite changes it.
The file server sets both, so a compute node compares them without clock skew. The record (``relion-qsub.jsonl``)
says the rest: a submission recorded after this one's is the current one (a standalone script submitted twice).

Imports nothing of the package but relion/ (the job-dir contract and the record): the end-watcher and the job-side
checks run it on a compute node.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from . import jobdir

if TYPE_CHECKING:
    from datetime import datetime

    from . import record

ENV = "RELION_QSUB_RUN"  # the normalised script exports the run's stamp to everything the job runs (relion-launch)


class Stamp(NamedTuple):
    """Which version of the submitted script a run came from: inode, mtime in ns, absolute path."""

    ino: int
    mtime_ns: int
    path: str

    def encode(self) -> str:
        return f"{self.ino}:{self.mtime_ns}:{self.path}"

    @classmethod
    def decode(cls, text: str | None) -> Stamp | None:
        """The stamp from :meth:`encode`, or None for anything else (a missing or mangled value)."""
        ino, _, rest = (text or "").partition(":")
        mtime, _, path = rest.partition(":")
        if not (ino.isdigit() and mtime.isdigit() and path.startswith("/")):
            return None
        return cls(int(ino), int(mtime), path)

    @classmethod
    def of(cls, path: Path) -> Stamp | None:
        """The stamp of ``path`` now; None when it is gone or unreadable. Opened, not only stat()ed: an NFS client
        revalidates a file's attributes on open (close-to-open consistency), so a compute node sees RELION's
        rewrite from the login node instead of attributes it cached."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        return cls(st.st_ino, st.st_mtime_ns, os.path.abspath(path))

    def same_run(self, other: Stamp) -> bool:
        return (self.ino, self.mtime_ns) == (other.ino, other.mtime_ns)


def entries(job_dir: Path) -> list[record.Record]:
    """The job dir's submission record, oldest first ([] when there is none or it cannot be read)."""
    from . import record  # here: stamping a run (submit time, the check) reads no record

    try:
        return record.read((job_dir / jobdir.RECORD).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return []


def later_submission(job_dir: Path, job_id: str) -> str | None:
    """What was submitted into ``job_dir`` after Slurm job ``job_id`` (in words), or None when nothing was or the
    record does not know ``job_id`` (then its line could not be written: it is taken as current)."""
    found = entries(job_dir)
    mine = [i for i, entry in enumerate(found) if entry.job_id == job_id]
    if not mine or mine[-1] == len(found) - 1:
        return None
    last = found[-1]
    return f"Slurm job {last.job_id}" if last.job_id else f"a submission refused at {last.time or '?'}"


def superseded(job_dir: Path, job_id: str | None, stamp: Stamp | None) -> str | None:
    """None when the run (Slurm ``job_id``, submitted from ``stamp``) is still its job dir's current run; else why
    not, as the end of a sentence. With neither known there is nothing to compare: current."""
    if stamp is not None:
        now = Stamp.of(Path(stamp.path))
        if now is None:
            return f"{stamp.path} is gone: the job was removed or overwritten in RELION"
        if not now.same_run(stamp):
            return f"RELION has started a new run of {job_dir} since (it rewrote {Path(stamp.path).name})"
    if job_id:
        later = later_submission(job_dir, job_id)
        if later is not None:
            return f"{later} was submitted into {job_dir} after it and is its current run"
    return None


def previous_watcher(job_dir: Path) -> str | None:
    """The newest end-watcher recorded in ``job_dir`` (read before the new submission is recorded). Only it can still
    be pending: every submission cancels the one before it (a refused submission submits none and cancels none)."""
    return next((entry.watcher for entry in reversed(entries(job_dir)) if entry.watcher), None)


# How long after its submission a superseded run's note (jobdir.UNWATCHED) stays: see stale_notes.
NOTE_KEPT_S = 24 * 3600


def stale_notes(job_dir: Path, current: str, now: datetime | None = None) -> list[Path]:
    """The notes of refused end-watchers (jobdir.UNWATCHED) in ``job_dir`` that no job can still need, for the
    submission of Slurm job ``current`` (whose own note is never one) to remove: one directory listing, and the
    record is read only when there is an earlier note.

    A note is read only by its own job (jobend.note_lines, jobend.main). One is stale when the record shows its job's
    submission superseded (a later line has a job: then the job's trap writes no exit file with or without its note,
    runs.mark) and the line is NOTE_KEPT_S old: by then the job has most likely ended, and if it has not, all it
    loses is printing the note into the newer run's run.out and run.err. A note the record does not know (its line
    could not be written) stays. Kept-job files (jobdir.KEPT_PREFIX) always stay: the job a lost request creates may
    appear and pend for as long as the cluster is full, and when it starts without its file its guard lets it run
    the superseded run's program in the job dir, whose own RELION_JOB_EXIT_* would end the newer run in RELION; only
    Slurm could say that no such job is left, which costs a controller call."""
    try:
        names = os.listdir(job_dir)
    except OSError:
        return []
    notes = {job_id: name for name in names if (job_id := jobdir.unwatched_job_id(name)) and job_id != current}
    if not notes:
        return []
    from datetime import UTC, datetime

    now = now or datetime.now(UTC)
    found = entries(job_dir)
    stale = []
    for job_id, name in sorted(notes.items(), key=lambda item: int(item[0])):
        mine = [i for i, entry in enumerate(found) if entry.job_id == job_id]
        if not mine or not any(entry.job_id for entry in found[mine[-1] + 1 :]):
            continue  # unknown, or still the dir's last job
        when = found[mine[-1]].when
        if when is not None and when.tzinfo is not None and (now - when).total_seconds() >= NOTE_KEPT_S:
            stale.append(job_dir / name)
    return stale


def mark(job_dir: Path, name: str, line: str, job_id: str | None, stamp: Stamp | None) -> jobdir.Marked:
    """:func:`jobdir.mark` for the run (``job_id``, ``stamp``) only while it is the dir's current run; otherwise
    run.err gets one line saying so (``line`` with the reason in place of the exit file) and nothing else."""
    existing = jobdir.exit_file(job_dir)
    if existing is not None:
        return jobdir.Marked(False, existing)  # said already (then a superseded run has nothing to add)
    why = superseded(job_dir, job_id, stamp)
    if why is None:
        return jobdir.mark(job_dir, name, line)
    return jobdir.Marked(False, None, jobdir.append_err(job_dir, note(line, name, why)), superseded=why)


def note(line: str, name: str, why: str) -> str:
    """``line`` of a run that is no longer current, said instead of writing the exit file ``name``."""
    return f"{line.rstrip()}; but no {name} was written: this run is no longer current ({why})"
