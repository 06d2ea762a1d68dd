"""Controller faults on the real testbed: a stalled slurmctld must not turn one RELION job into two.

Verified here first (Slurm 22.05): with slurmctld stopped, sbatch fails after MessageTimeout (10 s) with "Socket
timed out on send/recv operation" -- and when the controller resumes it processes the request that was already in
its socket, so the job exists although sbatch said it failed. A blind retry would submit it twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.slurmtools import testbed_dir as state_dir
from tests.slurmtools import wait_for_job

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = """#!/bin/bash
#SBATCH --partition=norm --ntasks=1 --time=0:05:00
#SBATCH --output=Class2D/job001/run.out --error=Class2D/job001/run.err
hostname
"""


def controller_pid() -> int:
    pid = int((state_dir() / "run" / "slurmctld.pid").read_text().strip())
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "slurmctld"
    return pid


def live_jobs_with(token: str) -> list[str]:
    """Jobs carrying ``token`` that were not cancelled (a twin relion-qsub cancelled never did any work)."""
    out = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--format=%i|%T|%k"], capture_output=True, text=True, check=True
    ).stdout
    rows = [row.split("|", 2) for row in out.splitlines()]
    return [job for job, state, comment in rows if token in comment and state != "CANCELLED"]


def test_stalled_controller_still_gives_exactly_one_job(tmp_path: Path) -> None:
    job = tmp_path / "Class2D" / "job001"
    job.mkdir(parents=True)
    (job / "run_submit.script").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") or k == "SLURM_CONF"}
    env["RELION_QSUB_SITE"] = "testbed"
    pid = controller_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        qsub = subprocess.Popen(
            [str(ROOT / "bin" / "relion-qsub"), "Class2D/job001/run_submit.script"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(12)  # past sbatch's 10 s MessageTimeout: it has failed by now, its request still queued
    finally:
        os.kill(pid, signal.SIGCONT)
    out, err = qsub.communicate(timeout=120)
    assert qsub.returncode == 0, err
    (entry,) = [json.loads(line) for line in (job / "relion-qsub.jsonl").read_text().splitlines()]
    assert entry["attempts"][0]["error"].endswith("Socket timed out on send/recv operation")
    # Seen every time here: the second squeue answer (settle seconds later) finds the job, so no retry at all.
    # Were it slower, the retry's twin would be cancelled (_keep_one): either way one job does the work.
    assert any("found_by_token" in a or "cancelled_twins" in a for a in entry["attempts"]), entry["attempts"]
    assert out == f"Submitted batch job {entry['job_id']}\n"
    if any("found_by_token" in a for a in entry["attempts"]):  # sbatch's error line is not the last word
        assert f"the job was found by its token: {entry['job_id']}" in err.splitlines()[-1], err
    # The first request goes in un-held (the script runs the guard): found by its token, it needs no release. After
    # a retry, the retry went in held, the kept-job file names it, and it was released.
    found = any("found_by_token" in a for a in entry["attempts"]) and not any(
        "kept_file" in a for a in entry["attempts"]
    )
    assert entry["watcher"] and entry["held"] is not found and entry["released"] is not found, entry
    assert ("--begin=now+365days" in entry["sbatch_argv"]) is not found
    assert live_jobs_with(entry["token"]) == [entry["job_id"]]
    assert wait_for_job(entry["job_id"], timeout=60)["JobState"] == "COMPLETED"
