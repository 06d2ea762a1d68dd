"""proc.run, the one seam for external commands: the typed error and the process-group kill on timeout."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from relion_qsub import proc
from relion_qsub.errors import CommandError, CommandTimeout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose (its parent, the killed shell, is gone and init reaps it)
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(") ", 1)[1][0] != "Z"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    """A wrapper script's child (sbatch wrappers are common) must not outlive the timeout holding our pipes."""
    pidfile = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pidfile}; echo started; wait"
    start = time.monotonic()
    with pytest.raises(CommandTimeout) as caught:
        proc.run(["bash", "-c", script], timeout=1.0)
    assert time.monotonic() - start < 10  # before: run() waited for the grandchild's pipes, i.e. 60 s
    assert caught.value.argv == ("bash", "-c", script)
    assert caught.value.stdout == "started\n"
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_missing_program_is_a_command_error_with_its_argv() -> None:
    with pytest.raises(CommandError, match="command not found") as caught:
        proc.run(["/nonexistent/sbatch", "x"])
    assert caught.value.argv == ("/nonexistent/sbatch", "x") and caught.value.returncode is None


def test_nonzero_exit_is_a_result_not_an_exception() -> None:
    result = proc.run(["bash", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_again_keeps_the_class_and_the_facts() -> None:
    exc = CommandTimeout("x", argv=("a",), returncode=None, stdout="o", stderr="e")
    again = exc.again("step: x")
    assert type(again) is CommandTimeout and str(again) == "step: x"
    assert (again.argv, again.stdout, again.stderr) == (("a",), "o", "e")
