"""RELION's view of the job from inside it: the exit files in the --pipeline_control directory (jobdir contract)."""

from __future__ import annotations

from pathlib import Path

from ..relion import jobdir as jobdir_mod
from .invocation import PROG
from .say import stderr_text, warn


class Pipeline:
    """RELION's view of the job: the RELION_JOB_EXIT_* files in the --pipeline_control directory."""

    def __init__(self, jobdir: str | None) -> None:
        self.jobdir = Path(jobdir) if jobdir else None
        self.marked = False

    def has_exit_file(self) -> bool:
        return self.jobdir is not None and jobdir_mod.exit_file(self.jobdir) is not None

    def mark_failure(self, reason: str, *, echo: bool = True) -> bool:
        """Write RELION_JOB_EXIT_FAILURE (never over an existing exit file) and log the reason in run.err.

        The reason goes to run.err as one line, unless run.err is this process's stderr (RELION's template
        sends stderr there); ``echo`` also prints it on stderr (off when the caller reports the error itself).
        """
        if self.marked or self.jobdir is None or not self.jobdir.is_dir():
            return False
        failure = self.jobdir / jobdir_mod.EXIT_FAILURE
        line = f"{PROG}: {reason}; wrote {failure}"
        try:
            marked = jobdir_mod.mark_failed(self.jobdir, line)
        except OSError as exc:
            warn(f"cannot write {failure}: {exc.strerror}")
            return False
        if not marked.created:
            return False
        self.marked = True
        if marked.err_note:
            warn(marked.err_note)
        if echo:
            stderr_text(line + "\n")
        return True
