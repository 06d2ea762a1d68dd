"""The job fits its data, on the testbed with real RELION: relion-qsub sizes the scratch before the queue wait, real
relion_refine (3.1.3) says its scratch is full in the very words the report reads, and the report says so.

The testbed's lscratch is a count-only gres over a directory on the host's disk, so the scratch cannot be made
small; relion_refine's own ``--keep_free_scratch`` makes it so instead: RELION copies while ``used <= (free -
keep_free) GB`` (copyParticlesToScratch, src/exp_model.cpp), so with 1,000,000 GB to keep free it copies nothing
and warns on run.err. The particles are the demo's: relion_project's 200 images of box 32.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from relion_qsub.report.jobs import SCRATCH_FULL
from tests.slurmtools import job_env, synthetic_particles, wait_for_job

pytestmark = [pytest.mark.slurm, pytest.mark.relion]

ROOT = Path(__file__).resolve().parent.parent
QSUB = str(ROOT / "bin" / "relion-qsub")
JOB = "Class2D/job006/"
KEEP_FREE_GB = 1_000_000
SCRIPT = f"""#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --partition=norm
#SBATCH --cpus-per-task=1
#SBATCH --error={JOB}run.err
#SBATCH --output={JOB}run.out
#SBATCH --open-mode=append
#SBATCH --time=0:05:00
#SBATCH --mem-per-cpu=500M
#SBATCH --gres=lscratch:5
relion-launch --mpi=pmix `which relion_refine` --o {JOB}run --i parts.star --K 1 --iter 1 --particle_diameter 80 \
--tau2_fudge 2 --zero_mask --oversampling 1 --psi_step 10 --offset_range 3 --offset_step 2 --norm --scale --j 1 \
--dont_combine_weights_via_disc --pool 10 --scratch_dir /lscratch/$SLURM_JOB_ID --keep_free_scratch {KEEP_FREE_GB} \
--pipeline_control {JOB}
"""


def env() -> dict[str, str]:
    return job_env(RELION_QSUB_SITE="testbed", PATH=f"{ROOT / 'bin'}:{os.environ['PATH']}", NO_COLOR="")


def test_scratch_sized_before_the_queue_and_relions_full_scratch_in_the_report(tmp_path: Path) -> None:
    synthetic_particles(tmp_path, "relion_refine")
    (tmp_path / JOB).mkdir(parents=True)
    (tmp_path / JOB / "run_submit.script").write_text(SCRIPT)
    done = subprocess.run(
        [QSUB, f"{JOB}run_submit.script"], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    need = KEEP_FREE_GB + 1  # 200 x 32^2 x 4 bytes (0.8 MB) + --keep_free_scratch, in whole GB
    said = [line for line in done.stderr.splitlines() if "[data-scratch:" in line]
    assert len(said) == 1 and f"ask lscratch:{need} in the 'Gres' box" in said[0], done.stderr
    assert "200 particles of box 32 px (parts.star)" in said[0]

    info = wait_for_job(done.stdout.split()[-1], timeout=300)
    out, err = (tmp_path / JOB / "run.out").read_text(), (tmp_path / JOB / "run.err").read_text()
    assert info["JobState"] == "COMPLETED", out[-2000:] + err[-2000:]
    # Said at the top of run.out, before the job ran (the submitted script prints relion-qsub's report first).
    assert out.startswith("relion-qsub: warning: line 11: 200 particles of box 32 px (parts.star): 0.8 MB"), out[:500]
    assert "keeps 1,000,000 GB free (--keep_free_scratch): the 5 GB asked holds none of them" in out.split("\n")[0]
    full = SCRATCH_FULL.search(err)  # real RELION's own words match the report's pattern
    assert full is not None and full.group(2) == "200", err[-2000:]
    host = full.group(1)

    report = subprocess.run(
        [QSUB, "report", "--json", JOB], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120
    )
    assert report.returncode == 0, report.stderr
    (row,) = json.loads(report.stdout)["jobs"]
    assert row["scratch_full"] == {"host": host, "particles": 200}
    assert row["data"] == {"star": "parts.star", "particles": 200, "box": 32, "gb": 0.001}
    assert row["verdict"]["level"] == "warning"
    assert row["verdict"]["text"].startswith(f"scratch too small: on {host} RELION read 200 of 200 particles")
    assert f"ask lscratch:{need}" in row["verdict"]["text"]
