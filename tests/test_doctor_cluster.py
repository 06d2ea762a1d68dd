"""relion-qsub doctor against real jobs on the testbed: submitted through bin/relion-qsub, ended by Slurm without a
RELION_JOB_EXIT_* file (what a kill by Slurm looks like to RELION), then diagnosed and marked failed.

Time-limit and out-of-memory endings are not waited for here (a 1-minute limit is too slow); test_doctor.py feeds
their messages through run.err and scontrol text instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.slurmtools import cancel, job_env, job_info, sbatch, wait_for_job, wait_until

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parent.parent
QSUB = str(ROOT / "bin" / "relion-qsub")

# What RELION would write for a one-process job, but the body never runs a relion_* program, so nothing writes
# RELION_JOB_EXIT_*: to RELION the job stays "Running".
SCRIPT = """#!/bin/bash
#SBATCH --partition=norm --time=0:05:00 --ntasks=1 --mem-per-cpu=1g
#SBATCH --error=Class2D/job001/run.err
#SBATCH --output=Class2D/job001/run.out
echo started
{body}
"""


PIPELINE = """
data_pipeline_general

_rlnPipeLineJobCounter 2

data_pipeline_processes

loop_
_rlnPipeLineProcessName #1
_rlnPipeLineProcessAlias #2
_rlnPipeLineProcessType #3
_rlnPipeLineProcessStatus #4
Class2D/job001/ None 8 0
"""


def qsub(
    *args: str, cwd: Path, slurm_conf: str | None = None, site: str = "testbed"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") or k == "SLURM_CONF"}
    env["RELION_QSUB_SITE"] = site
    if slurm_conf:
        env["SLURM_CONF"] = slurm_conf
    return subprocess.run([QSUB, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def no_watcher_site(project: Path) -> str:
    """The testbed's profile with the end-watcher turned off (submit.watch = false): the doctor is then the only
    one to find an ending nobody in the job saw (what these tests are about)."""
    text = (ROOT / "relion_qsub" / "profiles" / "testbed.toml").read_text()
    profile = project / "no-watcher.toml"
    profile.write_text(text.replace("[submit]\n", "[submit]\nwatch = false\n", 1))
    return str(profile)


def submit(project: Path, body: str, watch: bool = False) -> str:
    job = project / "Class2D" / "job001"
    job.mkdir(parents=True)
    (project / "default_pipeline.star").write_text(PIPELINE)
    (job / "run_submit.script").write_text(SCRIPT.format(body=body))
    proc = qsub("Class2D/job001/run_submit.script", cwd=project, site="testbed" if watch else no_watcher_site(project))
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.split()[-1]
    assert json.loads((job / "relion-qsub.jsonl").read_text().splitlines()[-1])["job_id"] == job_id
    return job_id


def doctor(project: Path, *args: str, slurm_conf: str | None = None) -> tuple[int, list[str]]:
    proc = qsub(
        "doctor", str(project), "--job", "Class2D/job001", "--no-images", *args, cwd=project, slurm_conf=slurm_conf
    )
    return proc.returncode, proc.stdout.splitlines()


def unreachable_conf(tmp_path: Path) -> str:
    """The testbed's config with the controller's port changed: scontrol says "Unable to contact slurm controller"."""
    conf_dir = tmp_path / "badconf"
    conf_dir.mkdir()
    for conf in Path(os.environ["SLURM_CONF"]).parent.glob("*.conf"):
        text = conf.read_text()
        if conf.name == "slurm.conf":
            port = re.search(r"^SlurmctldPort=(\d+)", text, re.MULTILINE)
            assert port, "the testbed's slurm.conf sets SlurmctldPort"
            text = text.replace(port.group(0), f"SlurmctldPort={int(port.group(1)) + 101}")
        (conf_dir / conf.name).write_text(text)
    return str(conf_dir / "slurm.conf")


def test_unreachable_controller_is_not_an_ended_job(tmp_path: Path) -> None:
    """A running job, and a doctor whose scontrol cannot reach the controller (real scontrol, real error; sacct
    says accounting is disabled): a warning that Slurm could not be asked, and --fix leaves the job alone."""
    project = tmp_path / "p"
    project.mkdir()
    job_id = submit(project, "sleep 120")
    try:
        wait_until("the job runs", lambda: job_info(job_id).get("JobState") == "RUNNING", timeout=60)
        code, lines = doctor(project, "--fix", slurm_conf=unreachable_conf(tmp_path))
        assert code == 0, lines
        assert any(
            line.startswith(f"warning: Class2D/job001/: RELION: running; Slurm could not be asked about job {job_id}: ")
            and "Unable to contact slurm controller" in line
            for line in lines
        ), lines
        assert not (project / "Class2D/job001/RELION_JOB_EXIT_FAILURE").exists()
        assert job_info(job_id).get("JobState") == "RUNNING"
    finally:
        cancel(job_id)


def test_invalid_job_id_is_a_forgotten_job(tmp_path: Path) -> None:
    """Real scontrol's answer for a job the controller does not know is what the doctor takes as "forgotten"."""
    job = tmp_path / "Class2D" / "job001"
    job.mkdir(parents=True)
    (tmp_path / "default_pipeline.star").write_text(PIPELINE)
    (job / "relion-qsub.jsonl").write_text(json.dumps({"job_id": "987654"}) + "\n")
    code, lines = doctor(tmp_path)
    assert code == 65 and any(
        line.startswith(
            "error: Class2D/job001/: RELION thinks running, Slurm says ended: Slurm no longer knows job 987654"
        )
        for line in lines
    ), lines


