"""docs/errors.md is generated from the rule registry with real messages (tests/errors_catalogue.py); re-record it
after changing a check: `RELION_QSUB_RERECORD=1 .venv/bin/pytest tests/test_errors_catalogue.py`."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from relion_qsub.checks.registry import RULES
from tests.errors_catalogue import examples, render

PAGE = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


def test_every_rule_has_an_entry_with_a_message_it_really_printed(tmp_path: Path) -> None:
    found = examples(tmp_path)
    assert [r.key for r in RULES if r.name not in found] == []
    text = render(tmp_path / "again")
    assert [line[4:-1] for line in text.splitlines() if line.startswith("## `")] == [r.key for r in RULES]
    assert all(f"    relion-qsub: {change}" in text for _, change in found.values())


def test_docs_errors_md_is_generated(tmp_path: Path) -> None:
    expected = render(tmp_path)
    if os.environ.get("RELION_QSUB_RERECORD") == "1":
        PAGE.write_text(expected)
        return
    current = PAGE.read_text()
    if current != expected:
        diff = "".join(difflib.unified_diff(current.splitlines(True), expected.splitlines(True), "docs", "generated"))
        pytest.fail(
            f"docs/errors.md differs from the registry's checks:\n{diff[:3000]}\nRe-record it: "
            "RELION_QSUB_RERECORD=1 .venv/bin/pytest tests/test_errors_catalogue.py",
            pytrace=False,
        )
