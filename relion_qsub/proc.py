"""The one seam through which every external command runs (sbatch, squeue, scontrol, srun).

Tests replace ``subprocess.Popen`` (pytest-subprocess) or point the command paths elsewhere; nothing else in the
package calls ``subprocess`` directly. argv is always a list: no shell, nothing joined and split again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .errors import CommandError, CommandTimeout


class Result:
    __slots__ = ("argv", "returncode", "stderr", "stdout")

    def __init__(self, argv: tuple[str, ...], returncode: int, stdout: str, stderr: str) -> None:
        self.argv, self.returncode, self.stdout, self.stderr = argv, returncode, stdout, stderr

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

    A non-zero exit status is *not* an exception here: callers decide what the status means.
    """
    # subprocess is imported here, not at the top: `relion-qsub check` never runs a command and need not pay for it.
    import subprocess

    argv = tuple(argv)
    try:
        proc = subprocess.run(  # noqa: S603 - argv is a list built by us, never a shell string
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CommandError(
            f"{argv[0]}: command not found; is Slurm installed and on PATH (or set its path in the site profile)?"
        ) from exc
    except PermissionError as exc:
        raise CommandError(f"{argv[0]}: not executable ({exc.strerror})") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandTimeout(f"{argv[0]}: no answer within {timeout:g} s") from exc
    return Result(argv, proc.returncode, proc.stdout or "", proc.stderr or "")
