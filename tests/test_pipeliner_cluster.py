"""RELION's own submit path: relion_pipeliner fills the template and runs relion-qsub, the job reaches Slurm."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.slurmtools import wait_for_job

pytestmark = [pytest.mark.slurm, pytest.mark.relion]

ROOT = Path(__file__).resolve().parent.parent


def test_relion_pipeliner_submits_through_relion_qsub(tmp_path: Path) -> None:
    if shutil.which("relion_pipeliner") is None:
        pytest.fail("relion_pipeliner is not installed: run `make deps` (Debian package relion)")
    (tmp_path / "default_pipeline.star").write_text("data_pipeline_general\n\n_rlnPipeLineJobCounter 1\n")
    # --RunJobs waits forever for an input file that does not exist; an empty one lets the job start (and fail).
    (tmp_path / "particles.star").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") or k == "SLURM_CONF"}
    env.update(
        RELION_QSUB_SITE="testbed",
        RELION_QSUB_EXTRA_COUNT="4",
        RELION_QSUB_EXTRA1="Walltime",
        RELION_QSUB_EXTRA2="Memory per thread",
        RELION_QSUB_EXTRA3="Gres",
        RELION_QSUB_EXTRA4="SBATCH directives",
    )
    options = ";".join(
        [
            "fn_img == particles.star",
            "nr_mpi == 1",
            "nr_threads == 1",
            "do_queue == Yes",
            f"qsub == {ROOT / 'bin' / 'relion-qsub'}",
            f"qsubscript == {ROOT / 'tests' / 'data' / 'testbed_common.sh'}",
            "queuename == norm",
            "qsub_extra1 == 0:05:00",
            "qsub_extra2 == 500",
            "qsub_extra3 == lscratch:5",
            "qsub_extra4 == ",  # an empty GUI box: RELION writes a bare "#SBATCH "
        ]
    )
    run = dict(cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True)
    subprocess.run(["relion_pipeliner", "--addJob", "Class2D", "--addJobOptions", options], **run)  # type: ignore[call-overload]
    # Blocks until a RELION_JOB_EXIT_* file appears: here relion_refine's own, written inside the Slurm job.
    proc = subprocess.run(["relion_pipeliner", "--RunJobs", "Class2D/job001/", "--sec_wait_after", "0"], **run)  # type: ignore[call-overload]
    job = tmp_path / "Class2D" / "job001"
    assert "Submitted batch job" in proc.stdout
    entry = json.loads((job / "relion-qsub.jsonl").read_text())
    assert entry["submitted"] is True and entry["original"] == "Class2D/job001/run_submit.script"
    info = wait_for_job(entry["job_id"], timeout=60)
    assert info["Partition"] == "norm" and "lscratch:5" in info["TresPerNode"]
    out = (job / "run.out").read_text()
    assert f"relion-qsub testbed job {entry['job_id']}" in out
    slurm = (job / "run_submit.slurm").read_text()
    assert "--scratch_dir /lscratch/$SLURM_JOB_ID" in slurm and "#SBATCH \n" not in slurm
    # relion_refine ran in the job and told RELION it failed (the particles file is empty): the pipeline is truthful.
    assert (job / "RELION_JOB_EXIT_FAILURE").exists()
