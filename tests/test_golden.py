"""Golden files: every corpus script normalised with the Biowulf profile, compared with tests/golden/.

On a difference the test prints a unified diff. When the change is intended, re-record with
    RELION_QSUB_RERECORD=1 .venv/bin/pytest tests/test_golden.py
and review ``git diff tests/golden`` before committing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from relion_qsub import profile
from relion_qsub.checks.core import Context
from relion_qsub.checks.engine import normalise
from relion_qsub.relion.gui import Boxes
from relion_qsub.script import parse
from tests import goldens

HERE = Path(__file__).resolve().parent
CORPUS = sorted((HERE / "corpus").glob("*.script"))
GOLDEN = HERE / "golden"
SITE = profile.load("biowulf")


def expected_text(script: Path) -> str:
    result = normalise(parse(script.read_text(), script.name), Context(SITE, (), Boxes(None, {})))
    report = "".join(f"# {change}\n" for change in result.changes)
    verdict = "# would submit\n" if result.ok else f"# would NOT submit: {len(result.errors)} error(s)\n"
    return report + verdict + "# ---- normalised script ----\n" + result.script.render()


def test_corpus_is_not_empty() -> None:
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("script", CORPUS, ids=[p.stem for p in CORPUS])
def test_golden(script: Path) -> None:
    golden = GOLDEN / f"{script.stem}.slurm"
    actual = expected_text(script)
    goldens.check(golden, actual, f"normalised {script.name}", f"tests/test_golden.py -k {script.stem}")


@pytest.mark.parametrize("script", CORPUS, ids=[p.stem for p in CORPUS])
def test_normalising_twice_changes_nothing(script: Path) -> None:
    once = normalise(parse(script.read_text()), Context(SITE))
    twice = normalise(once.script, Context(SITE))
    assert twice.script.render() == once.script.render()
    assert [c for c in twice.changes if c.action == "fixed"] == []


@pytest.mark.parametrize("script", CORPUS, ids=[p.stem for p in CORPUS])
def test_unchanged_scripts_render_byte_for_byte(script: Path) -> None:
    text = script.read_bytes().decode()
    assert parse(text).render() == text
