"""The real relion_pipeliner watches a job that Slurm ends where no RELION program sees it: it must see it Failed.

relion_pipeliner --RunJobs submits through relion-qsub (Queue submit command) and waits until a RELION_JOB_EXIT_*
file appears in the job dir, then writes the job's status into default_pipeline.star: this is what the GUI shows.
The templates here run no RELION program (except where said), so only relion-qsub's end-watcher can tell RELION.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.slurmtools import cancel, job_info, run, run_jobs, wait_for_job, wait_until
from tests.test_reliability_cluster import _second_node, controller_pid, env

pytestmark = [pytest.mark.slurm, pytest.mark.relion]

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = """#!/bin/bash
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH --partition=XXXqueueXXX
#SBATCH --error=XXXerrfileXXX
#SBATCH --output=XXXoutfileXXX
#SBATCH --time=0:05:00
#SBATCH {memory}
#SBATCH XXXextra1XXX
echo "job $SLURM_JOB_ID started"
{body}
"""
FAILED = "3"  # RELION 3.1 PROC_FINISHED_FAILURE in _rlnPipeLineProcessStatus


def pipeliner(
    project: Path, body: str, directives: str, site: str = "testbed", memory: str = "--mem-per-cpu=1g"
) -> subprocess.Popen[str]:
    """Add a Class2D job with this template and start relion_pipeliner --RunJobs on it (it waits for the end)."""
    if shutil.which("relion_pipeliner") is None:
        pytest.fail("relion_pipeliner is not installed: run `make deps` (Debian package relion)")
    project.mkdir(parents=True, exist_ok=True)
    (project / "default_pipeline.star").write_text("data_pipeline_general\n\n_rlnPipeLineJobCounter 1\n")
    (project / "particles.star").write_text("")
    template = project / "template.sh"
    template.write_text(TEMPLATE.format(body=body, memory=memory))
    job_env = env(RELION_QSUB_SITE=site, RELION_QSUB_EXTRA_COUNT="1", RELION_QSUB_EXTRA1="SBATCH directives")
    options = ";".join(
        [
            "fn_img == particles.star",
            "nr_mpi == 1",
            "nr_threads == 1",
            "do_queue == Yes",
            f"qsub == {ROOT / 'bin' / 'relion-qsub'}",
            f"qsubscript == {template}",
            "queuename == norm",
            f"qsub_extra1 == {directives}",
        ]
    )
    kw = dict(cwd=project, env=job_env, capture_output=True, text=True, timeout=60, check=True)
    subprocess.run(["relion_pipeliner", "--addJob", "Class2D", "--addJobOptions", options], **kw)  # type: ignore[call-overload]
    return run_jobs(project, "Class2D/job001/", job_env)


def job_id_of(project: Path) -> str:
    record = project / "Class2D" / "job001" / "relion-qsub.jsonl"
    wait_until("relion-qsub recorded the job", lambda: record.exists() and '"job_id"' in record.read_text(), 60)
    import json

    return str(json.loads(record.read_text().splitlines()[-1])["job_id"])


def pipeline_says_failed(project: Path, pipe: subprocess.Popen[str], timeout: float = 75) -> str:
    """relion_pipeliner returns once the exit file is there; the pipeline shows the job Failed; the run.err line."""
    try:
        out, _ = pipe.communicate(timeout=timeout)
    finally:
        if pipe.poll() is None:
            pipe.kill()
    job = project / "Class2D" / "job001"
    assert (job / "RELION_JOB_EXIT_FAILURE").exists() and not (job / "RELION_JOB_EXIT_SUCCESS").exists(), out
    rows = [line.split() for line in (project / "default_pipeline.star").read_text().splitlines()]
    (row,) = [r for r in rows if len(r) == 4 and r[0] == "Class2D/job001/"]  # the pipeline_processes row
    assert row[-1] == FAILED, (row, out)
    (line,) = [x for x in (job / "run.err").read_text().splitlines() if x.startswith("relion-")]
    print(f"\nrun.err: {line}")
    return line


def test_pipeliner_sees_a_cancel_while_pending(tmp_path: Path) -> None:
    pipe = pipeliner(tmp_path, "sleep 60", "--hold")  # held by the user: PENDING until cancelled
    job_id = job_id_of(tmp_path)
    assert job_info(job_id)["JobState"] == "PENDING"
    cancel(job_id)
    assert "was cancelled by you" in pipeline_says_failed(tmp_path, pipe)


def test_pipeliner_sees_an_out_of_memory_kill(tmp_path: Path) -> None:
    pipe = pipeliner(tmp_path, "python3 -c 'bytearray(400 << 20)'\nexit 0", "--comment=oom", memory="--mem=100M")
    job_id = job_id_of(tmp_path)
    line = pipeline_says_failed(tmp_path, pipe)
    assert f"Slurm job {job_id} ran out of memory" in line and "OUT_OF_MEMORY" in line


def test_pipeliner_sees_a_node_failure(tmp_path: Path) -> None:
    body = "srun -N2 -n2 sleep 60\n: > Class2D/job001/RELION_JOB_EXIT_SUCCESS"  # a rerun would say SUCCESS
    pipe = pipeliner(tmp_path, body, "--partition=gpu --nodes=2 --ntasks=2 --exclusive")
    job_id = job_id_of(tmp_path)
    job = tmp_path / "Class2D" / "job001"
    wait_until(
        "the job runs", lambda: "started" in (job / "run.out").read_text() if (job / "run.out").exists() else False
    )
    node = _second_node(job_info(job_id)["NodeList"])
    try:
        run(["scontrol", "update", f"NodeName={node}", "State=DOWN", "Reason=relion-qsub-test-node-failure"])
        line = pipeline_says_failed(tmp_path, pipe)
    finally:
        run(["scontrol", "update", f"NodeName={node}", "State=RESUME"], check=False)
    assert job_id in line or "SIGTERM" in line, line
    time.sleep(5)
    assert not (job / "RELION_JOB_EXIT_SUCCESS").exists()  # --no-requeue: never rerun


def test_pipeliner_sees_a_submission_lost_in_a_controller_outage(tmp_path: Path) -> None:
    profile = tmp_path / "fast.toml"
    testbed = (ROOT / "relion_qsub" / "profiles" / "testbed.toml").read_text()
    fast = "[submit]\ntimeout = 2\nattempts = 2\nbackoff = [0.5]\nsettle = 0.5\n"
    profile.write_text(testbed.replace("[submit]\ntimeout = 30\nattempts = 3\nbackoff = [1, 2]\n", fast))
    project = tmp_path / "p"
    pid = controller_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        pipe = pipeliner(project, ": > Class2D/job001/RELION_JOB_EXIT_SUCCESS", "--comment=x", site=str(profile))
        job = project / "Class2D" / "job001"
        wait_until("relion-qsub gave up", (job / "RELION_JOB_EXIT_FAILURE").exists, timeout=30)
        # read now: once the controller resumes, the lost request's job starts and Slurm truncates run.err
        (line,) = [x for x in (job / "run.err").read_text().splitlines() if x.startswith("relion-")]
    finally:
        os.kill(pid, signal.SIGCONT)
    later = pipeline_says_failed(project, pipe)
    assert "ends at once without running anything" in line, line
    assert later == line or "relion-qsub kept no job for this submission" in later, later
    token = line.rsplit("; token ", 1)[1].rstrip(")")
    time.sleep(5)  # the controller has processed the lost request by now: an un-held job, ended by its guard
    rows = [r.split("|") for r in run(["squeue", "-h", "--states=all", "-o", "%i|%T|%r|%k"]).stdout.splitlines()]
    ghosts = [r for r in rows if r[3].rsplit("[", 1)[-1].strip("] ") == token]
    for ghost in ghosts:
        assert wait_for_job(ghost[0], timeout=60)["JobState"] == "COMPLETED", ghost
    assert not (project / "Class2D" / "job001" / "RELION_JOB_EXIT_SUCCESS").exists()
