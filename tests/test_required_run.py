"""A required run (``make test``, CI: RELION_QSUB_REQUIRE_SLURM=1) turns every skip into a failure (conftest)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CASES = """
import pytest

def test_skips_without_a_tool():
    pytest.skip("lua is not installed")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False
"""


@pytest.mark.parametrize(("required", "expected"), [("1", "1 failed, 1 xfailed"), ("0", "1 skipped, 1 xfailed")])
def test_a_skip_fails_only_in_a_required_run(tmp_path: Path, required: str, expected: str) -> None:
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_runtest_makereport  # noqa: F401\n")
    (tmp_path / "test_cases.py").write_text(CASES)
    env = {**os.environ, "RELION_QSUB_REQUIRE_SLURM": required, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:rerunfailures", "-q", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert expected in proc.stdout, proc.stdout + proc.stderr
    if required == "1":
        assert "test skipped in a run that requires everything (make test)" in proc.stdout
