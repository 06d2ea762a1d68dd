"""RELION's view of the job from inside it: the exit files in the --pipeline_control directory (jobdir contract),
written only while this job is the dir's current run (runs.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..relion import jobdir as jobdir_mod
from ..relion import runs
from .invocation import PROG
from .say import stderr_text, warn


class Pipeline:
    """RELION's view of the job: the RELION_JOB_EXIT_* files in the --pipeline_control directory. ``env``: the
    job's environment, for its Slurm job id and the run stamp relion-qsub's preamble exported (runs.ENV)."""

    def __init__(self, jobdir: str | None, env: Mapping[str, str] | None = None) -> None:
        self.jobdir = Path(jobdir) if jobdir else None
        self.marked = False
        self.said = False  # the reason was said on stderr already (for a run that is no longer current)
        env = env or {}
        self.job_id = env.get("SLURM_JOB_ID", "").strip() or None
        self.stamp = runs.Stamp.decode(env.get(runs.ENV))

    def has_exit_file(self) -> bool:
        return self.jobdir is not None and jobdir_mod.exit_file(self.jobdir) is not None

    def abort_requested(self) -> bool:
        """RELION_JOB_ABORT_NOW is there (the GUI's Abort) and this job is the dir's current run."""
        if self.jobdir is None or not jobdir_mod.aborted(self.jobdir):
            return False
        return runs.superseded(self.jobdir, self.job_id, self.stamp) is None

    def mark_failure(self, reason: str, *, echo: bool = True) -> bool:
        """Write RELION_JOB_EXIT_FAILURE (never over an existing exit file, never for a run RELION has replaced) and
        log the reason in run.err.

        The reason goes to run.err as one line, unless run.err is this process's stderr (RELION's template
        sends stderr there); ``echo`` also prints it on stderr (off when the caller reports the error itself).
        """
        return self._mark(jobdir_mod.EXIT_FAILURE, reason, echo)

    def mark_aborted(self, reason: str) -> bool:
        """Write RELION_JOB_EXIT_ABORTED, as the program itself does after the GUI's Abort
        (src/pipeline_control.cpp, pipeline_control_relion_exit(2)), and say why in run.err."""
        return self._mark(jobdir_mod.EXIT_ABORTED, reason, True)

    def _mark(self, name: str, reason: str, echo: bool) -> bool:
        if self.marked or self.jobdir is None or not self.jobdir.is_dir():
            return False
        path = self.jobdir / name
        line = f"{PROG}: {reason}; wrote {path}"
        try:
            marked = runs.mark(self.jobdir, name, line, self.job_id, self.stamp)
        except OSError as exc:
            warn(f"cannot write {path}: {exc.strerror}")
            return False
        if marked.superseded and echo:
            stderr_text(runs.note(f"{PROG}: {reason}", name, marked.superseded) + "\n")
            self.said = True
        if not marked.created:
            return False
        self.marked = True
        if marked.err_note:
            warn(marked.err_note)
        if echo:
            stderr_text(line + "\n")
        return True
