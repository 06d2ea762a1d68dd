"""`make demo` on the real testbed: demo/run drives RELION's own submit path end to end and checks itself.

demo/run exits non-zero on anything that does not happen as described; this test also pins the lines a newcomer
reads: what relion-qsub changed, the homogeneous+1 layout, RELION's verdicts, and the refusal sentence.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.slurmtools import job_env

pytestmark = [pytest.mark.slurm, pytest.mark.relion]

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_relion_class2d_end_to_end(tmp_path: Path) -> None:
    for tool in ("relion_pipeliner", "relion_project", "relion_refine_mpi"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `make deps` (Debian package relion)")
    project = tmp_path / "demo"
    proc = subprocess.run(
        [str(ROOT / "demo" / "run")],
        env=job_env(RELION_QSUB_DEMO_DIR=str(project)),
        capture_output=True,
        text=True,
        timeout=300,  # demo/run bounds its own waits (240 s per job); normally about 10 s
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert re.search(r"^demo: OK in \d+ s", out, re.M), out

    # The real job: relion-qsub's repair, relion-launch's layout, Slurm's and RELION's verdicts, the classes.
    assert "relion-qsub: fixed: line 13: merged 2 --gres directives into --gres=lscratch:5,gpu:p100:4" in out
    job = re.search(r"Submitted batch job (\d+)", out)
    assert job, out
    assert "relion-launch: homogeneous+1 | ranks 9 | ranks/node 5,4 | GPUs/rank all 4 visible (unused: CPU run)" in out
    assert "running 9 ranks (1 leader + 2 nodes × 4 workers) of the 10 tasks allocated" in out
    assert "RELION: Number of MPI processes = 9" in out
    assert re.search(r"Slurm: JobState=COMPLETED ExitCode=0:0 .*NodeList=cn\[\d-\d\] NumTasks=10", out), out
    assert "RELION: Class2D/job001/RELION_JOB_EXIT_SUCCESS; the pipeline shows Class2D/job001/ as Succeeded" in out
    assert re.search(r"output: Class2D/job001/run_it002_classes\.mrcs \(2 class averages of 32x32 px\)", out), out
    job001 = project / "Class2D" / "job001"
    assert (job001 / "RELION_JOB_EXIT_SUCCESS").exists() and (job001 / "run_it002_classes.mrcs").exists()
    assert f"lscratch/{job.group(1)}" in (job001 / "run.out").read_text()  # RELION's scratch, per job

    # The refused job: one sentence in run.err, RELION_JOB_EXIT_FAILURE at once, nothing sent to Slurm.
    refusal = (
        "relion-qsub: job not submitted: Class2D/job002/run_submit.script line 14: "
        "unrecognized option '--frobnicate': remove it from the 'SBATCH Directives' box"
    )
    assert refusal in out
    assert re.search(r"RELION: Class2D/job002/RELION_JOB_EXIT_FAILURE after [\d.]+ s, nothing sent to Slurm", out)
    job002 = project / "Class2D" / "job002"
    assert (job002 / "RELION_JOB_EXIT_FAILURE").exists() and not (job002 / "run.out").exists()
    assert out.count("Submitted batch job") == 1
