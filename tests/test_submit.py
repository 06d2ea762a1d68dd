"""Submission failure paths, with sbatch/squeue faked by pytest-subprocess (the real path is in test_qsub_cluster)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from pytest_subprocess import FakeProcess

from relion_qsub import jobend, profile
from relion_qsub import prepare as prep
from relion_qsub import submit as sub
from relion_qsub.checks.registry import ALL_POLICY
from relion_qsub.cli import qsub_main
from relion_qsub.errors import EX_DATAERR, CommandError, TransientError
from relion_qsub.relion import jobdir as jobdir_mod

SITE = dataclasses.replace(
    profile.load("testbed"),
    submit=dataclasses.replace(profile.load("testbed").submit, timeout=0.2, attempts=3, backoff=(0.0,)),
)
TOKEN = "relion-qsub:test0token"
SCRIPT = "#!/bin/bash\n#SBATCH --ntasks=1 --partition=norm\n#SBATCH --gres=\nhostname\n"


@pytest.fixture
def jobdir(tmp_path: Path) -> Path:
    d = tmp_path / "Class2D" / "job007"
    d.mkdir(parents=True)
    (d / "run_submit.script").write_text(SCRIPT)
    return d


def prepared(jobdir: Path) -> prep.Prepared:
    p = prep.prepare(jobdir / "run_submit.script", [], SITE)
    prep.write_output(p)
    return p


def sbatch_cmd(p: prep.Prepared) -> list[str]:
    return ["sbatch", "--begin=now+365days", "--no-requeue", f"--comment={TOKEN}", str(p.output)]


def no_answer(process: object) -> None:
    """sbatch that does not answer within the timeout (as subprocess.run reports it)."""
    raise subprocess.TimeoutExpired("sbatch", 0.2)


SQUEUE = ["squeue", "--noheader", "--states=all", FakeProcess.any(), "--format=%i|%T|%r|%k"]


def test_success_passes_the_job_id(fp: FakeProcess, jobdir: Path) -> None:
    p = prepared(jobdir)
    fp.register(sbatch_cmd(p), stdout="Submitted batch job 42\n")
    s = sub.submit(SITE, p, token=TOKEN, sleep=lambda _: None)
    assert (s.job_id, s.returncode, len(s.attempts)) == ("42", 0, 1)


def test_timeout_then_success_submits_once_more_only_after_squeue_says_no_job(fp: FakeProcess, jobdir: Path) -> None:
    p = prepared(jobdir)
    fp.register(sbatch_cmd(p), callback=no_answer)
    fp.register(
        SQUEUE, stdout="11|RUNNING|None|someone else's job\n", occurrences=2
    )  # "no job", twice, settle seconds apart
    fp.register(sbatch_cmd(p), stdout="Submitted batch job 43\n")
    fp.register(SQUEUE, stdout=f"43|PENDING|BeginTime|{TOKEN}\n")  # after a retry: no twin
    s = sub.submit(SITE, p, token=TOKEN, sleep=lambda _: None)
    assert s.job_id == "43"
    assert fp.call_count(sbatch_cmd(p)) == 2


def test_timeout_but_job_exists_is_not_submitted_again(fp: FakeProcess, jobdir: Path) -> None:
    p = prepared(jobdir)
    fp.register(sbatch_cmd(p), stderr="sbatch: error: Socket timed out on send/recv operation\n", returncode=1)
    fp.register(SQUEUE, stdout=f"44|PENDING|BeginTime|{TOKEN}\n", occurrences=2)
    s = sub.submit(SITE, p, token=TOKEN, sleep=lambda _: None)
    assert s.job_id == "44" and s.stdout == "Submitted batch job 44\n"
    assert fp.call_count(sbatch_cmd(p)) == 1


def test_squeue_failure_after_a_timeout_never_risks_a_second_job(fp: FakeProcess, jobdir: Path) -> None:
    p = prepared(jobdir)
    fp.register(sbatch_cmd(p), stderr="sbatch: error: Socket timed out on send/recv operation\n", returncode=1)
    fp.register(SQUEUE, stderr="squeue: error: Unable to contact slurm controller\n", returncode=1, occurrences=3)
    with pytest.raises(TransientError, match="could not say whether the job exists"):
        sub.submit(SITE, p, token=TOKEN, sleep=lambda _: None)
    assert fp.call_count(sbatch_cmd(p)) == 1


def test_retries_are_bounded(fp: FakeProcess, jobdir: Path) -> None:
    p = prepared(jobdir)
    error = "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)\n"
    fp.register(sbatch_cmd(p), stderr=error, returncode=1, occurrences=3)
    fp.register(SQUEUE, stdout="", occurrences=6)
    with pytest.raises(TransientError, match=r"failed 3 times.*no job was created"):
        sub.submit(SITE, p, token=TOKEN, sleep=lambda _: None)


def test_squeue_answering_again_after_a_stall_finds_the_job(fp: FakeProcess, jobdir: Path) -> None:
    """The controller stalls: sbatch times out, squeue fails once, then answers with the job sbatch created."""
    p = prepared(jobdir)
    fp.register(sbatch_cmd(p), stderr="sbatch: error: Socket timed out on send/recv operation\n", returncode=1)
    fp.register(SQUEUE, stderr="squeue: error: Socket timed out on send/recv operation\n", returncode=1)
    fp.register(SQUEUE, stdout=f"45|PENDING|BeginTime|{TOKEN}\n", occurrences=2)
    s = sub.submit(SITE, p, token=TOKEN, sleep=lambda _: None)
    assert s.job_id == "45" and fp.call_count(sbatch_cmd(p)) == 1


def test_last_attempt_is_checked_too(fp: FakeProcess, jobdir: Path) -> None:
    """Even the last timed-out sbatch may have created the job: it is looked up before giving up."""
    p = prepared(jobdir)
    error = "sbatch: error: Socket timed out on send/recv operation\n"
    fp.register(sbatch_cmd(p), stderr=error, returncode=1, occurrences=3)
    fp.register(SQUEUE, stdout="", occurrences=4)
    fp.register(SQUEUE, stdout=f"46|PENDING|BeginTime|{TOKEN}\n", occurrences=2)
    s = sub.submit(SITE, p, token=TOKEN, sleep=lambda _: None)
    assert s.job_id == "46" and fp.call_count(sbatch_cmd(p)) == 3


def test_a_late_twin_is_cancelled_and_the_oldest_job_kept(fp: FakeProcess, jobdir: Path) -> None:
    """squeue said "no job" twice, yet the timed-out request still created one: the retry's twin is cancelled."""
    p = prepared(jobdir)
    fp.register(sbatch_cmd(p), stderr="sbatch: error: Socket timed out on send/recv operation\n", returncode=1)
    fp.register(SQUEUE, stdout="", occurrences=2)
    fp.register(sbatch_cmd(p), stdout="Submitted batch job 48\n")
    fp.register(SQUEUE, stdout=f"48|PENDING|BeginTime|{TOKEN}\n47|PENDING|BeginTime|{TOKEN}\n")
    fp.register(["scancel", "48"])
    s = sub.submit(SITE, p, token=TOKEN, sleep=lambda _: None)
    assert s.job_id == "47" and s.stdout == "Submitted batch job 47\n"
    assert fp.call_count(["scancel", "48"]) == 1 and "kept 47" in s.stderr


