"""Shared test fixtures.

Real-cluster tests carry ``@pytest.mark.slurm``. When the testbed is not reachable they skip during local
editing, but fail when ``RELION_QSUB_REQUIRE_SLURM=1`` (set by ``make test`` and so by CI): a real-cluster test
that silently skips in CI would be a test that cannot fail. In such a run every other skip fails too.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def _testbed_problem() -> str | None:
    """None when the testbed's controller answers, else why not (one line)."""
    if not os.environ.get("SLURM_CONF"):
        return "SLURM_CONF is not set: run `make testbed-up` and `source <(testbed/testbed env)`"
    if shutil.which("scontrol") is None:
        return "scontrol is not installed: run `make deps`"
    proc = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0 or "UP" not in proc.stdout:
        return f"the testbed controller does not answer `scontrol ping`: {proc.stdout.strip()} {proc.stderr.strip()}"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("slurm") is None:
        return
    problem = _testbed_problem()
    if problem is None:
        return
    if os.environ.get("RELION_QSUB_REQUIRE_SLURM") == "1":
        pytest.fail(f"real-cluster test cannot run: {problem}", pytrace=False)
    pytest.skip(problem)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """In a required run (``make test``, CI), ANY skip is reported as a failure, whatever raised it.

    Not only real-cluster tests: a test that needs root, lua or relion_pipeliner and skips without them would pass
    CI on a machine that lacks them without having checked anything. ``make test`` installs all of them, so a skip
    there means an install step is missing. (An expected failure, ``xfail``, is not a skip.)
    """
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and os.environ.get("RELION_QSUB_REQUIRE_SLURM") == "1":
        report.outcome = "failed"
        where = "real-cluster test" if item.get_closest_marker("slurm") is not None else "test"
        report.longrepr = f"{where} skipped in a run that requires everything (make test): {report.longrepr}"


@pytest.fixture(scope="session")
def testbed_dir() -> Path:
    """State dir of the running testbed: slurm.conf, logs, per-node dirs ``nodes/<name>/lscratch``."""
    from tests.slurmtools import testbed_dir as _testbed_dir

    path = _testbed_dir()
    if not (path / "slurm.conf").is_file():
        pytest.fail(f"no testbed state in {path}: run `make testbed-up`", pytrace=False)
    return path


# A directory name that breaks anything that joins argv into a shell line or splits it again: spaces, both quotes,
# a command separator, a command substitution and a newline (submitit's ``weird_tmp_path``, made harsher). Nothing
# in relion-qsub may run ``touch pwned``: every test that uses it asserts that no ``pwned`` file appeared.
HOSTILE_NAME = "we ird 'q\"uote; touch pwned $(touch pwned) `touch pwned`\nline"


@pytest.fixture
def hostile_path(tmp_path: Path) -> Path:
    """A fresh, empty directory whose own name is HOSTILE_NAME (inside pytest's tmp dir)."""
    path = tmp_path / HOSTILE_NAME
    path.mkdir()
    return path
