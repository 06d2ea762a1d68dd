"""Issue 20 without a cluster: one job dir, many runs (which run may write an exit file), the batch script's EXIT
trap for a program that ended without reporting, and the end-watcher of an earlier run. The scripts run in the real
bash and dash; scancel is faked (pytest-subprocess) only where its answer is injected. The real cluster and the real
relion_pipeliner are in test_lifecycle_cluster.py."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pytest_subprocess import FakeProcess

from relion_qsub import jobend, proc, profile, watch
from relion_qsub import prepare as prep
from relion_qsub import submit as sub
from relion_qsub.checks.registry import ALL_POLICY
from relion_qsub.doctor import job as doctor_job
from relion_qsub.doctor import main as doctor_main
from relion_qsub.relion import jobdir, runs
from relion_qsub.slurm import client

SCRIPT = "#!/bin/bash\n#SBATCH --ntasks=1 --partition=norm --time=0:05:00\n{body}\n"


def rewrite(path: Path, text: str) -> None:
    """RELION's rewrite of run_submit.script before a run: an ofstream truncates the same file
    (RelionJob::saveJobSubmissionScript, src/pipeline_jobs.cpp); the mtime moves on."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    if path.stat().st_mtime_ns == before:  # a coarse clock: make the second write visibly later
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


@pytest.fixture
def job(tmp_path: Path) -> Path:
    d = tmp_path / "Class2D" / "job007"
    d.mkdir(parents=True)
    (d / "run_submit.script").write_text(SCRIPT.format(body="echo body"))
    return d


def record(job_dir: Path, *entries: dict[str, object]) -> None:
    with open(job_dir / jobdir.RECORD, "a") as fh:
        for entry in entries:
            fh.write(json.dumps(entry) + "\n")


# ---- which run is current ---------------------------------------------------------------------------------------


def test_stamp_round_trip_and_garbage(job: Path) -> None:
    stamp = runs.Stamp.of(job / "run_submit.script")
    assert stamp is not None and runs.Stamp.decode(stamp.encode()) == stamp
    assert stamp.path == str(job / "run_submit.script")
    for bad in (None, "", "1:2", "x:2:/a", "1:2:relative", "1:-2:/a"):
        assert runs.Stamp.decode(bad) is None
    assert runs.Stamp.decode("1:2:/a:b") == runs.Stamp(1, 2, "/a:b")  # a colon in the path is kept
    assert runs.Stamp.of(job / "missing") is None


def test_current_until_relion_rewrites_the_script(job: Path) -> None:
    stamp = runs.Stamp.of(job / "run_submit.script")
    assert runs.superseded(job, "11", stamp) is None
    rewrite(job / "run_submit.script", SCRIPT.format(body="echo body"))  # Continue: the same text, a new run
    why = runs.superseded(job, "11", stamp)
    assert why is not None and why.startswith("RELION has started a new run of") and "run_submit.script" in why
    (job / "run_submit.script").unlink()  # 3.1's overwrite: rm -rf <jobdir>*
    assert "is gone" in (runs.superseded(job, "11", stamp) or "")


def test_current_until_a_later_submission_is_recorded(job: Path) -> None:
    assert runs.superseded(job, "11", None) is None  # no record at all
    record(job, {"job_id": "11", "watcher": "12"})
    assert runs.superseded(job, "11", None) is None
    assert runs.superseded(job, "99", None) is None  # not recorded (its line could not be written): current
    record(job, {"submitted": False, "time": "2026-12-06T10:00:00+0000"})
    assert runs.superseded(job, "11", None) == (
        f"a submission refused at 2026-12-06T10:00:00+0000 was submitted into {job} after it and is its current run"
    )
    (job / jobdir.RECORD).open("a").write("{damaged\n")
    record(job, {"job_id": "13", "watcher": None})
    assert runs.superseded(job, "11", None) == f"Slurm job 13 was submitted into {job} after it and is its current run"
    assert runs.superseded(job, "13", None) is None


