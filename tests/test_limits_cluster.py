"""Association limits on the real testbed (issue 20: limits are visible), enforced by slurmctld
(AccountingStorageEnforce=associations,limits in testbed/slurm.conf.in).

Each test sets limits with sacctmgr on root's association in the account ``limited`` (testbed/testbed registers it)
and restores them afterwards, whatever happens (the ``limits`` fixture). Only jobs submitted with
``--account=limited`` meet those limits; every other job (root's default account is ``relion``) is another
association and is not limited, so these tests starve nobody and run beside other cluster tests under the shared
lock. Nothing here fills the cluster: the largest job asks for 32 CPUs of one norm node for a few seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.slurmtools import cancel, job_info, run, sacct, sbatch, wait_until
from tests.test_doctor_cluster import PIPELINE, doctor, no_watcher_site, qsub
from tests.test_reliability_pipeliner_cluster import FAILED, job_id_of, pipeliner

pytestmark = pytest.mark.slurm

ACCOUNT = "limited"  # testbed/testbed: LIMITED_ACCOUNT
SUCCEEDED = "2"  # RELION 3.1 PROC_FINISHED_SUCCESS in _rlnPipeLineProcessStatus
# A RELION job with its own --account and CPUs (the template's lines as RELION fills them); no RELION program runs,
# so only relion-qsub and the doctor speak for it.
SCRIPT = """#!/bin/bash
#SBATCH --partition=norm --time=0:05:00 --ntasks=1 --mem-per-cpu=100m --account=limited {request}
#SBATCH --error=Class2D/job001/run.err
#SBATCH --output=Class2D/job001/run.out
echo started
sleep 120
"""


def assoc_mgr() -> str:
    argv = ["scontrol", "show", "assoc_mgr", "flags=assoc", "users=root", f"accounts={ACCOUNT}"]
    return run(argv).stdout


Limits = Callable[..., None]


@pytest.fixture
def limits() -> Iterator[Limits]:
    """``limits(GrpTRES="cpu=16", ...)``: sacctmgr sets them on root's association in ``limited``; slurmctld has them
    when it returns. Every limit set is cleared (-1) at teardown, also when the test failed."""
    cleared: dict[str, str] = {}
    argv = ["sacctmgr", "-i", "modify", "user", "root", "where", f"account={ACCOUNT}", "set"]

    def apply(seen_as: str, **settings: str) -> None:
        for key, value in settings.items():  # -1 clears a limit; a TRES limit per TRES (GrpTRES=cpu=-1)
            cleared[key] = ",".join(f"{t.split('=')[0]}=-1" for t in value.split(",")) if "=" in value else "-1"
        run([*argv, *(f"{k}={v}" for k, v in settings.items())])
        wait_until(f"slurmctld enforces {seen_as}", lambda: seen_as in assoc_mgr(), 30)

    try:
        yield apply
    finally:
        if cleared:
            run([*argv, *(f"{k}={v}" for k, v in cleared.items())])
            left = run(["sacctmgr", "-n", "-P", "show", "assoc", f"account={ACCOUNT}", "format=" + ",".join(cleared)])
            assert not left.stdout.replace("|", "").strip(), f"limits left on account {ACCOUNT}: {left.stdout}"


def submit(project: Path, request: str, site: str | None = None) -> str:
    """The job through relion-qsub, as RELION's Queue submit command (without an end-watcher unless ``site``)."""
    job = project / "Class2D" / "job001"
    job.mkdir(parents=True)
    (project / "default_pipeline.star").write_text(PIPELINE)
    (job / "run_submit.script").write_text(SCRIPT.format(request=request))
    proc = qsub("Class2D/job001/run_submit.script", cwd=project, site=site or no_watcher_site(project))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()[-1]


def pends_for(job_id: str, reason: str) -> None:
    wait_until(f"job {job_id} pends with {reason}", lambda: job_info(job_id).get("Reason") == reason, 30)


def test_a_request_over_a_group_limit_never_starts_and_a_busy_group_limit_waits(tmp_path: Path, limits: Limits) -> None:
    limits("GrpTRES=cpu=16(", GrpTRES="cpu=16")
    never = submit(tmp_path / "never", "--cpus-per-task=32")
    holder = ""
    try:
        pends_for(never, "AssocGrpCpuLimit")
        code, lines = doctor(tmp_path / "never")
        said = "\n".join(lines)
        assert code == 65, said
        assert f"error: Class2D/job001/: Slurm job {never} can never start: PENDING (AssocGrpCpuLimit)" in said
        assert "the job alone asks cpu=32, more than association limited/root allows" in said
        assert "ask for at most 16 CPUs" in said
        # report reads accounting, which hears of a new job a moment after the controller
        wait_until("sacct knows the job", lambda: sacct(never).get(never, {}).get("State") == "PENDING", 30)
        report = qsub("report", "--json", str(tmp_path / "never"), cwd=tmp_path)
        (row,) = json.loads(report.stdout)["jobs"]
        assert row["verdict"]["level"] == "error", row
        assert row["verdict"]["text"].startswith("can never start: PENDING (AssocGrpCpuLimit): the job alone asks")
        # The group limit busy with another job of the association: the job waits for it, which is no error.
        script = tmp_path / "holder.sh"
        script.write_text("#!/bin/sh\nsleep 120\n")
        holder = sbatch(script, "-A", ACCOUNT, "-p", "norm", "-c", "16", "--mem-per-cpu=100m", "-o", "/dev/null")
        wait_until("the holder runs", lambda: job_info(holder).get("JobState") == "RUNNING", 60)
        busy = submit(tmp_path / "busy", "--cpus-per-task=8")
        try:
            pends_for(busy, "AssocGrpCpuLimit")
            code, lines = doctor(tmp_path / "busy")
            assert code == 0, lines
            assert f"ok: Class2D/job001/: waiting: Slurm job {busy} PENDING (reason AssocGrpCpuLimit)" in "\n".join(
                lines
            )
        finally:
            cancel(busy)
        # --fix marks the never-starting one failed (RELION is told) and cancels it.
        code, lines = doctor(tmp_path / "never", "--fix")
        assert any("fixed: created RELION_JOB_EXIT_FAILURE" in x and f"cancelled job {never}" in x for x in lines)
        assert "can never start (PENDING AssocGrpCpuLimit)" in (tmp_path / "never/Class2D/job001/run.err").read_text()
    finally:
        cancel(never)
        if holder:
            cancel(holder)


