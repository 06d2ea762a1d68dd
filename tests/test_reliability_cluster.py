"""Every Slurm ending reaches RELION, and no failure report is false: the rows of issue 13, on the real testbed.

Each test submits through bin/relion-qsub (held, released, with its end-watcher job), ends the job the way the row
says, and waits for RELION_JOB_EXIT_FAILURE with one run.err line saying what happened. The seconds from Slurm's
end (sacct End) to the exit file are printed (``-s``) for the README's Reliability matrix. Tests that stop a node or
the controller keep it to seconds and restore it in ``finally`` (other engineers' tests share the testbed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.slurmtools import cancel, job_info, run, wait_for_job, wait_until
from tests.slurmtools import testbed_dir as state_dir

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parent.parent
QSUB = str(ROOT / "bin" / "relion-qsub")
LAUNCH = str(ROOT / "bin" / "relion-launch")
FAILURE = "RELION_JOB_EXIT_FAILURE"
SUCCESS = "RELION_JOB_EXIT_SUCCESS"
SCRIPT = """#!/bin/bash
#SBATCH --partition=norm --time=0:05:00 --ntasks=1 --mem-per-cpu=1g
#SBATCH --error=Class2D/job001/run.err
#SBATCH --output=Class2D/job001/run.out
echo "job $SLURM_JOB_ID started"
{body}
"""


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") or k == "SLURM_CONF"}
    out["RELION_QSUB_SITE"] = "testbed"
    out.update(extra)
    return out


def job_dir(project: Path, body: str, script: str = SCRIPT) -> Path:
    job = project / "Class2D" / "job001"
    job.mkdir(parents=True)
    (job / "run_submit.script").write_text(script.format(body=body))
    return job


def qsub(project: Path, *args: str, site_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [QSUB, "Class2D/job001/run_submit.script", *args]
    return subprocess.run(argv, cwd=project, env=site_env or env(), capture_output=True, text=True, timeout=180)


def submitted(project: Path, *args: str) -> dict[str, object]:
    proc = qsub(project, *args)
    assert proc.returncode == 0, proc.stderr
    entry: dict[str, object] = json.loads((project / "Class2D/job001/relion-qsub.jsonl").read_text().splitlines()[-1])
    assert proc.stdout == f"Submitted batch job {entry['job_id']}\n"
    assert entry["watcher"], entry
    return entry


def sacct_end(job_id: str) -> float:
    """Slurm's end time of the job (sacct End, whole seconds) as a Unix time."""
    out = ""
    for _ in range(50):
        out = run(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "End"], check=False).stdout.strip()
        if out and out != "Unknown":
            break
        time.sleep(0.2)
    return time.mktime(time.strptime(out.splitlines()[0], "%Y-%m-%dT%H:%M:%S"))


def failure_line(job: Path, job_id: str, timeout: float = 60) -> str:
    """Wait for RELION_JOB_EXIT_FAILURE (at most ``timeout`` s after Slurm ended the job); print the seconds."""
    wait_until(f"{FAILURE} in {job}", lambda: (job / FAILURE).exists(), timeout=timeout + 15)
    seconds = (job / FAILURE).stat().st_mtime - sacct_end(job_id)
    print(f"\nseconds to FAILURE after Slurm's end of job {job_id}: {seconds:.1f}")
    assert seconds <= timeout
    assert not (job / SUCCESS).exists()
    lines = [line for line in (job / "run.err").read_text().splitlines() if line.startswith("relion-")]
    assert len(lines) == 1, lines
    print(f"run.err: {lines[0]}")
    return lines[0]


def state(job_id: str) -> str:
    return run(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "State"], check=False).stdout.strip()


def watcher_gone(watcher: str) -> None:
    """The watcher of a job that ended well: cancelled unrun by slurmctld, no process."""
    wait_until("the watcher ends", lambda: job_info(watcher).get("JobState", "CANCELLED") == "CANCELLED", timeout=30)
    # slurmdbd records the end a moment after the controller: sacct may not know it yet.
    wait_until("sacct knows how the watcher ended", lambda: bool(state(watcher)), timeout=30)
    assert state(watcher).startswith("CANCELLED")
    never_ran = run(["sacct", "-X", "-n", "-P", "-j", watcher, "-o", "Elapsed,NodeList,AllocTRES"]).stdout.strip()
    assert never_ran == "00:00:00|None assigned|", never_ran


def test_success_leaves_no_watcher_and_no_failure(tmp_path: Path) -> None:
    job = job_dir(tmp_path, f": > {tmp_path}/Class2D/job001/{SUCCESS}")
    entry = submitted(tmp_path)
    assert wait_for_job(str(entry["job_id"]), timeout=60)["JobState"] == "COMPLETED"
    watcher_gone(str(entry["watcher"]))
    assert (job / SUCCESS).exists() and not (job / FAILURE).exists()
    assert f"relion-qsub: this is Slurm job {entry['job_id']}\n" in (job / "run.out").read_text()
    argv = entry["sbatch_argv"]
    # un-held (the script runs the guard), so no release: two controller calls, the job's and the watcher's
    assert (
        isinstance(argv, list)
        and "--begin=now+365days" not in argv
        and "--no-requeue" in argv
        and (entry["held"], entry["released"]) == (False, False)
    )