def test_previous_watcher_is_the_newest_recorded(job: Path) -> None:
    assert runs.previous_watcher(job) is None
    record(job, {"job_id": "11", "watcher": "12"}, {"job_id": "13", "watcher": "14"}, {"submitted": False})
    assert runs.previous_watcher(job) == "14"  # a refused submission (no watcher) in between changes nothing


def test_mark_for_an_earlier_run_says_so_in_run_err_instead(job: Path) -> None:
    stamp = runs.Stamp.of(job / "run_submit.script")
    rewrite(job / "run_submit.script", "new run\n")
    marked = runs.mark(job, jobdir.EXIT_FAILURE, "who: Slurm job 11 failed", "11", stamp)
    assert not marked.created and marked.superseded
    assert sorted(p.name for p in job.iterdir()) == ["run.err", "run_submit.script"]
    line = (job / "run.err").read_text()
    assert line.startswith("who: Slurm job 11 failed; but no RELION_JOB_EXIT_FAILURE was written: this run is no")
    assert line.count("\n") == 1
    # the current run's own writer still marks it
    assert runs.mark(job, jobdir.EXIT_FAILURE, "now", "12", runs.Stamp.of(job / "run_submit.script")).created


def test_mark_after_the_new_run_ended_adds_nothing(job: Path) -> None:
    stamp = runs.Stamp.of(job / "run_submit.script")
    rewrite(job / "run_submit.script", "new run\n")
    (job / jobdir.EXIT_SUCCESS).touch()
    assert not runs.mark(job, jobdir.EXIT_FAILURE, "late", "11", stamp).created
    assert sorted(p.name for p in job.iterdir()) == [jobdir.EXIT_SUCCESS, "run_submit.script"]


# ---- the end-watcher of an earlier run --------------------------------------------------------------------------

FAILED_JOB = "JobId=11 JobState=FAILED Reason=NonZeroExitCode"  # asked twice: for a time limit, then for the end


def test_a_late_watcher_of_an_earlier_run_writes_no_failure(job: Path, fp: FakeProcess) -> None:
    """The reproduced bug: run 1's watcher starts late (busy cluster) after RELION's Continue removed the exit files
    and submitted run 2; it used to write FAILURE and RELION showed the successful run 2 Failed."""
    fp.register(["scontrol", "show", "job", "-o", "11"], stdout=FAILED_JOB, occurrences=2)
    fp.register(["sacct", fp.any()], stdout="FAILED\n")
    stamp = runs.Stamp.of(job / "run_submit.script")
    assert stamp is not None
    rewrite(job / "run_submit.script", SCRIPT.format(body="echo body"))
    assert watch.main([str(job), "11", stamp.encode()]) == 0
    assert not (job / jobdir.EXIT_FAILURE).exists()
    assert "this run is no longer current (RELION has started a new run" in (job / "run.err").read_text()


def test_the_watcher_of_the_current_run_still_marks_it(job: Path, fp: FakeProcess) -> None:
    fp.register(["scontrol", "show", "job", "-o", "11"], stdout=FAILED_JOB, occurrences=2)
    fp.register(["sacct", fp.any()], stdout="FAILED\n")
    stamp = runs.Stamp.of(job / "run_submit.script")
    assert stamp is not None
    assert watch.main([str(job), "11", stamp.encode()]) == 0
    assert (job / jobdir.EXIT_FAILURE).exists()
    assert watch.main([str(job)]) == 64


def test_the_watcher_carries_the_runs_stamp(job: Path) -> None:
    stamp = runs.Stamp.of(job / "run_submit.script")
    argv = watch.sbatch_argv("sbatch", "11", job, [], (), stamp)
    assert stamp is not None and argv[-1].endswith(f" 11 {stamp.encode()}")


def test_submitting_again_cancels_the_previous_pending_watcher(job: Path, fp: FakeProcess) -> None:
    site = profile.load("testbed")
    s = sub.Submission(["sbatch"], "tok")
    sub.cancel_previous_watcher(site, job, s)  # first submission: no call at all
    assert s.attempts == []
    record(job, {"job_id": "11", "watcher": "12"})
    cancel = [site.submit.scancel, "--name=relion-qsub-watch", f"--user={os.getuid()}", "--state=PENDING", "12"]
    fp.register(cancel)
    sub.cancel_previous_watcher(site, job, s)
    assert fp.call_count(cancel) == 1
    assert s.attempts == [{"previous_watcher": "12", "cancel_returncode": 0}]


