"""Quiet by default on a correct job (issue 14): a job from our own common.sh, with the SBATCH Directives boxes left
empty as most are, prints nothing and gets no report in run.out; the repairs stay in relion-qsub.jsonl and -v shows
them. Reasons quote the site's own values."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from relion_qsub import prepare as prep
from relion_qsub import profile
from relion_qsub import submit as sub
from relion_qsub.sitetools.fillcases import cases, fill_case, render, write_project
from tests.slurmtools import cancel, job_env

ROOT = Path(__file__).resolve().parent.parent
QSUB = str(ROOT / "bin" / "relion-qsub")
TESTBED = profile.load("testbed")


def _common_case(tmp_path: Path) -> Path:
    rendered = render(TESTBED)
    case = next(c for c in cases(TESTBED, rendered) if c.name == "common.sh-defaults")
    # As RELION writes it with "Copy particles to scratch directory" set to the profile's job_dir.
    text = fill_case(case, rendered).replace(" --K 50 ", " --K 50 --scratch_dir /lscratch/$SLURM_JOB_ID ")
    assert "\n#SBATCH \n" in text  # the empty SBATCH Directives boxes: bare lines, which sbatch ignores
    # The job's particles exist (the data checks read them), and its Gres box holds them: relion_refine keeps 10 GB
    # of scratch free (--keep_free_scratch), so the testbed's default lscratch:5 would copy nothing (data_scratch).
    assert "--gres=lscratch:5\n" in text
    text = text.replace("--gres=lscratch:5\n", "--gres=lscratch:11\n")
    rows = "".join(f"{i:06d}@Extract/job007/parts.mrcs 1\n" for i in range(1, 11))
    (tmp_path / "particles.star").write_text(
        "data_optics\nloop_\n_rlnOpticsGroup #1\n_rlnImageSize #2\n1 32\n\n"
        f"data_particles\nloop_\n_rlnImageName #1\n_rlnOpticsGroup #2\n{rows}\n"
    )
    return write_project(case, text, tmp_path)


def test_bare_directive_repairs_are_not_echoed(tmp_path: Path) -> None:
    script = _common_case(tmp_path)
    prepared = prep.prepare(script, [], TESTBED)
    fixed = [c for c in prepared.result.changes if c.rule == "empty-directive"]
    assert fixed and prepared.result.ok
    assert prep.REPORT_MARK not in prepared.text  # nothing printed into run.out
    assert sub.record(prepared, {"submitted": False})
    entry = json.loads((script.parent / "relion-qsub.jsonl").read_text().splitlines()[-1])
    assert [c["rule"] for c in entry["changes"]].count("empty-directive") == len(fixed)  # kept in the record


def test_check_is_silent_and_verbose_shows_the_repairs(tmp_path: Path) -> None:
    script = _common_case(tmp_path)
    env = {**job_env(), "RELION_QSUB_SITE": "testbed"}
    quiet = subprocess.run([QSUB, "check", str(script)], capture_output=True, text=True, env=env, check=False)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    verbose = subprocess.run([QSUB, "check", "-v", str(script)], capture_output=True, text=True, env=env, check=False)
    assert verbose.returncode == 0 and "dropped an empty '#SBATCH' line" in verbose.stderr


def test_a_real_repair_is_still_reported(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH \n#SBATCH --gres= -n 1 -p norm\nhostname\n")
    prepared = prep.prepare(script, [], TESTBED)
    report = prepared.text.split(prep.REPORT_MARK)[1]
    assert "dropped the empty '--gres='" in report and "'#SBATCH' line" not in report


def test_reasons_quote_the_sites_values_not_the_seed() -> None:
    from relion_qsub.checks.registry import RULES

    for r in RULES:
        assert "seed" not in r.reason.lower() and "biowulf" not in r.reason.lower(), (r.name, r.reason)


@pytest.mark.slurm
def test_a_correct_job_from_common_sh_is_submitted_silently(tmp_path: Path) -> None:
    script = _common_case(tmp_path)
    rel = script.relative_to(tmp_path)
    result = subprocess.run(
        [QSUB, str(rel)],
        cwd=tmp_path,
        env=job_env(RELION_QSUB_SITE="testbed"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    job_id = result.stdout.split()[-1]
    cancel(job_id)
    assert prep.REPORT_MARK not in script.with_suffix(".slurm").read_text()
    entry = json.loads((script.parent / "relion-qsub.jsonl").read_text().splitlines()[-1])
    assert entry["submitted"] is True and any(c["rule"] == "empty-directive" for c in entry["changes"])
