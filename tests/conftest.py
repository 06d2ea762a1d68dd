"""Shared test fixtures.

Real-cluster tests carry ``@pytest.mark.slurm``. When the testbed is not reachable they skip during local
editing, but fail when ``RELION_QSUB_REQUIRE_SLURM=1`` (set by ``make test`` and so by CI): a real-cluster test
that silently skips in CI would be a test that cannot fail.
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
    """In a required run, any skip of a real-cluster test (whatever raised it) is reported as a failure."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and item.get_closest_marker("slurm") is not None
        and os.environ.get("RELION_QSUB_REQUIRE_SLURM") == "1"
    ):
        report.outcome = "failed"
        report.longrepr = f"real-cluster test skipped in a run that requires the cluster: {report.longrepr}"


@pytest.fixture(scope="session")
def testbed_dir() -> Path:
    """State dir of the running testbed: slurm.conf, logs, per-node dirs ``nodes/<name>/lscratch``."""
    from tests.slurmtools import testbed_dir as _testbed_dir

    path = _testbed_dir()
    if not (path / "slurm.conf").is_file():
        pytest.fail(f"no testbed state in {path}: run `make testbed-up`", pytrace=False)
    return path