# ---- the batch script's EXIT trap -------------------------------------------------------------------------------


def prepared(job: Path, body: str, shebang: str = "#!/bin/bash") -> prep.Prepared:
    (job / "run_submit.script").write_text(SCRIPT.format(body=body).replace("#!/bin/bash", shebang))
    site = profile.load("testbed")
    return prep.prepare(job / "run_submit.script", [], dataclasses.replace(site, policy={k: "off" for k in ALL_POLICY}))


def run_job(p: prep.Prepared, shell: str = "bash") -> subprocess.CompletedProcess[str]:
    """The normalised script as the batch step runs it (from the project dir, with the job's id). No controller
    answers (an scontrol that fails, as when slurmctld cannot be reached): the job decides from what it sees."""
    project = p.source.parent.parent.parent
    bindir = project / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "scontrol").write_text(
        "#!/bin/sh\necho 'scontrol: error: Unable to contact slurm controller' >&2\nexit 1\n"
    )
    (bindir / "scontrol").chmod(0o755)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242"}
    return subprocess.run([shell, "-c", p.text], capture_output=True, text=True, env=env, cwd=project)


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_a_program_that_crashed_before_a_trailing_echo_is_a_failure(job: Path, shell: str) -> None:
    """16 of 40 site templates run something after RELION's command: the batch script then exits 0 and the
    end-watcher (afternotok) is cancelled unrun. The EXIT trap reports it, and the script's status is kept."""
    p = prepared(job, "sh -c 'kill -SEGV $$'\necho done")
    result = run_job(p, shell)
    assert result.returncode == 0 and result.stdout.endswith("done\n")
    assert (job / jobdir.EXIT_FAILURE).exists()
    line = (job / "run.err").read_text()
    assert line.count("\n") == 1 and line.startswith("relion-qsub: the batch script of Slurm job 4242 ended and no")
    assert "`sacct -j 4242` says which" in line


def test_the_trap_keeps_a_failing_scripts_exit_code_and_says_it(job: Path) -> None:
    result = run_job(prepared(job, "exit 7"))
    assert result.returncode == 7
    assert "ended with exit code 7 and no RELION_JOB_EXIT_*" in (job / "run.err").read_text()
    assert jobend.reason("5", "137").startswith(
        "relion-qsub: the batch script of Slurm job 5 ended with exit code 137 (its last command was killed by SIGKILL)"
    )
    assert "exit code 300 and" in jobend.reason("5", "300")


def test_the_trap_leaves_the_programs_own_report_alone(job: Path) -> None:
    # what a RELION program does at its end (src/pipeline_control.cpp, pipeline_control_relion_exit(0))
    result = run_job(prepared(job, f"touch {job.relative_to(job.parent.parent)}/RELION_JOB_EXIT_SUCCESS"))
    assert result.returncode == 0
    assert sorted(x.name for x in job.iterdir()) == ["RELION_JOB_EXIT_SUCCESS", "run_submit.script"]


