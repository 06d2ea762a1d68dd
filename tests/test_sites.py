"""Other sites' templates (tests/sitecases.py): golden verdicts with the testbed profile, and sbatch's own.

The golden file of each case holds the report, the verdict and the normalised script. On a difference the test prints
a unified diff; when the change is intended, re-record with
    RELION_QSUB_RERECORD=1 .venv/bin/pytest tests/test_sites.py
and review ``git diff tests/golden/sites`` before committing. Every case relion-qsub accepts goes to the real
``sbatch --test-only`` on the testbed (@pytest.mark.slurm): an accepted script that sbatch refuses is a defect.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from relion_qsub import profile
from relion_qsub.checks.core import Context, Result
from relion_qsub.checks.engine import normalise, parse_cli_options
from relion_qsub.script import parse
from tests import goldens
from tests.sitecases import CASES, SITES, TEMPLATES, Case

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden" / "sites"
SITE = dataclasses.replace(profile.load("testbed"), site_options={"gpu_cmode": "required", "auks": "optional"})
IDS = [c.name for c in CASES]


def judge(case: Case) -> Result:
    ctx = Context(SITE, parse_cli_options([], site_options=SITE.site_options), case.boxes())
    return normalise(parse(case.render(), f"{case.jobdir}run_submit.script", 2, SITE.site_options), ctx)


def expected_text(case: Case) -> str:
    result = judge(case)
    report = "".join(f"# {change}\n" for change in result.changes)
    verdict = "# would submit\n" if result.ok else f"# would NOT submit: {len(result.errors)} error(s)\n"
    head = f"# {case.name}: {case.purpose}\n# template {Path(case.template).name}\n"
    return head + report + verdict + "# ---- normalised script ----\n" + result.script.render()


def test_every_template_is_used_and_in_the_manifest() -> None:
    used = {Path(c.template).name for c in CASES if c.template.startswith(SITES)}
    present = {p.name for p in TEMPLATES.glob("*.sh")}
    assert used == present
    manifest = (TEMPLATES.parent / "MANIFEST.md").read_text()
    assert all(f"`{name}`" in manifest for name in present)
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_golden(case: Case) -> None:
    golden = GOLDEN / f"{case.name}.slurm"
    actual = expected_text(case)
    goldens.check(golden, actual, case.name, f"tests/test_sites.py -k {case.name}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_normalising_twice_changes_nothing(case: Case) -> None:
    once = judge(case)
    twice = normalise(once.script, Context(SITE, (), case.boxes()))
    assert twice.script.render() == once.script.render()


ACCEPTED = [c for c in CASES if judge(c).ok and not c.no_testbed]


@pytest.mark.slurm
@pytest.mark.parametrize("case", ACCEPTED, ids=[c.name for c in ACCEPTED])
def test_accepted_scripts_pass_sbatch_test_only(case: Case, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / case.jobdir).mkdir(parents=True)
    script = project / case.jobdir / "run_submit.slurm"
    script.write_text(judge(case).script.render())
    done = subprocess.run(
        ["sbatch", "--test-only", str(script.relative_to(project))],
        cwd=project, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"relion-qsub accepted {case.name} but sbatch refuses it: {done.stderr.strip()}"


@pytest.mark.slurm
def test_sbatch_alone_takes_relions_sge_template_without_a_word(tmp_path: Path) -> None:
    """Why foreign_scheduler refuses: sbatch itself accepts RELION's qsub.csh and would run it on 1 CPU."""
    (case,) = [c for c in CASES if c.name == "qsub_csh"]
    assert not judge(case).ok
    script = tmp_path / "run_submit.script"
    script.write_text(case.render())
    done = subprocess.run(
        ["sbatch", "--test-only", str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0 and "to start at" in done.stderr, done.stderr


# What partly_empty drops (sbatch refuses each) and what it leaves (sbatch takes each): the rule's facts, from sbatch.
PARTLY_EMPTY = [
    "--mem=GB",
    "--gres=gpu:",
    "--gres=gpu::1",
    "--gres=lscratch:5,",
    "--time=:00:00",
    "--time=1:00:",
    "--nodes=1-",
]
TAKEN = ["--mem=4GB", "--partition=multinode,", "--constraint=x2695&", "--time=-1", "--gres=lscratch:5"]


def test_partly_empty_flags_exactly_these() -> None:
    for option in PARTLY_EMPTY + TAKEN:
        text = f"#!/bin/bash\n#SBATCH -p multinode -n 1 {option}\nhostname\n"
        flagged = [c.rule for c in normalise(parse(text), Context(SITE, ())).changes] == ["partly-empty"]
        assert flagged == (option in PARTLY_EMPTY), option


@pytest.mark.slurm
@pytest.mark.parametrize("option", PARTLY_EMPTY + TAKEN)
def test_sbatch_agrees_with_partly_empty(option: str, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH -p multinode -n 1 {option}\nhostname\n")
    done = subprocess.run(
        ["sbatch", "--test-only", str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert (done.returncode == 0) == (option in TAKEN), done.stderr