# A template's own `trap ... EXIT` replaces the one relion-qsub's preamble sets (jobend.py): then, without an
# end-watcher (this module's profile has none), only the doctor can tell RELION how the job ended.
NO_TRAP = "trap - EXIT\n"


def test_cancelled_job_relion_thinks_running_then_fixed(tmp_path: Path) -> None:
    job_id = submit(tmp_path, NO_TRAP + "sleep 120")
    try:
        wait_until("the job runs", lambda: job_info(job_id).get("JobState") == "RUNNING", timeout=60)
        node = job_info(job_id)["NodeList"]  # cn5 or cn6: whichever the shared cluster had free
        code, lines = doctor(tmp_path)
        assert code == 0, lines
        assert f"ok: Class2D/job001/: running: Slurm job {job_id} RUNNING on cn" in "\n".join(lines)
        # measured on the node through srun --overlap: the testbed's /lscratch is per-node, invisible here
        assert any(
            line.startswith(f"ok: Class2D/job001/: scratch /lscratch/{job_id} on {node}: 0.0 GB used by the job, ")
            for line in lines
        ), lines
    finally:
        cancel(job_id)
    assert wait_for_job(job_id, timeout=60)["JobState"] == "CANCELLED"
    code, lines = doctor(tmp_path)
    assert code == 65, lines
    assert any(
        line.startswith(f"error: Class2D/job001/: RELION thinks running, Slurm says ended: Slurm job {job_id} CANCEL")
        and "--fix creates RELION_JOB_EXIT_FAILURE" in line
        for line in lines
    ), lines
    # sacct says who: "CANCELLED by <uid>" (scontrol does not)
    assert any(
        line.startswith(f"warning: Class2D/job001/: Slurm: job {job_id} was cancelled by you (") for line in lines
    ), lines
    assert not (tmp_path / "Class2D/job001/RELION_JOB_EXIT_FAILURE").exists()  # nothing changed without --fix

    code, lines = doctor(tmp_path, "--fix")
    assert code == 0, lines
    assert (tmp_path / "Class2D/job001/RELION_JOB_EXIT_FAILURE").exists()
    assert f"Slurm job {job_id} ended (CANCELLED)" in (tmp_path / "Class2D/job001/run.err").read_text()
    code, lines = doctor(tmp_path, "--json")
    doc = json.loads("\n".join(lines))
    assert code == 0
    assert doc["findings"][-2]["what"] == f"RELION: failure; Slurm job {job_id} CANCELLED (exit code 0:15)"


