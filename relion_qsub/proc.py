"""The one seam through which every external command runs (sbatch, squeue, scontrol, srun).

Tests replace ``subprocess.Popen`` (pytest-subprocess) or point the command paths elsewhere; nothing else in the
package calls ``subprocess`` directly. argv is always a list: no shell, nothing joined and split again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import CommandError, CommandTimeout

if TYPE_CHECKING:
    import subprocess


@dataclass(frozen=True, slots=True, repr=False)
class Result:
    """What a command that ran to its end said: its exit status and its output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def __repr__(self) -> str:
        return f"Result({list(self.argv)!r}, returncode={self.returncode})"


def run(
    argv: Sequence[str],
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Result:
    """Run ``argv`` and capture its output; raise CommandError if it cannot be started or times out.

    A non-zero exit status is *not* an exception here: callers decide what the status means. The command runs in a
    session of its own, so that on timeout the whole process group is killed: a wrapper script (sbatch and squeue are
    often site wrappers) would otherwise leave its children running with our pipes open, and we would hang on them.
    """
    # subprocess is imported here, not at the top: `relion-qsub check` never runs a command and need not pay for it.
    import subprocess

    argv = tuple(argv)
    try:
        child = subprocess.Popen(  # noqa: S603 - argv is a list built by us, never a shell string
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise CommandError(
            f"{argv[0]}: command not found; is Slurm installed and on PATH (or set its path in the site profile)?",
            argv=argv,
        ) from exc
    except PermissionError as exc:
        raise CommandError(f"{argv[0]}: not executable ({exc.strerror})", argv=argv) from exc
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(child)
        try:  # reap it and keep what it printed; a grandchild that left the group may still hold the pipes
            stdout, stderr = child.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            stdout, stderr = "", ""
        raise CommandTimeout(
            f"{argv[0]}: no answer within {timeout:g} s", argv=argv, stdout=stdout or "", stderr=stderr or ""
        ) from exc
    return Result(argv, child.returncode, stdout or "", stderr or "")


def _kill_group(child: subprocess.Popen[str]) -> None:
    """SIGKILL the child's process group (its own session: pgid == pid), else the child alone."""
    import signal

    try:
        if child.pid > 0 and os.getpgid(child.pid) == child.pid:
            os.killpg(child.pid, signal.SIGKILL)
            return
    except OSError:  # already gone
        pass
    child.kill()