def test_permanent_rejection_is_not_retried(fp: FakeProcess, jobdir: Path) -> None:
    p = prepared(jobdir)
    fp.register(sbatch_cmd(p), stderr="sbatch: error: invalid partition specified: nosuch\n", returncode=1)
    with pytest.raises(CommandError, match="invalid partition specified") as info:
        sub.submit(SITE, p, token=TOKEN, sleep=lambda _: None)
    assert info.value.returncode == 1 and fp.call_count(sbatch_cmd(p)) == 1


def test_missing_sbatch_is_a_clear_error(jobdir: Path) -> None:
    nowhere = dataclasses.replace(SITE, submit=dataclasses.replace(SITE.submit, sbatch="/nonexistent/sbatch"))
    p = prepared(jobdir)
    with pytest.raises(CommandError, match="command not found"):
        sub.submit(nowhere, p, token=TOKEN)


def test_user_comment_is_kept_beside_the_token(jobdir: Path) -> None:
    (jobdir / "run_submit.script").write_text(SCRIPT.replace("--ntasks=1", "--ntasks=1 --comment=mine"))
    p = prep.prepare(jobdir / "run_submit.script", [], SITE)
    assert sub.sbatch_argv(SITE, p, TOKEN)[-2] == f"--comment=mine [{TOKEN}]"
    p = prep.prepare(jobdir / "run_submit.script", ["--comment=cli"], SITE)
    assert sub.sbatch_argv(SITE, p, TOKEN)[-3:] == [
        "--comment=cli",
        f"--comment=cli [{TOKEN}]",
        str(p.output),
    ]


