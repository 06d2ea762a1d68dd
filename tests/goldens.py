"""Golden files: a text compared with its recorded file, with a unified diff and the command that re-records it;
``RELION_QSUB_RERECORD=1`` records it instead. The one comparison every golden test makes."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

# Read once, at collection: some tests clear RELION_QSUB_* from the environment of the case they judge.
RERECORD = os.environ.get("RELION_QSUB_RERECORD") == "1"


def check(golden: Path, actual: str, what: str, rerecord: str) -> None:
    """Fail with a diff when ``actual`` (``what`` names it) is not ``golden``'s text; ``rerecord``: the pytest
    arguments that record it again (a missing file fails, saying how to record it)."""
    if RERECORD:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
        return
    how = f"RELION_QSUB_RERECORD=1 .venv/bin/pytest {rerecord}"
    if not golden.exists():
        pytest.fail(f"no golden file {golden} for {what}; record it: {how}", pytrace=False)
    expected = golden.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), golden.name, "now"))
        pytest.fail(f"{what} differs from its golden file {golden.name}:\n{diff}\nIf intended, re-record: {how}",
                    pytrace=False)  # fmt: skip
