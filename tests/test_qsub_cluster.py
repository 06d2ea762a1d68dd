"""relion-qsub against the real testbed: what the user meant takes effect in Slurm, and the job runs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from relion_qsub.slurm.options import OPTIONS, REQUIRED
from tests.slurmtools import job_info, wait_for_job

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parent.parent
QSUB = str(ROOT / "bin" / "relion-qsub")

# The seed's common.sh as RELION fills it for a Class2D GPU row (the k80 row's "--exlusive" typo included),
# moved onto the testbed: p100 nodes, Gres split over two boxes, a stray --mem beside --mem-per-cpu.
FILLED = """#!/bin/bash
#SBATCH --ntasks=10
#SBATCH --partition=gpu
#SBATCH --cpus-per-task=2
#SBATCH --error=Class2D/job001/run.err
#SBATCH --output=Class2D/job001/run.out
#SBATCH --open-mode=append
#SBATCH --time=0:10:00
#SBATCH --mem-per-cpu=1000
#SBATCH --gres=lscratch:10
#SBATCH --nodes=2 --ntasks-per-node=5 --exlusive
#SBATCH --gres=gpu:p100:4 --mem=4000
#SBATCH XXXextra6XXX
echo "nodes=$SLURM_JOB_NODELIST gpus=$SLURM_JOB_GPUS"
relion_refine_mpi() { echo "$FUNCNAME $*"; }
relion_refine_mpi --o Class2D/job001/run --i particles.star --pipeline_control Class2D/job001/
touch Class2D/job001/RELION_JOB_EXIT_SUCCESS

"""


def qsub(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") or k == "SLURM_CONF"}
    environ["RELION_QSUB_SITE"] = "testbed"
    environ.update(env or {})
    return subprocess.run([QSUB, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=120)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    job = tmp_path / "Class2D" / "job001"
    job.mkdir(parents=True)
    (job / "run_submit.script").write_text(FILLED)
    return tmp_path


def test_filled_relion_script_lands_as_meant(project: Path) -> None:
    proc = qsub("Class2D/job001/run_submit.script", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Submitted batch job ")
    job_id = proc.stdout.split()[-1]
    info = job_info(job_id)
    assert info["OverSubscribe"] == "NO"  # --exlusive was repaired to --exclusive
    assert set(info["TresPerNode"].split(",")) == {"gres:lscratch:10", "gres:gpu:p100:4"}  # both --gres kept
    assert info["MinMemoryCPU"] == "1000M"  # --mem dropped, --mem-per-cpu kept
    assert (info["NumNodes"].split("-")[0], info["NumTasks"], info["Partition"]) == ("2", "10", "gpu")
    assert "relion-qsub:" in info["Comment"]
    final = wait_for_job(job_id, timeout=120)
    assert final["JobState"] == "COMPLETED", final
    out = (project / "Class2D/job001/run.out").read_text()
    assert "gpus=0,1,2,3" in out
    # The GUI shows run.out: relion-qsub's report is its first lines.
    assert out.startswith("relion-qsub: warning: line 13: dropped 'XXXextra6XXX'"), out
    assert "relion-qsub: fixed: line 11: '--exlusive' is not an sbatch option; read it as '--exclusive'" in out
    assert f"--scratch_dir /lscratch/{job_id} --o" in out  # injected, with the job id expanded by the job shell
    assert (project / "Class2D/job001/run_submit.script").read_text() == FILLED
    entry = json.loads((project / "Class2D/job001/relion-qsub.jsonl").read_text())
    assert entry["job_id"] == job_id and {c["rule"] for c in entry["changes"]} >= {
        "typo",
        "memory-conflict",
        "duplicate-gres",
    }


def test_rejected_job_is_marked_failed_for_relion(project: Path) -> None:
    script = project / "Class2D/job001/run_submit.script"
    # 5 nodes on a 4-node partition: accepted by our rules (they do not know node counts) but sbatch refuses
    # only at scheduling time; use a request sbatch refuses at once instead: more GPUs than any node has.
    script.write_text(FILLED.replace("--ntasks=10", "--ntasks=10 --mincpus=1000"))
    proc = qsub("Class2D/job001/run_submit.script", cwd=project)
    assert proc.returncode == 1, proc
    assert "Requested node configuration is not available" in proc.stderr
    assert (project / "Class2D/job001/RELION_JOB_EXIT_FAILURE").exists()
    assert "job not submitted" in (project / "Class2D/job001/run.err").read_text()


def test_check_submits_nothing(project: Path) -> None:
    # Only jobs submitted from this project count: other tests (and other people) share the testbed, so a job of
    # theirs landing meanwhile must not fail this test. --states=all keeps ended jobs for MinJobAge.
    def here() -> list[str]:
        argv = ["squeue", "-h", "--states=all", "-o", "%i|%Z"]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        return [line for line in out.splitlines() if line.partition("|")[2] == str(project)]

    before = here()
    proc = qsub("check", "Class2D/job001/run_submit.script", cwd=project)
    assert proc.returncode == 0 and "#SBATCH --nodes=2 --ntasks-per-node=5 --exclusive" in proc.stdout
    assert here() == before
    assert not (project / "Class2D/job001/relion-qsub.jsonl").exists()  # nothing recorded: nothing submitted


def test_every_option_in_our_table_is_known_to_this_sbatch(tmp_path: Path) -> None:
    """The option table must match the real sbatch: each name is accepted (never 'unrecognized option')."""
    script = tmp_path / "t.sh"
    script.write_text("#!/bin/sh\ntrue\n")
    for option in OPTIONS:
        if option.name in ("help", "usage", "version", "wait", "wrap", "test-only", "parsable"):
            continue
        word = f"--{option.name}=1" if option.arg is REQUIRED else f"--{option.name}"
        proc = subprocess.run(["sbatch", "--test-only", word, str(script)], capture_output=True, text=True, timeout=30)
        assert "unrecognized option" not in proc.stderr and "invalid option" not in proc.stderr, (
            word,
            proc.stderr,
        )
    proc = subprocess.run(["sbatch", "--test-only", "--exlusive", str(script)], capture_output=True, text=True)
    assert "unrecognized option" in proc.stderr  # the check above can fail


def test_token_lookup_finds_the_submitted_job_in_the_real_squeue(project: Path) -> None:
    """The exactly-once retry relies on squeue showing our --comment token: check it against the real squeue."""
    from relion_qsub import profile
    from relion_qsub.submit import find_by_token

    proc = qsub("Class2D/job001/run_submit.script", cwd=project)
    assert proc.returncode == 0, proc.stderr
    entry = json.loads((project / "Class2D/job001/relion-qsub.jsonl").read_text())
    testbed = profile.load("testbed")
    assert find_by_token(testbed, entry["token"]) == entry["job_id"]
    assert find_by_token(testbed, "relion-qsub:never-submitted") is None
    wait_for_job(entry["job_id"], timeout=120)