@pytest.mark.parametrize(
    ("setting", "seen_as", "asked", "reason", "named"),
    [
        (
            "MaxTRESPerJob=node=1",
            "MaxTRESPJ=node=1",
            "--nodes=2 --ntasks=2",
            "AssocMaxNodePerJobLimit",
            "MaxTRESPerJob node=1",
        ),
        ("MaxWall=2", "MaxWallPJ=2", "--time=0:03:00", "AssocMaxWallDurationPerJobLimit", "MaxWall 2 minutes"),
    ],
)
def test_a_request_over_a_per_job_limit_never_starts_and_the_limit_is_named(
    tmp_path: Path, limits: Limits, setting: str, seen_as: str, asked: str, reason: str, named: str
) -> None:
    key, value = setting.split("=", 1)
    limits(seen_as, **{key: value})
    job_id = submit(tmp_path, asked)
    try:
        pends_for(job_id, reason)
        code, lines = doctor(tmp_path)
        said = "\n".join(lines)
        assert code == 65, said
        assert f"Slurm job {job_id} can never start: PENDING ({reason})" in said
        assert f"(association limited/root: {named}), or ask your admins to raise the limit" in said
    finally:
        cancel(job_id)


def note_of(job: Path, job_id: str) -> str:
    return (job / f"relion-qsub-unwatched.{job_id}").read_text().strip()


@pytest.mark.relion
@pytest.mark.parametrize("ending", ["success", "cancel"])
def test_a_refused_watcher_is_said_in_run_out_and_run_err_and_nothing_false_is_reported(
    tmp_path: Path, limits: Limits, ending: str
) -> None:
    """MaxSubmitJobs=1: sbatch takes the job and refuses its end-watcher (a RELION job counts twice). The real
    relion_pipeliner runs it; the job prints relion-qsub's note at its start into run.out and run.err (Slurm has
    just truncated both), and its end is still told truly: the program's SUCCESS, or the job's own EXIT trap for a
    cancel while it runs (it knows no watcher will say it)."""
    limits("MaxSubmitJobs=1", MaxSubmitJobs="1")
    job = tmp_path / "Class2D" / "job001"
    body = "sleep 2\n: > Class2D/job001/RELION_JOB_EXIT_SUCCESS" if ending == "success" else "sleep 120"
    pipe = pipeliner(tmp_path, body, f"--account={ACCOUNT}")
    job_id = job_id_of(tmp_path)
    try:
        entry = json.loads((job / "relion-qsub.jsonl").read_text().splitlines()[-1])
        assert "watcher" not in entry and "Job violates accounting/QOS policy" in entry["unwatched"], entry
        note = note_of(job, job_id)
        assert note == entry["unwatched"]
        assert "RELION will not be told and shows it Running: check with `relion-qsub doctor`" in note
        started = lambda: (job / "run.out").exists() and "started" in (job / "run.out").read_text()  # noqa: E731
        wait_until("the job runs", started, 60)
        if ending == "cancel":
            cancel(job_id)
        out, _ = pipe.communicate(timeout=75)  # relion_pipeliner returns once an exit file is there
        rows = [x.split() for x in (tmp_path / "default_pipeline.star").read_text().splitlines()]
        (status,) = [r[-1] for r in rows if len(r) == 4 and r[0] == "Class2D/job001/"]
        err = (job / "run.err").read_text().splitlines()
        assert err[0] == note and note in (job / "run.out").read_text().splitlines()
        if ending == "cancel":  # the job's EXIT trap says it: no watcher will
            assert status == FAILED and (job / "RELION_JOB_EXIT_FAILURE").exists(), out
            assert f"relion-qsub: Slurm is ending job {job_id} from outside" in err[-1], err
        else:  # RELION_PROC_FINISHED_SUCCESS (src/pipeline_jobs.h, 3.1); nothing but the note was added
            assert status == SUCCEEDED and not (job / "RELION_JOB_EXIT_FAILURE").exists(), out
            assert [x for x in err if x.startswith("relion-")] == [note]
    finally:
        if pipe.poll() is None:
            pipe.kill()
        cancel(job_id)
