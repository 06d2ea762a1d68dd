"""Hostile paths end to end on the real testbed: submit, relion-launch and the end-watcher.

The project dir and the job dir both carry ``HOSTILE_NAME`` (spaces, quotes, ``;``, ``$(...)``, backquotes, a
newline). A RELION job dir never holds a newline in practice (RELION names them ``Type/jobNNN/``, aliases are
symlinks), but a standalone script may live anywhere, and the end-watcher's ``--wrap`` line and relion-launch's
``--pipeline_control`` argument carry the job dir through a shell: argv must stay a list, or a quoted word, end to
end. The script below has no ``--output``/``--error`` directives because a ``#SBATCH`` line cannot hold a newline;
the job's output goes to Slurm's default ``slurm-N.out`` in the submit directory.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import HOSTILE_NAME
from tests.slurmtools import cancel, job_info, wait_for_job, wait_until

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parent.parent
QSUB = str(ROOT / "bin" / "relion-qsub")
LAUNCH = str(ROOT / "bin" / "relion-launch")
FAILURE = "RELION_JOB_EXIT_FAILURE"
SUCCESS = "RELION_JOB_EXIT_SUCCESS"


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") or k == "SLURM_CONF"}
    out["RELION_QSUB_SITE"] = "testbed"
    return out


def make_job(project: Path, body: str) -> Path:
    """``<project>/Class2D/<HOSTILE_NAME>/run_submit.script`` running ``body`` (``{job}``: the job dir, quoted)."""
    job = project / "Class2D" / HOSTILE_NAME
    job.mkdir(parents=True)
    script = "#!/bin/bash\n#SBATCH --partition=norm --time=0:05:00 --ntasks=1 --mem-per-cpu=1g\n"
    (job / "run_submit.script").write_text(script + body.format(job=shlex.quote(f"Class2D/{HOSTILE_NAME}/")) + "\n")
    return job


def submit(project: Path, *args: str) -> dict[str, object]:
    argv = [QSUB, f"Class2D/{HOSTILE_NAME}/run_submit.script", *args]
    proc = subprocess.run(argv, cwd=project, env=env(), capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    record = (project / "Class2D" / HOSTILE_NAME / "relion-qsub.jsonl").read_text().splitlines()[-1]
    entry: dict[str, object] = json.loads(record)
    assert proc.stdout == f"Submitted batch job {entry['job_id']}\n"
    return entry


def no_injection(root: Path) -> None:
    assert not list(root.rglob("pwned")), "a path was run as shell code"


def test_submit_and_launch_in_a_hostile_dir(hostile_path: Path, tmp_path: Path) -> None:
    body = f"{shlex.quote(LAUNCH)} sh -c 'exit 0' --pipeline_control {{job}}\n: > {{job}}{SUCCESS}"
    job = make_job(hostile_path, body)
    entry = submit(hostile_path)
    assert wait_for_job(str(entry["job_id"]), timeout=90)["JobState"] == "COMPLETED"
    assert (job / SUCCESS).exists() and not (job / FAILURE).exists()
    assert (job / "run_submit.slurm").is_file()  # the normalised script beside RELION's, in the hostile dir
    no_injection(tmp_path)


def test_relion_launch_marks_a_hostile_job_dir_failed(hostile_path: Path, tmp_path: Path) -> None:
    job = make_job(hostile_path, f"{shlex.quote(LAUNCH)} sh -c 'exit 3' --pipeline_control {{job}}")
    entry = submit(hostile_path)
    wait_for_job(str(entry["job_id"]), timeout=90)
    wait_until(f"{FAILURE} in the hostile job dir", lambda: (job / FAILURE).exists(), timeout=60)
    assert "relion-launch:" in (job / "run.err").read_text()
    no_injection(tmp_path)


def test_end_watcher_writes_into_a_hostile_job_dir(hostile_path: Path, tmp_path: Path) -> None:
    job = make_job(hostile_path, "sleep 60")
    entry = submit(hostile_path, "--hold")  # the user's own hold: PENDING until the cancel
    job_id = str(entry["job_id"])
    assert entry["watcher"], entry
    assert job_info(job_id)["JobState"] == "PENDING"
    cancel(job_id)
    wait_until(f"{FAILURE} in the hostile job dir", lambda: (job / FAILURE).exists(), timeout=75)
    lines = [line for line in (job / "run.err").read_text().splitlines() if line.startswith("relion-qsub:")]
    assert len(lines) == 1 and f"Slurm job {job_id} was cancelled" in lines[0], lines
    no_injection(tmp_path)
