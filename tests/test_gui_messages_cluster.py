"""What reaches the GUI after a failure is enough to act on (issue 22): RELION shows the job's run.err, not the
terminal relion-qsub printed to."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.slurmtools import job_env

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parent.parent
TESTBED = (ROOT / "relion_qsub" / "profiles" / "testbed.toml").read_text()


def test_sbatchs_refusal_carries_relion_qsubs_hint_into_run_err(tmp_path: Path) -> None:
    """A Queue name the site does not have: sbatch says only "Invalid partition name specified"; relion-qsub's
    warning names the partitions there are, and now run.err says it too."""
    site = tmp_path / "site.toml"
    site.write_text(TESTBED.replace('unknown_partition = "error"', 'unknown_partition = "warn"'))
    job = tmp_path / "Class2D" / "job001"
    job.mkdir(parents=True)
    script = job / "run_submit.script"
    script.write_text(
        "#!/bin/bash\n#SBATCH --partition=gpuu\n#SBATCH --ntasks=1\n#SBATCH --time=0:05:00\n"
        "#SBATCH --gres=lscratch:5\n#SBATCH --error=Class2D/job001/run.err\n#SBATCH --output=Class2D/job001/run.out\n"
        "hostname\n"
    )
    done = subprocess.run(
        [str(ROOT / "bin" / "relion-qsub"), "--site", str(site), "Class2D/job001/run_submit.script"],
        cwd=tmp_path,
        env=job_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0, done.stdout + done.stderr
    err = (job / "run.err").read_text()
    assert "Invalid partition name specified" in err, err
    assert "relion-qsub had warned: " in err and "set 'Queue name' to one of gpu, multinode, norm" in err, err
    assert (job / "RELION_JOB_EXIT_FAILURE").exists()
