"""README.md's policy table is generated from the one registry of checks (relion_qsub/checks/registry.py).

Re-record it after changing a check's declaration: `RELION_QSUB_RERECORD=1 .venv/bin/pytest
tests/test_readme_policy.py` rewrites the table between its markers and nothing else.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from relion_qsub.checks.registry import README_BEGIN, README_END, RULES, render_policy_table

README = Path(__file__).resolve().parent.parent / "README.md"


def _split(text: str) -> tuple[str, str, str]:
    """(before the table, the table with its markers, after it)."""
    start = text.index(README_BEGIN)
    end = text.index(README_END, start) + len(README_END)
    return text[:start], text[start:end], text[end:]


def test_readme_policy_table_is_generated_from_the_registry() -> None:
    text = README.read_text()
    assert text.count(README_BEGIN) == 1 and text.count(README_END) == 1, "README.md: one pair of table markers"
    before, table, after = _split(text)
    expected = render_policy_table()
    if os.environ.get("RELION_QSUB_RERECORD") == "1":
        README.write_text(before + expected + after)
        return
    if table != expected:
        diff = "".join(difflib.unified_diff(table.splitlines(True), expected.splitlines(True), "README.md", "registry"))
        pytest.fail(
            f"README.md's policy table differs from relion_qsub/checks/registry.py:\n{diff}\nRe-record it: "
            "RELION_QSUB_RERECORD=1 .venv/bin/pytest tests/test_readme_policy.py",
            pytrace=False,
        )


def test_the_table_has_one_row_per_check_with_its_default() -> None:
    rows = [line for line in render_policy_table().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [r.key for r in RULES]
    assert all(f"| {r.default.value} |" in row for r, row in zip(RULES, rows, strict=True))