def test_cancelled_while_pending(tmp_path: Path) -> None:
    job = job_dir(tmp_path, "sleep 60")
    entry = submitted(tmp_path, "--hold")  # the user's own hold: it stays PENDING until we cancel it
    job_id = str(entry["job_id"])
    assert job_info(job_id)["JobState"] == "PENDING"
    cancel(job_id)
    line = failure_line(job, job_id)
    assert line.startswith(f"relion-qsub: Slurm job {job_id} was cancelled by you (") and "CANCELLED" in line


def test_cancelled_right_after_it_starts(tmp_path: Path) -> None:
    """scancel within ~0.1 s of the start: before relion-launch could install its SIGTERM handler."""
    for attempt in range(3):
        project = tmp_path / str(attempt)
        job = job_dir(project, f"{LAUNCH} sh -c 'exec sleep 60' --pipeline_control Class2D/job001/")
        job_id = str(submitted(project)["job_id"])
        wait_until("the job starts", lambda j=job_id: job_info(j).get("JobState") != "PENDING", timeout=60, poll=0.02)
        cancel(job_id)
        line = failure_line(job, job_id)
        assert "cancel" in line or "SIGTERM" in line, line


def launcher_pid(job_id: str) -> int:
    """relion-launch's own process in the job (the virtual nodes are processes on this host)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"SLURM_JOB_ID={job_id}".encode() in environ and any(b"relion-launch" in word for word in cmdline):
            return int(entry.name)
    raise AssertionError(f"no relion-launch process of job {job_id}")


def test_relion_launch_sigkilled(tmp_path: Path) -> None:
    job = job_dir(tmp_path, f"{LAUNCH} sh -c 'exec sleep 60' --pipeline_control Class2D/job001/")
    job_id = str(submitted(tmp_path)["job_id"])
    wait_until("relion-launch runs the step", lambda: "relion-launch:" in _read(job / "run.out"), timeout=60)
    os.kill(launcher_pid(job_id), signal.SIGKILL)  # what the OOM killer does: no handler runs
    line = failure_line(job, job_id)
    # The batch script goes on and ends: its EXIT trap says it (jobend.py); the end-watcher then finds the file.
    assert line.startswith(f"relion-qsub: the batch script of Slurm job {job_id} ended with exit code 137"), line
    assert "(its last command was killed by SIGKILL)" in line, line


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def test_launch_failure(tmp_path: Path) -> None:
    """run.out cannot be created (its directory does not exist): Slurm's JobLaunchFailure, no --requeue."""
    job = job_dir(tmp_path, "true")
    job_id = str(submitted(tmp_path, f"--output={tmp_path}/missing/run.out")["job_id"])
    line = failure_line(job, job_id)
    assert "could not be launched (JobLaunchFailure" in line and "FAILED" in line, line


def test_out_of_memory_in_the_batch_step(tmp_path: Path) -> None:
    """The cgroup OOM killer kills a program in the batch script; the script goes on and exits 0, Slurm says
    OUT_OF_MEMORY (testbed-fidelity.md): no program lived to write an exit file. The batch script's EXIT trap
    (jobend.py) reads the cgroup's OOM count and says it first; the end-watcher would say the same."""
    body = "python3 -c 'bytearray(400 << 20)'\nexit 0"
    job = job_dir(tmp_path, body, SCRIPT.replace("--mem-per-cpu=1g", "--mem=100M"))
    job_id = str(submitted(tmp_path)["job_id"])
    line = failure_line(job, job_id)
    assert line.startswith(f"relion-qsub: Slurm job {job_id} ran out of memory") and "OUT_OF_MEMORY" in line, line


def test_node_failure_of_a_two_node_job_is_not_rerun(tmp_path: Path) -> None:
    """A node of a running 2-node job fails: NODE_FAIL, FAILURE, and no requeue (--no-requeue by default)."""
    script = SCRIPT.replace("--partition=norm", "--partition=gpu --nodes=2 --exclusive").replace("ntasks=1", "ntasks=2")
    job = job_dir(tmp_path, f"srun -N2 -n2 sleep 60\n: > {tmp_path}/Class2D/job001/{SUCCESS}", script)
    job_id = str(submitted(tmp_path)["job_id"])
    wait_until("the job runs", lambda: job_info(job_id).get("JobState") == "RUNNING", timeout=60)
    wait_until("the step runs", lambda: "started" in _read(job / "run.out"), timeout=30)
    node = job_info(job_id)["NodeList"]
    second = _second_node(node)
    try:
        run(["scontrol", "update", f"NodeName={second}", "State=DOWN", "Reason=relion-qsub-test-node-failure"])
        line = failure_line(job, job_id)
    finally:
        run(["scontrol", "update", f"NodeName={second}", "State=RESUME"], check=False)
    assert state(job_id) == "NODE_FAIL"
    assert "NODE" in line or "SIGTERM" in line or "lost a node" in line, line
    time.sleep(5)
    assert job_info(job_id).get("JobState", "NODE_FAIL") == "NODE_FAIL" and not (job / SUCCESS).exists()