def test_finished_without_exit_file(tmp_path: Path) -> None:
    job_id = submit(tmp_path, NO_TRAP + "exit 3")
    info = wait_for_job(job_id, timeout=60)
    assert info["JobState"] == "FAILED"
    code, lines = doctor(tmp_path, "--fix")
    assert code == 65, lines  # marked failed, but the job's own failure stays an error
    assert any(
        line.startswith(f"ok: Class2D/job001/: RELION thinks running, Slurm says ended: Slurm job {job_id} FAILED")
        and "fixed: created RELION_JOB_EXIT_FAILURE" in line
        for line in lines
    ), lines
    assert any(line.startswith(f"error: Class2D/job001/: Slurm: job {job_id} exited with an error") for line in lines)
    assert (tmp_path / "Class2D/job001/RELION_JOB_EXIT_FAILURE").exists()


def test_a_job_that_can_never_start_is_an_error(tmp_path: Path) -> None:
    """5 nodes on the 2-node norm partition: sbatch accepts it, Slurm leaves it PENDING (PartitionNodeLimit)
    forever. Submitted with bare sbatch (relion-qsub's own fit rules refuse it before sbatch)."""
    job = tmp_path / "Class2D" / "job001"
    job.mkdir(parents=True)
    (tmp_path / "default_pipeline.star").write_text(PIPELINE)
    script = tmp_path / "never.sh"
    script.write_text("#!/bin/sh\ntrue\n")
    job_id = sbatch(script, "-p", "norm", "--nodes=5", "-o", "/dev/null", env=job_env())
    (job / "relion-qsub.jsonl").write_text(json.dumps({"job_id": job_id}) + "\n")
    try:
        wait_until("Slurm gives the reason", lambda: job_info(job_id).get("Reason") == "PartitionNodeLimit", 30)
        code, lines = doctor(tmp_path)
        assert code == 65, lines
        assert any(
            line.startswith(f"error: Class2D/job001/: Slurm job {job_id} can never start: PENDING (PartitionNodeLimit)")
            and "fewer nodes" in line
            for line in lines
        ), lines
        code, lines = doctor(tmp_path, "--fix")
        assert any(
            "fixed: created RELION_JOB_EXIT_FAILURE" in line and f"cancelled job {job_id}" in line for line in lines
        )
        assert "can never start (PENDING PartitionNodeLimit)" in (job / "run.err").read_text()
        wait_until("it is cancelled", lambda: job_info(job_id).get("JobState", "CANCELLED") == "CANCELLED", 30)
    finally:
        cancel(job_id)


def test_without_job_every_job_the_pipeline_shows_running_is_checked(tmp_path: Path) -> None:
    job_id = submit(tmp_path, NO_TRAP + "exit 3")
    assert wait_for_job(job_id, timeout=60)["JobState"] == "FAILED"
    proc = qsub("doctor", str(tmp_path), "--no-images", cwd=tmp_path)
    assert proc.returncode == 65, proc.stdout
    assert f"error: Class2D/job001/: RELION thinks running, Slurm says ended: Slurm job {job_id} FAILED" in proc.stdout


def test_the_watcher_tells_relion_before_the_doctor_has_to(tmp_path: Path) -> None:
    """With the end-watcher (the default), a job cancelled while running is marked failed without the doctor."""
    job_id = submit(tmp_path, "sleep 120", watch=True)
    wait_until("the job runs", lambda: job_info(job_id).get("JobState") == "RUNNING", timeout=60)
    cancel(job_id)
    failure = tmp_path / "Class2D/job001/RELION_JOB_EXIT_FAILURE"
    wait_until("the watcher marks it failed", failure.exists, timeout=60)
    _, lines = doctor(tmp_path)
    assert any(line.startswith(f"ok: Class2D/job001/: RELION: failure; Slurm job {job_id} CANCELLED") for line in lines)
