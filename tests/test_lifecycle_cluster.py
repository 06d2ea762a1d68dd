"""Issue 20 on the testbed, through the real relion_pipeliner: one job dir lives through many runs.

``relion_pipeliner --RunJobs Class2D/job001/`` on a job that ran before is RELION's Continue: runJob rewrites
run_submit.script, removes the exit files and submits again into the same dir (src/pipeliner.cpp, runJob,
runScheduledJobs). The pipeliner then waits for an exit file and writes the job's status into default_pipeline.star,
which is what the GUI shows. The templates' bodies stand in for RELION programs, doing what
src/pipeline_control.cpp says a program does: write RELION_JOB_EXIT_SUCCESS/_FAILURE/_ABORTED at its end, nothing
when it crashes.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relion_qsub import watch
from relion_qsub.relion import record, runs
from tests.slurmtools import cancel, job_info, run, run_jobs, wait_until
from tests.test_reliability_cluster import env
from tests.test_reliability_pipeliner_cluster import FAILED, pipeliner

pytestmark = [pytest.mark.slurm, pytest.mark.relion]

ROOT = Path(__file__).resolve().parent.parent
SUCCEEDED, ABORTED = "2", "4"  # RELION 3.1 PROC_FINISHED_SUCCESS / _ABORTED (src/pipeline_jobs.h)
JOB = "Class2D/job001/"


@pytest.fixture(autouse=True)
def no_job_left(tmp_path: Path) -> Iterator[None]:
    """A failed test leaves no job behind: every job and watcher its job dirs recorded is cancelled."""
    yield
    for path in tmp_path.rglob("relion-qsub.jsonl"):
        ids = [i for e in runs.entries(path.parent) for i in (e.job_id, e.watcher) if i]
        if ids:
            run(["scancel", *ids], check=False)


def wait_for(go: str) -> str:
    """A body line that blocks until the test creates ``go`` in the project dir."""
    return f"while [ ! -e {go} ]; do sleep 0.2; done"


def entries(project: Path, count: int) -> list[record.Record]:
    """The job dir's record once it holds ``count`` submissions."""
    record = project / JOB / "relion-qsub.jsonl"
    wait_until(f"{count} submissions recorded", lambda: len(runs.entries(record.parent)) >= count, 60)
    return runs.entries(record.parent)


def status(project: Path) -> str:
    rows = [line.split() for line in (project / "default_pipeline.star").read_text().splitlines()]
    (row,) = [r for r in rows if len(r) == 4 and r[0] == JOB]  # the pipeline_processes row
    return row[-1]


def finish(project: Path, pipe: subprocess.Popen[str], timeout: float = 75) -> str:
    """relion_pipeliner returns once an exit file is there; the job's status in the pipeline."""
    try:
        out, _ = pipe.communicate(timeout=timeout)
    finally:
        if pipe.poll() is None:
            pipe.kill()
    print(out)
    return status(project)


def continue_job(project: Path, body: str, directives: str = "--comment=continue") -> subprocess.Popen[str]:
    """RELION's Continue of the job: the template changed meanwhile (RELION reads it again on every run)."""
    template = project / "template.sh"
    text = template.read_text()
    head = text[: text.index('echo "job $SLURM_JOB_ID started"\n')]
    template.write_text(head + 'echo "job $SLURM_JOB_ID started"\n' + body + "\n")
    job_env = env(RELION_QSUB_SITE="testbed", RELION_QSUB_EXTRA_COUNT="1", RELION_QSUB_EXTRA1="SBATCH directives")
    return run_jobs(project, JOB, job_env)


def state(job_id: str) -> str:
    return job_info(job_id).get("JobState", "")