# zsh where installed (Debian: apt-get install zsh): with its default NOMATCH a glob that matches nothing ended the
# whole script, so the trap never ran (jobend._ZSH_NULLGLOB).
SHELLS = [shell for shell in ("bash", "dash", "zsh") if shutil.which(shell)]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("reported", [True, False])
def test_the_trap_starts_no_python_when_the_program_reported(
    job: Path, monkeypatch: pytest.MonkeyPatch, reported: bool, shell: str
) -> None:
    monkeypatch.setattr(jobend, "command", lambda job_dir: ["/nonexistent/python"])
    if reported:
        (job / jobdir.EXIT_SUCCESS).touch()
    lines = jobend.preamble(job, None, watched=True, token="relion-qsub:abc")
    result = subprocess.run([shell, "-c", "\n".join([*lines, "exit 4"])], capture_output=True, text=True)
    assert result.returncode == 4
    assert ("/nonexistent/python" in result.stderr) is not reported, result.stderr


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_a_job_whose_watcher_was_refused_prints_the_note_into_both_streams(job: Path, shell: str) -> None:
    """Slurm truncates run.out and run.err when the job starts: only the job itself can put relion-qsub's warning
    there. The note is this job's (its id in the name): another job's note is not printed."""
    said = sub.unwatched_warning("4242", "sbatch: error: AssocMaxSubmitJobLimit")
    assert jobdir.leave_unwatched_note(job, "4242", said) == ""
    jobdir.leave_unwatched_note(job, "99", "relion-qsub: another run's note")
    result = run_job(prepared(job, "echo body"), shell)
    assert result.stdout.splitlines()[1:] == [said, "body"]  # after the job-id line, before the script's body
    assert result.stderr.splitlines()[0] == said and "another run" not in result.stdout + result.stderr


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_a_note_left_after_the_job_started_is_printed_at_its_end_and_only_once(job: Path, shell: str) -> None:
    """A job that goes in un-held may start before relion-qsub has heard that Slurm refused its watcher."""
    said = sub.unwatched_warning("4242", "refused")
    later = job.parent / "later"  # relion-qsub writes it while the job runs: the job's body copies it in
    later.write_text(said + "\n")
    reported = f"{job.relative_to(job.parent.parent)}/RELION_JOB_EXIT_SUCCESS"
    result = run_job(prepared(job, f"echo body; cp {later} {job}/relion-qsub-unwatched.4242; touch {reported}"), shell)
    assert result.returncode == 0
    assert result.stdout.splitlines()[1:] == ["body", said] and result.stderr.splitlines() == [said]


def test_a_job_without_a_note_prints_nothing_more(job: Path) -> None:
    # the program reports (src/pipeline_control.cpp, pipeline_control_relion_exit(0)), so the trap is quiet too
    result = run_job(prepared(job, f"echo body; touch {job.relative_to(job.parent.parent)}/RELION_JOB_EXIT_SUCCESS"))
    assert result.stdout.splitlines()[1:] == ["body"] and result.stderr == ""