def write_site(tmp_path: Path, sbatch: str) -> Path:
    path = tmp_path / "site.toml"
    testbed = (Path(profile.PROFILE_DIR) / "testbed.toml").read_text()
    path.write_text(testbed.replace("[submit]\n", f'[submit]\nsbatch = "{sbatch}"\n'))
    return path


def test_cli_rejected_job_marks_relion_job_failed(
    fp: FakeProcess,
    jobdir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    profile = write_site(tmp_path, "sbatch")
    fp.register(["sbatch", fp.any()], stderr="sbatch: error: invalid partition specified: norm\n", returncode=1)
    monkeypatch.chdir(jobdir.parent.parent)
    rc = qsub_main(["--site", str(profile), "Class2D/job007/run_submit.script"])
    assert rc == 1  # sbatch's own exit code
    assert (jobdir / "RELION_JOB_EXIT_FAILURE").exists()
    assert "invalid partition specified" in (jobdir / "run.err").read_text()
    assert (jobdir / "run_submit.script").read_text() == SCRIPT  # RELION's script is never modified
    (entry,) = [json.loads(line) for line in (jobdir / jobdir_mod.RECORD).read_text().splitlines()]
    assert entry["submitted"] is False and entry["changes"][0]["rule"] == "empty-directive"
    assert "invalid partition specified" in capsys.readouterr().err


def test_cli_script_with_errors_is_not_submitted(
    fp: FakeProcess, jobdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (jobdir / "run_submit.script").write_text(SCRIPT.replace("--ntasks=1", "--ntasks=1 --frobnicate"))
    monkeypatch.chdir(jobdir.parent.parent)
    rc = qsub_main(["--site", "testbed", "Class2D/job007/run_submit.script"])
    assert rc == EX_DATAERR and fp.calls == type(fp.calls)()
    assert (jobdir / "RELION_JOB_EXIT_FAILURE").exists()
    assert "frobnicate" in (jobdir / "run.err").read_text()


def test_cli_success_logs_job_id(
    fp: FakeProcess, jobdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The happy path of a RELION job: two controller calls, the job's sbatch (un-held: its script runs the guard)
    and the end-watcher's; no release."""
    fp.register(["sbatch", "--no-requeue", fp.any()], stdout="Submitted batch job 99\n")
    fp.register(["sbatch", "--parsable", "--dependency=afternotok:99", fp.any()], stdout="100\n")
    monkeypatch.chdir(jobdir.parent.parent)
    assert qsub_main(["--site", "testbed", "Class2D/job007/run_submit.script"]) == 0
    assert capsys.readouterr().out == "Submitted batch job 99\n"
    assert len(fp.calls) == 2 and not any(call[0] == "scontrol" for call in fp.calls)
    entry = json.loads((jobdir / jobdir_mod.RECORD).read_text())
    assert entry["job_id"] == "99" and entry["normalised"].endswith("run_submit.slurm")
    assert (entry["watcher"], entry["released"], entry["held"]) == ("100", False, False)
    assert jobend.GUARD_VAR in (jobdir / "run_submit.slurm").read_text()
    assert entry["sbatch_argv"][-1].endswith("run_submit.slurm")
    assert not (jobdir / "RELION_JOB_EXIT_FAILURE").exists()


def test_cli_check_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.sh"
    good.write_text(SCRIPT)
    assert qsub_main(["check", "--diff", "--site", "testbed", str(good)]) == 0
    out, err = capsys.readouterr()
    assert "#SBATCH --gres=" not in out and "-#SBATCH --gres=" in err and not (tmp_path / "good.sh.slurm").exists()
    assert qsub_main(["check", str(tmp_path / "missing.sh")]) == 66
    assert "no such file" in capsys.readouterr().err
    assert qsub_main(["check"]) == 64
    assert qsub_main(["--bogus", "x.sh"]) == 64


@pytest.mark.parametrize(
    "text",
    [
        "#!/bin/bash\n#SBATCH --gres= -n 1\nhostname\n",
        "#!/bin/bash\n#SBATCH --gres= -n 1",  # no body, no final newline
        "#!/bin/bash\r\n#SBATCH --gres= -n 1\r\nhostname\r\n",
    ],
)
def test_report_is_echoed_into_the_job_output(tmp_path: Path, text: str) -> None:
    """The GUI shows run.out, not the terminal: the submitted script prints relion-qsub's report first."""
    script = tmp_path / "job.sh"
    script.write_text(text)
    p = prep.prepare(script, [], SITE)
    body = p.text.replace("\r\n", "\n")
    proc = subprocess.run(["bash", "-c", body], capture_output=True, text=True, check=False)
    assert proc.stdout.startswith("relion-qsub: fixed: line 2: dropped the empty '--gres='"), proc.stdout
    assert ("hostname" in text) == (proc.stdout.count("\n") == 2)
    clean = prep.prepare(script, [], dataclasses.replace(SITE, policy={k: "off" for k in ALL_POLICY}))
    assert clean.text == text  # nothing to report: the script is submitted as normalised, byte for byte


def test_run_returns_typed_outcomes(fp: FakeProcess, jobdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`submit.run` owns the sequence; each branch says what happened in its Outcome (cli only prints it)."""
    monkeypatch.chdir(jobdir.parent.parent)
    script = Path("Class2D/job007/run_submit.script")
    script.write_text(SCRIPT.replace("/bin/bash", "/bin/csh"))  # no guard in csh: held, then released
    fp.register(["sbatch", "--begin=now+365days", fp.any()], stdout="Submitted batch job 99\n")
    fp.register(["sbatch", "--parsable", "--dependency=afternotok:99", fp.any()], stdout="100\n")
    fp.register(
        ["scontrol", "update", "JobId=99", fp.any()], stderr="slurm_update error: Socket timed out\n", returncode=1
    )
    fp.keep_last_process(True)
    said: list[str] = []
    hooks = sub.Hooks(job=said.append, said=said.append)
    held = sub.run(script, ["--begin=now+1hour"], "testbed", hooks, sleep=lambda _: None)
    assert (held.status, held.exit_code) == (sub.Status.NOT_RELEASED, TransientError.exit_code)
    assert held.submission is not None and held.submission.job_id == "99" and not held.submission.released
    assert held.message.startswith("error: job 99 was submitted held and could not be released")
    assert said[0] == "Submitted batch job 99\n"  # the id first, before the release was tried
    assert ("scontrol", "update", "JobId=99", "StartTime=now+1hour") in fp.calls  # the command line's --begin
    assert (jobdir / "RELION_JOB_EXIT_FAILURE").exists()
    (jobdir / "run_submit.script").write_text(SCRIPT.replace("--ntasks=1", "--ntasks=1 --frobnicate"))
    refused = sub.run(script, [], "testbed")
    assert (refused.status, refused.exit_code, refused.error) == (sub.Status.REFUSED, EX_DATAERR, None)
    assert refused.message == "not submitted; fix the errors above and run the job again"
    missing = sub.run(Path("Class2D/job007/nothing.script"), [], "testbed")
    assert (missing.status, missing.exit_code) == (sub.Status.FAILED, 66) and "no such file" in missing.message


# ---- a guarded RELION job: the first request un-held, voided once its answer is lost (jobend.guard) --------------

LOST = "sbatch: error: Socket timed out on send/recv operation\n"


def guarded(jobdir: Path) -> prep.Prepared:
    p = prep.prepare(jobdir / "run_submit.script", [], SITE, token=TOKEN)
    prep.write_output(p)
    assert p.guard == TOKEN
    return p


def unheld_cmd(p: prep.Prepared) -> list[str]:
    return ["sbatch", "--no-requeue", f"--comment={TOKEN}", str(p.output)]


def kept_file(jobdir: Path) -> Path:
    return jobdir / jobdir_mod.kept_name(TOKEN)


def test_guarded_first_request_goes_in_unheld_and_needs_no_release(fp: FakeProcess, jobdir: Path) -> None:
    p = guarded(jobdir)
    fp.register(unheld_cmd(p), stdout="Submitted batch job 42\n")
    s = sub.submit(SITE, p, token=TOKEN, sleep=lambda _: None)
    assert (s.job_id, s.held, s.voided) == ("42", False, False) and len(fp.calls) == 1
    assert not kept_file(jobdir).exists()  # the happy path writes nothing beside the job


def test_guarded_lost_answer_found_by_token_is_kept_unheld(fp: FakeProcess, jobdir: Path) -> None:
    p = guarded(jobdir)
    fp.register(unheld_cmd(p), stderr=LOST, returncode=1)
    fp.register(SQUEUE, stdout=f"44|RUNNING|None|{TOKEN}\n", occurrences=2)
    s = sub.submit(SITE, p, token=TOKEN, sleep=lambda _: None)
    assert (s.job_id, s.held, s.voided) == ("44", False, False) and not kept_file(jobdir).exists()
    assert fp.call_count(["sbatch", fp.any()]) == 1


def test_guarded_retry_is_held_after_the_first_request_is_voided(fp: FakeProcess, jobdir: Path) -> None:
    """No job after the lost answer: the kept-job file (naming no job) is written BEFORE the held retry; the
    first request's late job (RUNNING: its guard ends it) is never kept, the held retry is, and the file names it."""
    p = guarded(jobdir)
    seen: list[str] = []
    fp.register(unheld_cmd(p), stderr=LOST, returncode=1)
    fp.register(SQUEUE, stdout="", occurrences=2)
    fp.register(
        sbatch_cmd(p), stdout="Submitted batch job 48\n", callback=lambda _: seen.append(kept_file(jobdir).read_text())
    )
    fp.register(SQUEUE, stdout=f"47|RUNNING|None|{TOKEN}\n48|PENDING|BeginTime|{TOKEN}\n")
    fp.register(["scancel", "47"])
    s = sub.submit(SITE, p, token=TOKEN, sleep=lambda _: None)
    assert seen == [""]  # void before the retry went out
    assert (s.job_id, s.held, s.voided, s.stdout) == ("48", True, True, "Submitted batch job 48\n")
    assert kept_file(jobdir).read_text() == "48" and fp.call_count(["scancel", "47"]) == 1


def test_guarded_voided_request_found_alone_is_not_kept(fp: FakeProcess, jobdir: Path) -> None:
    """After voiding, a job squeue finds that could start (the un-held first request's) is not the submission's:
    the held retry's answer is lost too, squeue finds only the un-held one, so relion-qsub tries again."""
    p = guarded(jobdir)
    fp.register(unheld_cmd(p), stderr=LOST, returncode=1)
    fp.register(SQUEUE, stdout="", occurrences=2)
    fp.register(sbatch_cmd(p), stderr=LOST, returncode=1)
    fp.register(SQUEUE, stdout=f"47|PENDING|Priority|{TOKEN}\n", occurrences=2)
    fp.register(sbatch_cmd(p), stdout="Submitted batch job 49\n")
    fp.register(SQUEUE, stdout=f"47|PENDING|Priority|{TOKEN}\n49|PENDING|BeginTime|{TOKEN}\n")
    fp.register(["scancel", "47"])
    s = sub.submit(SITE, p, token=TOKEN, sleep=lambda _: None)
    assert (s.job_id, kept_file(jobdir).read_text()) == ("49", "49")
    assert fp.call_count(sbatch_cmd(p)) == 2 and fp.call_count(["scancel", "47"]) == 1


def test_guarded_giving_up_voids_the_first_request(
    fp: FakeProcess, jobdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """squeue cannot say whether the lost request made a job: relion-qsub gives up, and the kept-job file (no job)
    makes that job, if the controller still creates it, end in its guard; RELION is told it failed, truthfully."""
    monkeypatch.chdir(jobdir.parent.parent)
    fp.register(["sbatch", "--no-requeue", fp.any()], stderr=LOST, returncode=1)
    fp.register(SQUEUE, stderr="squeue: error: Unable to contact slurm controller\n", returncode=1, occurrences=9)
    out = sub.run(Path("Class2D/job007/run_submit.script"), [], "testbed", sleep=lambda _: None)
    assert out.status == sub.Status.FAILED and fp.call_count(["sbatch", fp.any()]) == 1
    (kept,) = jobdir.glob(jobdir_mod.KEPT_PREFIX + "*")  # run() made the token
    assert kept.read_text() == ""
    line = (jobdir / "run.err").read_text()
    assert f"ends at once without running anything ({kept.name} names no job; token" in line, line
    assert (jobdir / jobdir_mod.EXIT_FAILURE).exists()
    assert json.loads((jobdir / jobdir_mod.RECORD).read_text())["held"] is False


def test_guarded_retry_is_not_sent_when_the_kept_file_cannot_be_written(fp: FakeProcess, jobdir: Path) -> None:
    p = guarded(jobdir)
    fp.register(unheld_cmd(p), stderr=LOST, returncode=1)
    fp.register(SQUEUE, stdout="", occurrences=2)
    kept_file(jobdir).mkdir()  # rename(2) of the temporary over a directory fails
    with pytest.raises(TransientError, match=f"cannot write .*{kept_file(jobdir).name}.*scancel any job"):
        sub.submit(SITE, p, token=TOKEN, sleep=lambda _: None)
    assert fp.call_count(["sbatch", fp.any()]) == 1


@pytest.mark.parametrize("shell", [shell for shell in ("bash", "dash", "zsh") if shutil.which(shell)])
@pytest.mark.parametrize(("kept", "runs"), [(None, True), ("", False), ("5", True), ("7", False)])
def test_the_guard_runs_only_the_kept_job(tmp_path: Path, shell: str, kept: str | None, runs: bool) -> None:
    """The guard in a real shell: no kept-job file (the happy path) or one naming this job: the script goes on;
    one naming no job or another job: one run.err line, exit 0, nothing else runs (no EXIT trap is set yet)."""
    job = tmp_path / "Class 2D" / "job007"
    job.mkdir(parents=True)
    if kept is not None:
        (job / jobdir_mod.kept_name(TOKEN)).write_text(kept)
    script = "\n".join([jobend.guard(job, TOKEN), "echo RAN"]) + "\n"
    env = {"PATH": "/usr/bin:/bin", "SLURM_JOB_ID": "5"}
    done = subprocess.run([shell, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0 and (done.stdout == "RAN\n") == runs, done
    if not runs:
        assert done.stderr == (
            "relion-qsub: Slurm job 5 comes from a request whose answer was lost; relion-qsub kept "
            f"{kept or 'no job'} for this submission, so it ends here without running anything\n"
        )