def test_continue_after_a_failure_is_not_failed_by_the_first_runs_watcher(tmp_path: Path) -> None:
    """The reproduced bug: run 1 fails (the program writes FAILURE itself), its watcher cannot start (busy
    cluster: here held), the user continues; run 2 succeeds. relion-qsub cancels run 1's pending watcher when it
    submits run 2, and a watcher of run 1 that starts late anyway writes nothing: RELION shows run 2 Succeeded."""
    fail = f"{wait_for('go1')}\n: > {JOB}RELION_JOB_EXIT_FAILURE\nexit 1"
    pipe = pipeliner(tmp_path, fail, "--comment=run1")
    (first,) = entries(tmp_path, 1)
    job1, watcher1 = str(first.job_id), str(first.watcher)
    run(["scontrol", "hold", watcher1])
    (tmp_path / "go1").touch()
    assert finish(tmp_path, pipe) == FAILED
    assert state(watcher1) == "PENDING"

    pipe = continue_job(tmp_path, f"{wait_for('go2')}\n: > {JOB}RELION_JOB_EXIT_SUCCESS")
    second = entries(tmp_path, 2)[1]
    wait_until("run 1's watcher is cancelled", lambda: state(watcher1) == "CANCELLED", 30)
    assert second.job_id != job1 and second.run != first.run
    # A watcher of run 1 that starts late anyway (the cancel lost a race): the same command, submitted now.
    stamp = runs.Stamp.decode(first.run)
    wrap = f"--wrap={shlex.join(watch.command(tmp_path / JOB, job1, stamp))}"
    late = run(["sbatch", "--parsable", *watch.RESOURCES, "--output=/dev/null", "-p", "norm", wrap]).stdout.strip()
    wait_until("the late watcher ran", lambda: state(late) in ("COMPLETED", "FAILED", ""), 60)
    assert not (tmp_path / JOB / "RELION_JOB_EXIT_FAILURE").exists()
    (tmp_path / "go2").touch()
    assert finish(tmp_path, pipe) == SUCCEEDED
    assert sorted(p.name for p in (tmp_path / JOB).glob("RELION_JOB_*")) == ["RELION_JOB_EXIT_SUCCESS"]


def test_continue_while_the_first_run_still_runs_then_it_is_cancelled(tmp_path: Path) -> None:
    """Run 1's relion-launch (and EXIT trap) see its end (scancel) after RELION submitted run 2 into the dir: they
    write no exit file, relion-launch says why in run.err; run 2's ending is its own."""
    launch = f"{ROOT / 'bin' / 'relion-launch'}"
    body = f"{launch} sh -c 'sleep 300' relion_stand_in --pipeline_control {JOB}\necho done"
    pipe = pipeliner(tmp_path, body, "--comment=run1")
    (first,) = entries(tmp_path, 1)
    job1 = str(first.job_id)
    wait_until("run 1's step runs", lambda: "relion-launch:" in _text(tmp_path / JOB / "run.out"), 60)
    pipe.kill()  # the first pipeliner only waits; the user continues the job from another one
    pipe.communicate()
    # Run 2 is held until run 1's lines are read: Slurm truncates run.err when a job starts (--open-mode=truncate,
    # the default). relion-qsub keeps a user's --hold (submit.start).
    template = tmp_path / "template.sh"
    template.write_text(template.read_text().replace("#SBATCH XXXextra1XXX", "#SBATCH --hold"))
    pipe = continue_job(tmp_path, f"{wait_for('go2')}\n: > {JOB}RELION_JOB_EXIT_SUCCESS")
    second = entries(tmp_path, 2)[1]
    wait_until("run 1's watcher is cancelled", lambda: state(str(first.watcher)) in ("CANCELLED", ""), 30)
    cancel(job1)
    wait_until("run 1 ended", lambda: state(job1) in ("CANCELLED", ""), 60)
    err = tmp_path / JOB / "run.err"
    # Run 1's relion-launch and EXIT trap say so in run.err, unless slurmstepd SIGKILLed them first (proctrack/cgroup
    # kills what is left of a job right after its batch shell died: under a full `make test` this happened once).
    # Either way nothing of run 1 may speak of a failure, and no exit file may appear: that is the point.
    deadline = time.monotonic() + 30
    while b"this run is no longer current" not in err.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.2)
    text = err.read_text(errors="replace")
    print(text)
    ours = [line for line in text.splitlines() if line.startswith(("relion-launch: ", "relion-qsub: "))]
    assert all("no longer current" in line for line in ours if "SIGTERM" in line or "cancel" in line), text
    assert state(str(second.job_id)) == "PENDING"
    time.sleep(2)  # a late write, if any, would land now
    assert not list((tmp_path / JOB).glob("RELION_JOB_EXIT_*"))
    run(["scontrol", "release", str(second.job_id)])
    (tmp_path / "go2").touch()
    assert finish(tmp_path, pipe, timeout=90) == SUCCEEDED, second