def test_without_its_watcher_the_trap_says_how_slurm_is_ending_the_job(
    job: Path, fp: FakeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scancel of a running job: the trap sees COMPLETING and leaves the words to the end-watcher, unless Slurm
    refused the watcher (the note): then the trap says it, as for a site without watchers."""
    completing = "JobId=4242 JobState=COMPLETING Reason=None ExitCode=0:15\n"
    fp.register(["scontrol", "show", "job", "-o", "4242"], stdout=completing, occurrences=2)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert jobend.main([str(job), jobend.WATCHED, "143"]) == 0
    assert not (job / jobdir.EXIT_FAILURE).exists()  # the end-watcher will say how
    jobdir.leave_unwatched_note(job, "4242", sub.unwatched_warning("4242", "refused"))
    assert jobend.main([str(job), jobend.WATCHED, "143"]) == 0
    assert (job / jobdir.EXIT_FAILURE).exists()
    assert "Slurm is ending job 4242 from outside" in (job / "run.err").read_text()


def test_the_trap_of_an_earlier_run_writes_nothing(job: Path) -> None:
    p = prepared(job, "echo body")
    rewrite(job / "run_submit.script", "RELION's next run\n")
    assert run_job(p).returncode == 0
    assert not (job / jobdir.EXIT_FAILURE).exists()
    assert "no longer current" in (job / "run.err").read_text()


def test_a_csh_template_gets_no_trap(job: Path) -> None:
    text = prepared(job, "echo body", "#!/bin/tcsh").text
    assert "trap" not in text and runs.ENV not in text and prep.JOB_LINE in text
    assert prep.shell_of(prepared(job, "x", "#!/usr/bin/env bash").result.script) == "bash"


def test_the_preamble_exports_the_stamp_after_the_directives(job: Path) -> None:
    p = prepared(job, "echo body")
    lines = p.text.splitlines()
    assert p.stamp is not None
    assert lines[2:7] == [prep.JOB_LINE, *jobend.preamble(job, p.stamp, watched=True)]
    assert lines[3] == f"export {runs.ENV}={p.stamp.encode()}"  # a path without spaces needs no quotes


def test_the_record_holds_the_runs_stamp(job: Path) -> None:
    p = prepared(job, "echo body")
    assert sub.record(p, {"job_id": "11"})
    entry = json.loads((job / jobdir.RECORD).read_text())
    assert p.stamp is not None and entry["run"] == p.stamp.encode()


# ---- doctor: the current submission, Abort, the watcher it leaves behind -----------------------------------------


class Slurm:
    """scontrol/sacct answers for one job; scancel succeeds. Records every call."""

    def __init__(self, scontrol: str) -> None:
        self.scontrol = scontrol
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], timeout: float | None = None) -> proc.Result:
        self.calls.append(list(argv))
        if argv[0] == "scontrol":
            return proc.Result(tuple(argv), 0, self.scontrol, "")
        if argv[0] == "sacct":
            return proc.Result(tuple(argv), 1, "", "Slurm accounting storage is disabled\n")
        return proc.Result(tuple(argv), 0, "", "")


def job_line(state: str, reason: str = "None", exit_code: str = "0:0") -> str:
    return f"JobId=42 UserId=me(0) JobState={state} Reason={reason} ExitCode={exit_code} TimeLimit=00:05:00\n"


def submitted(job: Path, **extra: object) -> None:
    stamp = runs.Stamp.of(job / "run_submit.script")
    assert stamp is not None
    record(job, {"job_id": "41", "watcher": "40"}, {"job_id": "42", "watcher": "43", "run": stamp.encode(), **extra})


def test_doctor_fix_of_a_job_aborted_while_pending(job: Path) -> None:
    submitted(job)
    (job / jobdir.ABORT_NOW).touch()
    slurm = Slurm(job_line("PENDING", "Priority"))
    (first,) = doctor_job.check(job.parent.parent, job, runner=slurm)
    assert first.level == "error" and "was aborted in RELION while Slurm job 42 is still pending" in first.what
    doctor_main.apply_repairs([first])
    assert (job / jobdir.EXIT_ABORTED).exists() and not (job / jobdir.EXIT_FAILURE).exists()
    assert "relion-qsub doctor: marked aborted: aborted from RELION" in (job / "run.err").read_text()
    assert ["scancel", "42"] in slurm.calls and watch.cancel_argv("scancel", "43") in slurm.calls
    assert first.fixed and first.fix.endswith("; cancelled job 42; cancelled its end-watcher 43")


def test_doctor_marks_the_current_run_and_cancels_its_watcher(job: Path) -> None:
    submitted(job)
    slurm = Slurm(job_line("TIMEOUT", "TimeLimit"))
    findings = doctor_job.check(job.parent.parent, job, runner=slurm)
    assert findings[0].what.startswith("RELION thinks running, Slurm says ended: Slurm job 42 TIMEOUT")
    doctor_main.apply_repairs(findings)
    assert (job / jobdir.EXIT_FAILURE).exists()
    assert watch.cancel_argv("scancel", "43") in slurm.calls and watch.cancel_argv("scancel", "40") not in slurm.calls


def test_doctor_leaves_a_run_relion_did_not_submit_through_relion_qsub(job: Path) -> None:
    submitted(job)
    rewrite(job / "run_submit.script", "RELION's next run, submitted with plain sbatch\n")
    slurm = Slurm(job_line("FAILED", "NonZeroExitCode", "1:0"))
    findings = doctor_job.check(job.parent.parent, job, runner=slurm)
    assert [f.level for f in findings] == ["warning"] and findings[0].repair is None
    assert "the last submission relion-qsub recorded (Slurm job 42) is not RELION's current run" in findings[0].what
    doctor_main.apply_repairs(findings)
    assert not (job / jobdir.EXIT_FAILURE).exists()


def test_doctor_shows_an_abort_as_an_abort(job: Path) -> None:
    submitted(job)
    (job / jobdir.EXIT_ABORTED).touch()
    findings = doctor_job.check(job.parent.parent, job, runner=Slurm(job_line("FAILED", "NonZeroExitCode", "2:0")))
    assert [f.level for f in findings] == ["ok", "ok"]
    assert findings[1].what == "aborted from RELION: Slurm job 42 FAILED"


def test_oom_kills_are_read_from_the_memory_cgroup(tmp_path: Path) -> None:
    """cgroup v1 (memory.oom_control, as on the testbed: slurm_cnX/uid_0/job_N/step_batch/task_0) and v2
    (memory.events); the files' formats are the kernel's (Documentation/admin-guide/cgroup-v1/memory.rst, cgroup-v2)."""
    v1 = tmp_path / "v1"
    task = v1 / "memory" / "slurm_cn6/uid_0/job_1/step_batch/task_0"
    task.mkdir(parents=True)
    (task / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    cgroup = tmp_path / "cgroup"
    cgroup.write_text("4:memory:/slurm_cn6/uid_0/job_1/step_batch/task_0\n3:cpuset:/\n0::/\n")
    assert jobend.oom_kills(cgroup, v1) == 1
    (task / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    assert jobend.oom_kills(cgroup, v1) == 0
    v2 = tmp_path / "v2"
    (v2 / "system.slice/job_1/step_batch").mkdir(parents=True)
    (v2 / "system.slice/job_1/step_batch/memory.events").write_text("low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n")
    cgroup.write_text("0::/system.slice/job_1/step_batch\n")
    assert jobend.oom_kills(cgroup, v2) == 2
    assert jobend.oom_kills(tmp_path / "missing", v2) == 0


def said(job_id: str, status: str, slurm: dict[str, str], kills: int = 0, watched: bool = False) -> str:
    view = client.view_from_scontrol(job_id, slurm) if slurm else None
    line = jobend.why(job_id, status, view, kills, watched)
    assert line is not None
    return line


def test_what_the_trap_says_comes_from_what_the_job_sees() -> None:
    oom = said("5", "0", {"JobState": "RUNNING"}, 1)
    assert oom.startswith("relion-qsub: Slurm job 5 ran out of memory: the out-of-memory killer ended 1 process of")
    assert "(OUT_OF_MEMORY)" in oom
    # Slurm is ending the job (scancel, time limit, node failure): scontrol says COMPLETING, not yet how
    completing = client.view_from_scontrol("5", {"JobState": "COMPLETING"})
    assert jobend.why("5", "0", completing, 0, watched=True) is None  # the end-watcher says how
    assert said("5", "0", {"JobState": "COMPLETING"}).startswith("relion-qsub: Slurm is ending job 5 from outside")
    cancelled = said("5", "0", {"JobState": "CANCELLED", "UserId": "me(0)"})
    assert cancelled.startswith("relion-qsub: Slurm job 5 was cancelled (by scancel, or by Slurm)"), cancelled
    timeout = said("5", "143", {"JobState": "TIMEOUT", "ExitCode": "0:15"})
    assert timeout.startswith("relion-qsub: Slurm job 5 hit its time limit (TIMEOUT, exit code 0:15)"), timeout
    for slurm in ({}, {"JobState": "RUNNING"}):  # no answer, or the script ended by itself
        assert said("5", "0", slurm) == jobend.reason("5", "0")


def test_the_watcher_of_a_job_the_controller_forgot_reads_accounting(fp: FakeProcess) -> None:
    """A watcher that starts more than MinJobAge after the job's end (a busy cluster): scontrol no longer knows the
    job; sacct still says who cancelled it, its exit code and reason (slurm.client.job_state)."""
    for _ in range(3):  # show_job, then job_state asks again before it reads accounting
        fp.register(["scontrol", fp.any()], returncode=1, stderr="slurm_load_jobs error: Invalid job id specified\n")
    fp.register(["sacct", fp.any()], stdout=f"CANCELLED by {os.getuid()}\n")
    fp.register(["sacct", fp.any()], stdout=f"CANCELLED by {os.getuid()}|0:15|cn5|00:05:00|None\n")
    line = watch.ending("11", sleep=lambda _: None)
    assert line.startswith("Slurm job 11 was cancelled by you (") and "(CANCELLED, exit code 0:15)" in line, line