def _second_node(nodelist: str) -> str:
    import hostlist

    return str(hostlist.expand_hostlist(nodelist)[1])


def controller_pid() -> int:
    pid = int((state_dir() / "run" / "slurmctld.pid").read_text().strip())
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "slurmctld"
    return pid


def test_controller_outage_beyond_the_retry_budget_leaves_no_ghost(tmp_path: Path) -> None:
    """sbatch's un-held request is lost in a stalled controller; relion-qsub gives up, voids it (the kept-job file
    names no job) and says FAILURE; when the controller resumes it creates the job from the lost request, which
    starts and ends in its guard: the program (here: writing SUCCESS) never runs, run.err says why."""
    job = job_dir(tmp_path, f": > {tmp_path}/Class2D/job001/{SUCCESS}")
    profile = tmp_path / "fast.toml"
    testbed = (ROOT / "relion_qsub" / "profiles" / "testbed.toml").read_text()
    fast = "[submit]\ntimeout = 2\nattempts = 2\nbackoff = [0.5]\nsettle = 0.5\n"
    profile.write_text(testbed.replace("[submit]\ntimeout = 30\nattempts = 3\nbackoff = [1, 2]\n", fast))
    assert fast in profile.read_text()
    pid = controller_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        proc = qsub(tmp_path, site_env=env(RELION_QSUB_SITE=str(profile)))
        line = failure_line_now(job)  # before the controller resumes: the ghost's start truncates run.err
    finally:
        os.kill(pid, signal.SIGCONT)
    assert proc.returncode != 0 and proc.stdout == "", proc
    entry = json.loads((job / "relion-qsub.jsonl").read_text().splitlines()[-1])
    assert entry["submitted"] is False and entry["held"] is False and entry["token"] in line
    (kept,) = job.glob("relion-qsub.kept.*")
    assert kept.read_text() == "" and f"({kept.name} names no job; token {entry['token']})" in line, line
    token = str(entry["token"])
    ghosts: list[list[str]] = []
    wait_until("the lost request creates its job", lambda: bool(ghosts.extend(_with_token(token)) or ghosts), 30)
    ghost = ghosts[0][0]
    assert {row[0] for row in ghosts} == {ghost}, ghosts  # one request, one job
    assert wait_for_job(ghost, timeout=60)["JobState"] == "COMPLETED"  # un-held: it started, and its guard ended it
    said = (job / "run.err").read_text()
    assert f"relion-qsub: Slurm job {ghost} comes from a request whose answer was lost; relion-qsub kept no job" in said
    assert not (job / SUCCESS).exists()  # the program never ran
    assert (job / FAILURE).exists()


def failure_line_now(job: Path) -> str:
    assert (job / FAILURE).exists()
    lines = [line for line in (job / "run.err").read_text().splitlines() if line.startswith("relion-")]
    assert len(lines) == 1, lines
    return lines[0]


def _with_token(token: str) -> list[list[str]]:
    out = run(["squeue", "--noheader", "--states=all", "--format=%i|%T|%r|%k"], check=False).stdout
    return [row.split("|")[:3] for row in out.splitlines() if token in row]


def test_time_limit_names_the_next_walltime_and_its_box_in_run_err(tmp_path: Path) -> None:
    """Issue 22: after a time-limit kill the GUI's run.err says what to ask next and where (only `report` did)."""
    template = tmp_path / "common.sh"
    template.write_text("#!/bin/bash\n#SBATCH --time=XXXextra1XXX\nXXXcommandXXX\n")
    job = job_dir(tmp_path, f"{LAUNCH} sh -c 'exec sleep 300' --pipeline_control Class2D/job001/")
    site_env = env(RELION_QSUB_TEMPLATE=str(template), RELION_QSUB_EXTRA1="Walltime")
    proc = qsub(tmp_path, site_env=site_env)
    assert proc.returncode == 0, proc.stderr
    entry = json.loads((job / "relion-qsub.jsonl").read_text().splitlines()[-1])
    job_id = str(entry["job_id"])
    wait_until("the job runs", lambda: job_info(job_id).get("JobState") == "RUNNING", timeout=60)
    time.sleep(2)  # relion-launch has started the step
    end = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + 2))
    run(["scontrol", "update", f"JobId={job_id}", f"EndTime={end}"], timeout=30)
    assert wait_for_job(job_id, timeout=90)["JobState"] == "TIMEOUT"
    hint = "at its time limit ("
    wait_until("the time-limit hint in run.err", lambda: hint in (job / "run.err").read_text(), timeout=60)
    err = (job / "run.err").read_text()
    assert (job / FAILURE).exists() and not (job / SUCCESS).exists(), err
    line = next(line for line in err.splitlines() if hint in line)
    assert " in the 'Walltime' box (RELION_QSUB_EXTRA1) and continue from the last iteration" in line, line
    limit, ask = line.split(hint, 1)[1].split("): ask ", 1)[0], line.split("): ask ", 1)[1].split(" ", 1)[0]
    from relion_qsub.slurm.client import seconds

    assert seconds(ask) == 2 * (seconds(limit) or 0) > 0, line