def test_a_crash_before_a_trailing_echo_is_failed_in_relion(tmp_path: Path) -> None:
    """16 of 40 site templates run something after RELION's command: a crashed program (no exit file) then ends in
    a COMPLETED job and the end-watcher never runs. The EXIT trap tells RELION."""
    pipe = pipeliner(tmp_path, "sh -c 'kill -SEGV $$'\necho done", "--comment=crash")
    (first,) = entries(tmp_path, 1)
    assert finish(tmp_path, pipe) == FAILED
    wait_until("the job ended", lambda: state(str(first.job_id)) in ("COMPLETED", ""), 30)
    assert sacct_state(str(first.job_id)) == "COMPLETED"  # so the end-watcher (afternotok) never ran
    (line,) = [x for x in (tmp_path / JOB / "run.err").read_text().splitlines() if x.startswith("relion-qsub")]
    assert line.startswith(f"relion-qsub: the batch script of Slurm job {first.job_id} ended and no RELION_JOB")


def test_abort_while_pending_ends_the_job_at_once_as_aborted(tmp_path: Path) -> None:
    """The GUI's Abort of a job still pending only creates RELION_JOB_ABORT_NOW; when the job starts, relion-launch
    ends it as aborted without running the program."""
    launch = f"{ROOT / 'bin' / 'relion-launch'}"
    body = f"{launch} sh -c 'touch ran' relion_stand_in --pipeline_control {JOB}"
    pipe = pipeliner(tmp_path, body, "--hold")
    (first,) = entries(tmp_path, 1)
    (tmp_path / JOB / "RELION_JOB_ABORT_NOW").touch()  # what the GUI's Abort does (src/gui_mainwindow.cpp)
    run(["scontrol", "release", str(first.job_id)])
    assert finish(tmp_path, pipe) == ABORTED
    assert not (tmp_path / "ran").exists()
    wait_until("run.err says why", lambda: "aborted from RELION" in _text(tmp_path / JOB / "run.err"), 10)


def test_abort_a_program_ignores_ends_its_step_after_the_grace(tmp_path: Path) -> None:
    launch = f"RELION_LAUNCH_ABORT_GRACE=2 {ROOT / 'bin' / 'relion-launch'}"
    body = f"{launch} sh -c 'sleep 300' relion_stand_in --pipeline_control {JOB}\necho done"
    pipe = pipeliner(tmp_path, body, "--comment=abort")
    (first,) = entries(tmp_path, 1)
    wait_until("the step runs", lambda: "relion-launch" in _text(tmp_path / JOB / "run.out"), 60)
    asked = time.monotonic()
    (tmp_path / JOB / "RELION_JOB_ABORT_NOW").touch()
    assert finish(tmp_path, pipe) == ABORTED
    took = time.monotonic() - asked
    print(f"\nABORTED {took:.1f} s after RELION_JOB_ABORT_NOW (grace 2 s)")
    assert took < 30
    (line,) = [x for x in _text(tmp_path / JOB / "run.err").splitlines() if "aborted from RELION" in x]
    assert "had not stopped 2 s after RELION_JOB_ABORT_NOW appeared" in line
    wait_until("the job ended", lambda: state(str(first.job_id)) in ("COMPLETED", "FAILED", ""), 30)


def test_doctor_fix_cancels_a_job_aborted_while_pending(tmp_path: Path) -> None:
    pipe = pipeliner(tmp_path, "touch ran", "--hold")
    (first,) = entries(tmp_path, 1)
    (tmp_path / JOB / "RELION_JOB_ABORT_NOW").touch()
    out = run([str(ROOT / "bin" / "relion-qsub"), "doctor", str(tmp_path), "--job", JOB, "--fix"], env=env())
    assert "aborted in RELION" in out.stdout + out.stderr, out
    assert finish(tmp_path, pipe) == ABORTED
    wait_until("the job is cancelled", lambda: state(str(first.job_id)) in ("CANCELLED", ""), 30)
    wait_until("its watcher is gone", lambda: state(str(first.watcher)) in ("CANCELLED", ""), 30)
    assert not (tmp_path / "ran").exists()


def sacct_state(job_id: str) -> str:
    """sacct's State once slurmdbd has the job's end (it hears of it a moment after the controller)."""
    argv = ["sacct", "-n", "-X", "-P", "-o", "State,End", "-j", job_id]
    wait_until("sacct has the end", lambda: run(argv).stdout.strip().split("|")[-1] not in ("", "Unknown"), 30)
    return run(argv).stdout.strip().split("|")[0]


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
