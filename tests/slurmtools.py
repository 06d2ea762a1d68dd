"""Small helpers for tests that run real jobs on the testbed (``make testbed-up``).

Everything is argv lists (no shell), every wait has a deadline, and a job that overruns is cancelled so a
stuck test cannot hold testbed nodes for the next one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

DEFAULT_TESTBED_DIR = Path("/var/tmp/relion-qsub-testbed")

# Job states after which a job never runs again (squeue/scontrol spelling).
TERMINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)


def testbed_dir() -> Path:
    """The testbed's state dir (slurm.conf, logs, per-node backing dirs under ``nodes/<name>/``)."""
    return Path(os.environ.get("RELION_QSUB_TESTBED_DIR", DEFAULT_TESTBED_DIR))


def job_env(**extra: str) -> dict[str, str]:
    """The caller's environment without SLURM_* job variables (keeping SLURM_CONF), plus ``extra``.

    A test run from inside an allocation must not leak that allocation's settings into the jobs it submits.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") or k == "SLURM_CONF"}
    env.update(extra)
    return env


def run(
    argv: list[str], *, timeout: float = 60, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a client command; on failure raise with its output (a bare CalledProcessError hides stderr)."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


def sbatch(script: Path, *options: str, env: dict[str, str] | None = None, timeout: float = 60) -> str:
    """Submit ``script`` with ``options`` and return the job id."""
    proc = run(["sbatch", "--parsable", *options, str(script)], env=env, timeout=timeout)
    return proc.stdout.strip().split(";")[0]


def job_info(job_id: str) -> dict[str, str]:
    """``scontrol show job -o`` as a dict (JobState, ExitCode, NodeList, ...); {} once it is forgotten."""
    proc = run(["scontrol", "show", "job", "-o", job_id], check=False, timeout=30)
    if proc.returncode != 0:
        return {}
    info: dict[str, str] = {}
    for field in proc.stdout.split():
        key, sep, value = field.partition("=")
        if sep and key not in info:  # the first of a repeated key (e.g. per-node lines) wins
            info[key] = value
    return info


def is_finished(job_id: str) -> bool:
    """True once the job is in a terminal state (or already forgotten by the controller)."""
    info = job_info(job_id)
    return not info or info.get("JobState") in TERMINAL_STATES


def cancel(job_id: str) -> None:
    run(["scancel", job_id], check=False, timeout=30)


def wait_for_job(job_id: str, timeout: float = 120, poll: float = 0.2) -> dict[str, str]:
    """Poll until the job reaches a terminal state and return its info; cancel it and fail at the deadline."""
    deadline = time.monotonic() + timeout
    info: dict[str, str] = {}
    while time.monotonic() < deadline:
        info = job_info(job_id)
        if info.get("JobState") in TERMINAL_STATES:
            return info
        time.sleep(poll)
    cancel(job_id)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s: {info}")


@dataclass(frozen=True)
class JobResult:
    job_id: str
    state: str
    exit_code: str  # "rc:signal" as scontrol prints it, e.g. "0:0"
    output: str  # the job's stdout+stderr file
    info: dict[str, str]

    @property
    def ok(self) -> bool:
        return self.state == "COMPLETED" and self.exit_code == "0:0"


def submit_and_wait(
    script_text: str,
    workdir: Path,
    *options: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    name: str = "job",
) -> JobResult:
    """Write ``script_text`` to ``workdir``, submit it there, wait for the end and read its output file.

    The output goes to ``workdir`` (jobs run as the submitting user and the host shares that filesystem).
    """
    script = workdir / f"{name}.sh"
    script.write_text(script_text)
    script.chmod(0o755)
    out = workdir / f"{name}-%j.out"
    job_id = sbatch(script, f"--chdir={workdir}", f"--output={out}", f"--job-name={name}", *options, env=env)
    info = wait_for_job(job_id, timeout=timeout)
    out_file = workdir / f"{name}-{job_id}.out"
    output = out_file.read_text() if out_file.exists() else ""
    return JobResult(job_id, info.get("JobState", ""), info.get("ExitCode", ""), output, info)


def wait_until(what: str, predicate: Callable[[], bool], timeout: float = 30, poll: float = 0.1) -> None:
    """Poll ``predicate()`` until true; fail saying ``what`` was awaited at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        time.sleep(poll)


# sacct's fields for one job and its steps, in this order (-P: '|' separated, no padding or truncation).
SACCT_FIELDS = ("JobID", "State", "ExitCode", "DerivedExitCode", "Elapsed", "MaxRSS", "ReqTRES", "AllocTRES")


def sacct(job_id: str) -> dict[str, dict[str, str]]:
    """The accounting records of a job from slurmdbd: {"N": {...}, "N.batch": {...}, "N.0": {...}}; {} if none.

    State is the first word only ("CANCELLED by 0" -> "CANCELLED").
    """
    proc = run(["sacct", "-n", "-P", "-j", job_id, "-o", ",".join(SACCT_FIELDS)], check=False, timeout=30)
    rows: dict[str, dict[str, str]] = {}
    if proc.returncode != 0:
        return rows
    for line in proc.stdout.splitlines():
        values = line.split("|")
        if len(values) != len(SACCT_FIELDS):
            continue
        row = dict(zip(SACCT_FIELDS, values, strict=True))
        row["State"] = row["State"].split()[0] if row["State"] else ""
        rows[row["JobID"]] = row
    return rows


def wait_for_sacct(job_id: str, timeout: float = 60, poll: float = 0.5) -> dict[str, dict[str, str]]:
    """sacct's records once the job's own record has a terminal state (slurmctld sends it to slurmdbd
    asynchronously, so it can lag behind ``scontrol``); fail at the deadline with what sacct said."""
    deadline = time.monotonic() + timeout
    rows: dict[str, dict[str, str]] = {}
    while time.monotonic() < deadline:
        rows = sacct(job_id)
        if rows.get(job_id, {}).get("State") in TERMINAL_STATES:
            return rows
        time.sleep(poll)
    raise AssertionError(f"sacct has no final record of job {job_id} within {timeout} s: {rows}")


def synthetic_particles(where: Path, *tools: str) -> Path:
    """200 noisy projections of the demo's 32^3 map (``where/parts.star``), made by the real ``relion_project``
    (as demo/run makes them); fails, never skips, when a RELION program the test needs is missing."""
    from demo.synthetic_map import density, mrc_bytes

    for tool in ("relion_project", *tools):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `make deps` (Debian package relion)")
    (where / "ref.mrc").write_bytes(mrc_bytes(density(32), 32, 3.0))
    proj = subprocess.run(
        ["relion_project", "--i", "ref.mrc", "--o", "parts", "--nr_uniform", "200", "--angpix", "3",
         "--add_noise", "--white_noise", "0.3"],
        cwd=where, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proj.returncode == 0 and (where / "parts.star").exists(), proj.stdout + proj.stderr
    return where / "parts.star"


def run_jobs(project: Path, job: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """``relion_pipeliner --RunJobs JOB`` in the background, as the GUI's Run and Continue (RELION's runJob on that
    job): it writes job.star and run_submit.script, runs the Queue submit command, and returns once a
    RELION_JOB_EXIT_* file appears in the job dir (its output: stdout, with stderr)."""
    argv = ["relion_pipeliner", "--RunJobs", job, "--sec_wait_after", "0"]
    return subprocess.Popen(argv, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
