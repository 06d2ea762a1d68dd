"""Issue 13 without a cluster: writes that fail on real filesystems, the end-watcher's sentence, doctor's judgement
of held, ghost and never-starting jobs, relion-launch's wording. sbatch/squeue/scontrol are faked (pytest-subprocess)
only to inject failures; the real endings are in test_reliability_cluster.py.

Full disk and read-only directories are real: a small tmpfs and a read-only bind mount (root ignores file modes, so
a chmod test could not fail as root). Without root those tests cannot build their filesystem and say so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_subprocess import FakeProcess

from relion_qsub import proc, watch
from relion_qsub.checks.registry import ALL_POLICY
from relion_qsub.cli import qsub_main
from relion_qsub.doctor import job as doctor_job
from relion_qsub.errors import EX_CANTCREAT, EX_IOERR, EX_TEMPFAIL
from relion_qsub.launch.supervise import Outcome, RankFailure, verdict
from relion_qsub.slurm import client, states

SCRIPT = "#!/bin/bash\n#SBATCH --ntasks=1 --partition=norm --time=0:05:00\nhostname\n"


def mount(*argv: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs / read-only bind mount (root ignores chmod)")
    subprocess.run(["mount", *argv], check=True, capture_output=True, text=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs holding a project with Class2D/job007/run_submit.script."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk))
    try:
        job = disk / "Class2D" / "job007"
        job.mkdir(parents=True)
        (job / "run_submit.script").write_text(SCRIPT)
        yield job
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, keep_pages: int = 0) -> None:
    """Fill the filesystem with 4 KiB files, then free ``keep_pages`` of them again."""
    fillers = disk / "fill"
    fillers.mkdir()
    n = 0
    try:
        while True:
            (fillers / str(n)).write_bytes(b"x" * 4096)
            n += 1
    except OSError:
        (fillers / str(n)).unlink(missing_ok=True)
    for i in range(keep_pages):
        (fillers / str(n - 1 - i)).unlink()


def test_full_disk_before_submitting_is_74_and_relion_is_told(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fp: FakeProcess
) -> None:
    fill(small_disk.parent.parent)
    monkeypatch.chdir(small_disk.parent.parent)
    assert qsub_main(["--site", "testbed", "Class2D/job007/run_submit.script"]) == EX_IOERR
    err = capsys.readouterr().err
    assert "Class2D/job007/run_submit.slurm: cannot write the normalised script (No space left on device)" in err
    assert "internal error" not in err and not fp.calls  # nothing submitted
    assert (small_disk / "RELION_JOB_EXIT_FAILURE").exists()  # an empty file needs an inode, no block
    left = {p.name: p.stat().st_size for p in small_disk.iterdir() if p.name != "run_submit.script"}
    assert left.pop("RELION_JOB_EXIT_FAILURE") == 0
    assert set(left) <= {"run.err", "relion-qsub.jsonl"} and set(left.values()) <= {0}, left  # never half a line


def test_full_disk_after_submitting_keeps_the_job_id(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fp: FakeProcess
) -> None:
    fp.register(["sbatch", "--no-requeue", fp.any()], stdout="Submitted batch job 77\n")  # un-held: guarded
    fp.register(["sbatch", "--parsable", fp.any()], stdout="78\n")
    fp.register(["scontrol", "update", "JobId=77", "StartTime=now"])
    fill(small_disk.parent.parent, keep_pages=1)  # room for the normalised script, none for the record
    monkeypatch.chdir(small_disk.parent.parent)
    assert qsub_main(["--site", "testbed", "Class2D/job007/run_submit.script"]) == 0
    out, err = capsys.readouterr()
    assert out == "Submitted batch job 77\n"
    assert "cannot append to Class2D/job007/relion-qsub.jsonl: No space left on device; the job is Slurm job 77" in err
    record = small_disk / "relion-qsub.jsonl"
    assert not record.exists() or record.read_bytes() == b""  # never half a line


def test_read_only_job_dir_is_73_with_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fp: FakeProcess
) -> None:
    job = tmp_path / "Class2D" / "job007"
    job.mkdir(parents=True)
    (job / "run_submit.script").write_text(SCRIPT)
    fp.pass_command(["mount", fp.any()], occurrences=2)
    fp.pass_command(["umount", fp.any()])
    mount("--bind", str(job), str(job))
    try:
        mount("-o", "remount,bind,ro", str(job))
        monkeypatch.chdir(tmp_path)
        assert qsub_main(["--site", "testbed", "Class2D/job007/run_submit.script"]) == EX_CANTCREAT
    finally:
        subprocess.run(["umount", str(job)], check=False)
    err = capsys.readouterr().err
    assert "Class2D/job007/run_submit.slurm: cannot write the normalised script (Read-only file system)" in err
    assert "cannot tell RELION: cannot create Class2D/job007/RELION_JOB_EXIT_FAILURE (Read-only file system)" in err
    assert "internal error" not in err and fp.call_count(["sbatch", fp.any()]) == 0


def test_a_job_that_cannot_be_released_is_held_for_good_and_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fp: FakeProcess
) -> None:
    job = tmp_path / "Class2D" / "job007"
    job.mkdir(parents=True)
    (job / "run_submit.script").write_text(SCRIPT.replace("/bin/bash", "/bin/csh"))  # no guard in csh: held
    fp.register(["sbatch", "--begin=now+365days", fp.any()], stdout="Submitted batch job 80\n")
    fp.register(["sbatch", "--parsable", fp.any()], stdout="81\n")
    unreachable = "scontrol: error: Unable to contact slurm controller (connect failure)\n"
    fp.register(["scontrol", "update", "JobId=80", "StartTime=now"], stderr=unreachable, returncode=1, occurrences=3)
    monkeypatch.setattr("time.sleep", lambda _: None)
    monkeypatch.chdir(tmp_path)
    assert qsub_main(["--site", "testbed", "Class2D/job007/run_submit.script"]) == EX_TEMPFAIL
    out, err = capsys.readouterr()
    assert out == "Submitted batch job 80\n"  # the id is never lost
    assert "job 80 was submitted held and could not be released" in err and "scancel 80" in err
    assert (job / "RELION_JOB_EXIT_FAILURE").exists()
    assert (job / "run.err").read_text().startswith("relion-qsub: job 80 not started: job 80 was submitted held")
    entry = json.loads((job / "relion-qsub.jsonl").read_text())
    assert entry["job_id"] == "80" and entry["released"] is False and entry["watcher"] == "81"


def test_watcher_submission_failure_is_a_warning_and_the_job_still_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fp: FakeProcess
) -> None:
    job = tmp_path / "Class2D" / "job007"
    job.mkdir(parents=True)
    (job / "run_submit.script").write_text(SCRIPT)
    fp.register(["sbatch", "--no-requeue", fp.any()], stdout="Submitted batch job 82\n")
    fp.register(["sbatch", "--parsable", fp.any()], stderr="sbatch: error: QOSMaxSubmitJobPerUserLimit\n", returncode=1)
    fp.register(["scontrol", "update", "JobId=82", "StartTime=now"])
    monkeypatch.chdir(tmp_path)
    assert qsub_main(["--site", "testbed", "Class2D/job007/run_submit.script"]) == 0
    err = capsys.readouterr().err
    said = "Slurm refused the end-watcher of job 82 (sbatch: error: QOSMaxSubmitJobPerUserLimit)"
    assert said in err and "before it runs" not in err  # the old wording, which the job's own trap made untrue
    assert "RELION will not be told and shows it Running: check with `relion-qsub doctor`" in err
    entry = json.loads((job / "relion-qsub.jsonl").read_text())
    assert entry["job_id"] == "82" and entry["held"] is False and "watcher" not in entry  # un-held: runs unreleased
    # The record and the job's note (printed by the job into run.out and run.err) carry the same warning.
    note = (job / "relion-qsub-unwatched.82").read_text()
    assert note.rstrip("\n") == entry["unwatched"] and said in note and note in err


def test_watcher_argv_depends_afternotok_and_is_never_requeued(tmp_path: Path) -> None:
    argv = watch.sbatch_argv("sbatch", "12", tmp_path, ["--partition=norm"], ("--partition=quick",))
    assert argv[:4] == ["sbatch", "--parsable", "--dependency=afternotok:12", "--kill-on-invalid-dep=yes"]
    assert "--no-requeue" in argv and argv.index("--partition=norm") < argv.index("--partition=quick")
    assert argv[-1].startswith("--wrap=") and str(tmp_path) in argv[-1] and "relion-qsub" not in argv[6]


class FakeSlurm:
    def __init__(self, scontrol: str, sacct: str) -> None:
        self.scontrol, self.sacct = scontrol, sacct

    def __call__(self, argv: list[str], timeout: float | None = None) -> proc.Result:
        out = self.scontrol if argv[0] == "scontrol" else self.sacct
        return proc.Result(tuple(argv), 0, out, "")


@pytest.mark.parametrize(
    ("scontrol", "sacct", "expected"),
    [
        ("JobState=CANCELLED Reason=None ExitCode=0:0 UserId=root(0)", "CANCELLED by 0\n", "was cancelled by you"),
        ("JobState=NODE_FAIL Reason=NodeDown ExitCode=0:15 UserId=root(0)", "NODE_FAIL\n", "lost a node"),
        ("JobState=FAILED Reason=JobLaunchFailure ExitCode=0:53 UserId=root(0)", "FAILED\n", "could not be launched"),
        ("JobState=OUT_OF_MEMORY Reason=OutOfMemory ExitCode=0:125", "OUT_OF_MEMORY\n", "ran out of memory"),
        ("JobState=FAILED Reason=NonZeroExitCode ExitCode=137:0", "FAILED\n", "was killed: its batch script ended"),
        ("JobState=FAILED Reason=NonZeroExitCode ExitCode=2:0", "FAILED\n", "exited with an error"),
        ("JobState=TIMEOUT Reason=TimeLimit ExitCode=0:0", "TIMEOUT\n", "hit its time limit"),
        ("JobState=PREEMPTED Reason=None ExitCode=0:0", "PREEMPTED\n", "was preempted"),
        ("JobState=BOOT_FAIL Reason=None ExitCode=0:0", "BOOT_FAIL\n", "could not start: its node failed to boot"),
        ("JobState=DEADLINE Reason=None ExitCode=0:0", "DEADLINE\n", "missed its deadline"),
    ],
)
def test_watcher_says_how_slurm_ended_the_job(scontrol: str, sacct: str, expected: str) -> None:
    line = watch.ending("9", FakeSlurm(scontrol, sacct), sleep=lambda _: None)
    assert line.startswith(f"Slurm job 9 {expected}") and line.count(";") >= 1, line


def test_watcher_never_writes_over_an_exit_file(tmp_path: Path) -> None:
    (tmp_path / "RELION_JOB_EXIT_SUCCESS").touch()
    assert watch.main([str(tmp_path), "9"]) == 0
    assert not (tmp_path / "RELION_JOB_EXIT_FAILURE").exists()


def test_cancelled_by_someone_else() -> None:
    assert states.cancelled_by("CANCELLED by 0", owner_uid=1000).startswith("was cancelled by root (scancel by an")
    assert states.cancelled_by("CANCELLED", owner_uid=0) == ""


def test_doctor_a_job_that_can_never_start_is_an_error_with_the_fix() -> None:
    view = client.JobView("5", "PENDING", reason="PartitionNodeLimit")
    ((level, what, fix),) = doctor_job.judge("j/", "running", view)
    assert (level, what) == ("error", "Slurm job 5 can never start: PENDING (PartitionNodeLimit)")
    assert "fewer nodes" in fix and "--fix marks it failed and cancels it" in fix
    assert doctor_job.judge("j/", "running", client.JobView("5", "PENDING", reason="Resources"))[0][0] == "ok"


def test_doctor_a_held_job_relion_was_told_failed() -> None:
    ((level, what, fix),) = doctor_job.judge("j/", "failure", client.JobView("5", "PENDING", reason="JobHeldUser"))
    assert level == "error" and what.endswith("is held and never runs") and "--fix cancels it" in fix


def test_doctor_finds_a_ghost_by_its_token(tmp_path: Path) -> None:
    job = tmp_path / "Class2D" / "job001"
    job.mkdir(parents=True)
    (job / "RELION_JOB_EXIT_FAILURE").touch()
    (job / "relion-qsub.jsonl").write_text(json.dumps({"submitted": False, "token": "relion-qsub:ab", "held": True}))
    calls: list[list[str]] = []

    def runner(argv: list[str], timeout: float | None = None) -> proc.Result:
        calls.append(argv)
        rows = "7|PENDING|BeginTime|relion-qsub:ab\n8|PENDING|BeginTime|relion-qsub:abc\n"
        return proc.Result(tuple(argv), 0, rows if argv[0] == "squeue" else "", "")

    findings = doctor_job.check(tmp_path, job, runner=runner)
    (ghost,) = [f for f in findings if "carries the token" in f.what]
    assert (
        ghost.level == "error" and ghost.what.startswith("held job 7 carries the token") and "never runs" in ghost.what
    )
    assert ghost.repair is not None and ghost.repair() == "cancelled job 7" and calls[-1] == ["scancel", "7"]


def test_doctor_without_job_checks_the_jobs_the_pipeline_shows_running(tmp_path: Path) -> None:
    for n in (1, 2):
        (tmp_path / "Class2D" / f"job00{n}").mkdir(parents=True)
    (tmp_path / "default_pipeline.star").write_text(
        "data_pipeline_processes\n\nloop_\n_rlnPipeLineProcessName #1\n_rlnPipeLineProcessAlias #2\n"
        "_rlnPipeLineProcessType #3\n_rlnPipeLineProcessStatus #4\nClass2D/job001/ None 8 0\n"
        "Class2D/job002/ None 8 2\n"
    )
    assert doctor_job.running_jobs(tmp_path) == [tmp_path / "Class2D" / "job001/"]


def test_doctor_run_err_step_cancel_is_not_blamed_on_a_person() -> None:
    ((_, step, _),) = doctor_job.scan_err("slurmstepd: error: *** STEP 5.0 ON cn1 CANCELLED AT 2026-12-01T00:00:00 ***")
    assert step.kind == "step-ended" and "by you" not in step.what
    ((_, node, _),) = doctor_job.scan_err("*** JOB 5 ON cn1 CANCELLED AT 2026-12-01T00:00:00 DUE TO NODE FAILURE ***")
    assert node.kind == "node-fail"


def test_launch_does_not_blame_a_rank_slurm_terminated() -> None:
    outcome = Outcome(143, RankFailure(0, "cn1", 143, "Terminated"))
    code, reason = verdict(outcome, "relion_refine_mpi", "55")
    assert code == 143 and reason is not None
    assert (
        "failed first" not in reason
        and reason.startswith("Slurm ended the step from outside")
        and "sacct -j 55" in reason
    )
    _, real = verdict(Outcome(3, RankFailure(2, "cn1", 3, "Exited with exit code 3")), "relion_refine_mpi")
    assert real is not None and "rank 2 on cn1 failed first" in real


def test_a_relion_jobs_output_names_its_job_id(tmp_path: Path) -> None:
    """run.out is what the GUI shows: the submitted script prints the Slurm job id (after relion-qsub's report)."""
    from relion_qsub import prepare as prep
    from relion_qsub import profile

    job = tmp_path / "Class2D" / "job007"
    job.mkdir(parents=True)
    (job / "run_submit.script").write_text(SCRIPT.replace("hostname", "echo body"))
    site = profile.load("testbed")
    p = prep.prepare(job / "run_submit.script", [], dataclasses.replace(site, policy={k: "off" for k in ALL_POLICY}))
    env = {"PATH": os.environ["PATH"], "SLURM_JOB_ID": "4242"}
    out = subprocess.run(["bash", "-c", p.text], capture_output=True, text=True, env=env, check=True).stdout
    assert out == "relion-qsub: this is Slurm job 4242\nbody\n"
