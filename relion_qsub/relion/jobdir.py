"""RELION's job-directory contract: the one place that knows its file names and how to say "this job failed".

RELION (pipeline_jobs.cpp, pipeliner.cpp) learns a queued job's end only from ``RELION_JOB_EXIT_SUCCESS``,
``_FAILURE`` or ``_ABORTED`` in the job dir, written by the program itself through ``--pipeline_control``; the GUI
shows any job without one as "Running". The queue template sends the job's output to ``run.out`` and ``run.err``
(XXXoutfileXXX/XXXerrfileXXX), which the GUI displays. relion-qsub adds ``relion-qsub.jsonl``, one JSON line per
submission (its lines: ``record``). relion-qsub (a refused submission), relion-launch (a failed step) and doctor (a
job Slurm ended) all mark a job failed through :func:`mark_failed`.

Imports nothing of the package (import-linter contract): the submit path, the launcher and doctor all use it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import NamedTuple

EXIT_SUCCESS = "RELION_JOB_EXIT_SUCCESS"
EXIT_FAILURE = "RELION_JOB_EXIT_FAILURE"
EXIT_ABORTED = "RELION_JOB_EXIT_ABORTED"
EXIT_FILES = (EXIT_SUCCESS, EXIT_FAILURE, EXIT_ABORTED)
EXIT_GLOB = "RELION_JOB_EXIT_*"  # every exit file, as a shell pattern
ABORT_NOW = "RELION_JOB_ABORT_NOW"  # the GUI's Abort creates it; the program checks for it between iterations
RUN_OUT = "run.out"
RUN_ERR = "run.err"
SUBMIT_SCRIPT = "run_submit.script"  # what RELION writes and passes to the Queue submit command
RECORD = "relion-qsub.jsonl"  # relion-qsub's own: one JSON line per submission (record.py)
# relion-qsub's note for a run whose end-watcher Slurm refused: "<UNWATCHED>.<Slurm job id>", so it belongs to that
# one job (one run of the dir). The job prints it into run.out and run.err as it starts (jobend.preamble): Slurm
# truncates both when the job starts, so only the job itself can put the warning where RELION's GUI shows it.
UNWATCHED = "relion-qsub-unwatched"
JOB_STAR = "job.star"  # RELION's own record of the job's settings (RelionJob::write; jobstar.py)
# relion-qsub's own, only after sbatch's answer was lost (submit.py): which job of the submission with token
# relion-qsub:HEX does the work, as ``KEPT_PREFIX + HEX`` holding that job's id, or nothing when none does. The job's
# first lines (jobend.guard) read it: a job relion-qsub did not keep ends there without running anything.
KEPT_PREFIX = "relion-qsub.kept."


def kept_name(token: str) -> str:
    """The kept-job file of the submission with ``token`` (``relion-qsub:HEX``)."""
    return KEPT_PREFIX + token.rpartition(":")[2]


# How a RELION program learns its job dir: prepareFinalCommand (src/pipeline_jobs.cpp, 5.0.1) appends
# `--pipeline_control <jobdir>` to every command holding "relion_", and `--pipeline-control <jobdir>` (a dash) for the
# Python programs it runs with do_dash_for_python (ModelAngelo, DynaMight: relion_python_modelangelo/dynamight).
PIPELINE_CONTROL = ("--pipeline_control", "--pipeline-control")


def is_job_dir_name(name: str) -> bool:
    """RELION names job dirs ``job`` + at least three digits (``job012``, ``job1234``)."""
    return len(name) >= 6 and name.startswith("job") and name[3:].isdigit() and name[3:].isascii()


def of_script(script: Path) -> Path | None:
    """The RELION job dir a submission script belongs to, or None for a standalone script."""
    parent = script.parent
    if script.name == SUBMIT_SCRIPT or is_job_dir_name(parent.name):
        return parent
    return None


def exit_file(jobdir: Path) -> str | None:
    """The name of the RELION_JOB_EXIT_* file in ``jobdir``, if there is one (RELION's own "has it ended")."""
    return next((name for name in EXIT_FILES if os.path.lexists(jobdir / name)), None)


class Marked(NamedTuple):
    """What :func:`mark_failed` did. ``created``: we wrote the failure file; ``existing``: the exit file that was
    already there (then nothing was written); ``err_note``: why the run.err line is missing ("" = it was written);
    ``superseded``: why nothing was written for a run that is no longer the dir's current one (runs.mark)."""

    created: bool
    existing: str | None = None
    err_note: str = ""
    superseded: str = ""


def mark_failed(jobdir: Path, line: str) -> Marked:
    """Tell RELION the job failed: create RELION_JOB_EXIT_FAILURE first, then append ``line`` to run.err (see mark)."""
    return mark(jobdir, EXIT_FAILURE, line)


def aborted(jobdir: Path) -> bool:
    """Whether the GUI's Abort asked this run to stop (RELION removes the file before every run)."""
    return os.path.lexists(jobdir / ABORT_NOW)


def mark(jobdir: Path, name: str, line: str) -> Marked:
    """Tell RELION the job ended: create the exit file ``name`` first, then append ``line`` to run.err.

    The exit file is what the GUI needs; it is created exclusively (O_EXCL), never over an exit file RELION or anyone
    else wrote, so a job that succeeded is never shown as failed. Raises OSError when it cannot be created (the
    caller says so). The run.err line is best effort and skipped when run.err is not a regular file (a FIFO would
    block) or is this process's own stderr (the job template sends stderr there, and the caller reports on stderr).
    """
    existing = exit_file(jobdir)
    if existing is not None:
        return Marked(False, existing)
    try:
        os.close(os.open(jobdir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666))
    except FileExistsError:  # RELION (or a twin of ours) wrote one meanwhile
        return Marked(False, exit_file(jobdir) or name)
    return Marked(True, None, append_err(jobdir, line))


def append_err(jobdir: Path, line: str) -> str:
    """Append one line to the job's run.err (see mark); "" when written, else why not."""
    return _append_line(jobdir / RUN_ERR, line)


def note(jobdir: Path, line: str) -> str:
    """Append ``line`` to run.err without touching the exit files (a second word on an ending already told); best
    effort as in :func:`mark_failed`; returns what became of it."""
    return _append_line(jobdir / RUN_ERR, line)


def unwatched_note(jobdir: Path, job_id: str) -> Path:
    """The note of Slurm job ``job_id`` whose end-watcher was refused (see UNWATCHED)."""
    return jobdir / f"{UNWATCHED}.{job_id}"


def unwatched_job_id(name: str) -> str | None:
    """The Slurm job id whose note (see UNWATCHED) the file ``name`` is; None for any other name. Kept-job files
    (KEPT_PREFIX) are never such a note: they outlive their run (runs.stale_notes says why)."""
    head, dot, job_id = name.partition(".")
    return job_id if head == UNWATCHED and dot and job_id.isdigit() and job_id.isascii() else None


def leave_unwatched_note(jobdir: Path, job_id: str, line: str) -> str:
    """Write the note (one line) for Slurm job ``job_id``; "" when written, else why not. Written while the job is
    still held, so it is whole before the job can start and read it; never through a symlink."""
    try:
        fd = os.open(unwatched_note(jobdir, job_id), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(line.rstrip("\n") + "\n")
    except OSError as exc:
        return exc.strerror or str(exc)
    return ""


def require_regular(path: Path) -> os.stat_result:
    """Raise OSError unless ``path`` is a regular file (after symlinks). Never opens it: a FIFO would block."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        mode = st.st_mode
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a special file"
        raise OSError(errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL, f"{kind}, not a regular file", str(path))
    return st


def _append_line(path: Path, line: str) -> str:
    try:
        st = require_regular(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        return exc.strerror or str(exc)
    if st is not None and _is_stderr(st):
        return ""  # the caller's own message on stderr lands there; writing it too would say it twice
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line.rstrip("\n") + "\n")
    except OSError as exc:
        return f"cannot append to {path}: {exc.strerror}"
    return ""


def _is_stderr(st: os.stat_result) -> bool:
    try:
        own = os.fstat(2)
    except OSError:
        return False
    return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)
