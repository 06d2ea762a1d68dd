"""docs/errors.md is generated from the rule registry with real messages (tests/errors_catalogue.py); re-record it
after changing a check: `RELION_QSUB_RERECORD=1 .venv/bin/pytest tests/test_errors_catalogue.py`."""

from __future__ import annotations

from pathlib import Path

from relion_qsub.checks.registry import RULES
from tests import goldens
from tests.errors_catalogue import examples, render

PAGE = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


def test_every_rule_has_an_entry_with_a_message_it_really_printed(tmp_path: Path) -> None:
    found = examples(tmp_path)
    assert [r.key for r in RULES if r.name not in found] == []
    text = render(tmp_path / "again")
    assert [line[4:-1] for line in text.splitlines() if line.startswith("## `")] == [r.key for r in RULES]
    assert all(f"    relion-qsub: {change}" in text for _, change in found.values())


def test_docs_errors_md_is_generated(tmp_path: Path) -> None:
    goldens.check(
        PAGE, render(tmp_path), "docs/errors.md (from the registry's checks)", "tests/test_errors_catalogue.py"
    )
