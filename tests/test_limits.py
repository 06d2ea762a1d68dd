"""Association and QOS limits (issue 20): a limit the job's own request exceeds never lets it start; a group limit
that only other jobs hold makes it wait. The controller's text is what ``scontrol show assoc_mgr`` printed on the
testbed (Slurm 22.05, AccountingStorageEnforce=associations,limits) for GrpTRES=cpu=16, MaxTRESPerJob=node=1 and
MaxWall=30 on the association limited/root, with one 8-CPU job running."""

from __future__ import annotations

from pathlib import Path

from relion_qsub import proc, profile
from relion_qsub.doctor import job as doctor_job
from relion_qsub.report import main as report_main
from relion_qsub.report import verdict
from relion_qsub.report.figures import Usage
from relion_qsub.report.jobs import JobDir
from relion_qsub.slurm import client

ASSOC_MGR = """Current Association Manager state

Association Records

ClusterName=relionqsub Account=limited UserName= Partition= Priority=0 ID=4
    SharesRaw/Norm/Level/Factor=1/18446744073709551616.00/1/0.00
    UsageRaw/Norm/Efctv=0.00/1.00/0.00
    ParentAccount=root(1) Lft=2 DefAssoc=No
    GrpJobs=N(1) GrpJobsAccrue=N(3)
    GrpSubmitJobs=N(4) GrpWall=N(0.00)
    GrpTRES=cpu=N(8),mem=N(8000),energy=N(0),node=N(1),billing=N(8),fs/disk=N(0),vmem=N(0),pages=N(0),gres/gpu=N(0)
    MaxJobs= MaxJobsAccrue= MaxSubmitJobs= MaxWallPJ=
    MaxTRESPJ=
    MaxTRESPN=
ClusterName=relionqsub Account=limited UserName=root(0) Partition= Priority=0 ID=6
    ParentAccount= Lft=3 DefAssoc=No
    GrpTRES=cpu=16(8),mem=N(8000),energy=N(0),node=N(1),billing=N(8),fs/disk=N(0),vmem=N(0),pages=N(0),gres/gpu=N(0)
    MaxJobs= MaxJobsAccrue= MaxSubmitJobs= MaxWallPJ=30
    MaxTRESPJ=node=1
    MaxTRESPN=

QOS Records

QOS=normal(1)
    UsageRaw=0.000000
    GrpTRES=cpu=N(8),mem=N(8000),energy=N(0),node=N(1),billing=N(8),fs/disk=N(0),vmem=N(0),pages=N(0),gres/gpu=N(0)
    MaxWallPJ=
    MaxTRESPJ=cpu=64
    Account Limits
      limited
        MaxTRESPA=cpu=4(8)
    User Limits
      0
        MaxTRESPU=cpu=4(8)
"""
ROOT_ACCOUNT = """ClusterName=relionqsub Account=root UserName= Partition= Priority=0 ID=1
    ParentAccount= Lft=1 DefAssoc=No
    GrpTRES=cpu=N(8),mem=N(8000)
"""


def view(reason: str, tres: str) -> client.JobView:
    return client.JobView("7", "PENDING", reason, user="root", account="limited", qos="normal", tres=tres)


class Controller:
    """scontrol show assoc_mgr as the testbed's controller answers it, one account level per call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], timeout: float | None = None) -> proc.Result:
        self.calls.append(argv)
        text = ASSOC_MGR if "accounts=limited" in argv else ROOT_ACCOUNT
        return proc.Result(tuple(argv), 0, text, "")


def test_assoc_mgr_is_read_into_limits_with_their_use() -> None:
    found = {x.where: x for x in client.parse_assoc_mgr(ASSOC_MGR)}
    assert set(found) == {"account limited", "association limited/root", "QOS normal"}
    mine = found["association limited/root"]
    assert mine.group == {"cpu": (16, 8.0)} and mine.per_job == {"node": 1} and mine.wall_minutes == 30
    assert found["account limited"].parent == "root" and found["account limited"].group == {}
    assert found["QOS normal"].per_job == {"cpu": 64}  # not the QOS's per-account and per-user sections


def test_the_accounts_above_the_job_are_asked_too_and_the_walk_ends_at_the_top() -> None:
    runner = Controller()
    limits = client.limits_of(view("AssocGrpCpuLimit", "cpu=32,mem=32000M,node=1"), runner) or []
    assert [x.where for x in limits] == ["account limited", "association limited/root", "QOS normal", "account root"]
    assert runner.calls[0][:3] == ["scontrol", "show", "assoc_mgr"] and "qos=normal" in runner.calls[0]
    assert len(runner.calls) == 2


def test_a_request_over_a_group_limit_never_starts_and_a_busy_one_waits() -> None:
    limits = client.parse_assoc_mgr(ASSOC_MGR)
    over = client.over_group_limit(view("AssocGrpCpuLimit", "cpu=32,mem=32000M,node=1,billing=32"), limits)
    assert over is not None and over[1:] == ("cpu", 16, 32) and over[0].where == "association limited/root"
    assert client.over_group_limit(view("AssocGrpCpuLimit", "cpu=16,mem=16000M,node=1"), limits) is None
    # a QOS reason is judged by the QOS's limits only (it has no GrpTRES here)
    assert client.over_group_limit(view("QOSGrpCpuLimit", "cpu=32"), limits) is None


def test_doctor_says_never_with_the_limit_or_waiting() -> None:
    never = view("AssocGrpCpuLimit", "cpu=32,mem=32000M,node=1,billing=32")
    fix = doctor_job.limit_fix(never, Controller())
    assert fix.startswith("the job alone asks cpu=32, more than association limited/root allows all its running jobs")
    assert "ask for at most 16 CPUs (MPI procs x threads), or ask your admins" in fix
    (level, what, said), *_ = doctor_job.judge("j/", "running", never, limit_fix=fix)
    assert (level, what) == ("error", "Slurm job 7 can never start: PENDING (AssocGrpCpuLimit)") and fix in said
    busy = view("AssocGrpCpuLimit", "cpu=16,mem=16000M,node=1")
    assert doctor_job.limit_fix(busy, Controller()) == ""
    (level, what, _), *_ = doctor_job.judge("j/", "running", busy)
    assert level == "ok" and what.startswith("waiting: Slurm job 7 PENDING (reason AssocGrpCpuLimit): other jobs")


def test_a_per_job_limit_never_starts_and_its_value_is_named() -> None:
    for reason, named in (
        ("AssocMaxNodePerJobLimit", "(association limited/root: MaxTRESPerJob node=1)"),
        ("AssocMaxWallDurationPerJobLimit", "(association limited/root: MaxWall 30 minutes)"),
        ("QOSMaxCpuPerJobLimit", "(QOS normal: MaxTRESPerJob cpu=64)"),
    ):
        job = view(reason, "cpu=65,node=2")
        fix = doctor_job.limit_fix(job, Controller())
        assert named in fix and fix.endswith("or ask your admins to raise the limit"), fix
        assert doctor_job.judge("j/", "running", job, limit_fix=fix)[0][0] == "error"
        # without the controller's answer it is still never-starting, by its reason alone
        assert doctor_job.judge("j/", "running", job)[0][0] == "error"


def test_no_limit_query_for_other_reasons_or_without_an_account() -> None:
    runner = Controller()
    assert doctor_job.limit_fix(view("Resources", "cpu=1"), runner) == ""
    # no account (no accounting): nothing to ask, and nothing known
    assert doctor_job.limit_fix(client.JobView("7", "PENDING", "AssocGrpCpuLimit", tres="cpu=32"), runner) is None
    assert runner.calls == []


class PendingController(Controller):
    """The controller of a job pending on AssocGrpCpuLimit that asks 32 CPUs (scontrol show job), plus assoc_mgr."""

    def __call__(self, argv: list[str], timeout: float | None = None) -> proc.Result:
        if argv[:3] == ["scontrol", "show", "job"]:
            self.calls.append(argv)
            line = (
                "JobId=7 JobName=run_submit.slurm UserId=root(0) Account=limited QOS=normal JobState=PENDING "
                "Reason=AssocGrpCpuLimit Partition=norm TRES=cpu=32,mem=32000M,node=1,billing=32\n"
            )
            return proc.Result(tuple(argv), 0, line, "")
        return super().__call__(argv, timeout)


def test_report_says_a_pending_job_over_its_limit_never_starts(tmp_path: Path) -> None:
    job = JobDir(tmp_path, "Class2D/job001", "Class2D", "running")
    usage = Usage(job, job_id="7", slurm="PENDING", wait=60.0)
    runner = PendingController()
    assert report_main.never_starting(usage, runner, 30) == 3  # scontrol show job, then two account levels
    assert usage.never.startswith("PENDING (AssocGrpCpuLimit): the job alone asks cpu=32")
    said = verdict.judge(profile.load("testbed"), usage)
    assert said.level == verdict.ERROR and said.text.startswith("can never start: PENDING (AssocGrpCpuLimit)")
    assert said.text.endswith("relion-qsub doctor --job Class2D/job001 --fix marks it failed and cancels it")
    running = Usage(job, job_id="8", slurm="RUNNING")
    assert report_main.never_starting(running, runner, 30) == 0 and running.never == ""


def test_a_group_limit_whose_values_cannot_be_read_is_not_called_busy() -> None:
    def refused(argv: list[str], timeout: float | None = None) -> proc.Result:
        return proc.Result(tuple(argv), 1, "", "scontrol: error: Unable to contact slurm controller (connect failure)")

    job = view("AssocGrpCpuLimit", "cpu=32")
    assert doctor_job.limit_fix(job, refused) is None
    (level, what, fix), *_ = doctor_job.judge("j/", "running", job, limit_fix=None)
    assert level == "warning" and what.endswith("a group limit whose values could not be read from slurmctld")
    assert "sacctmgr show assoc user=$USER" in fix
    # a per-job limit is never-starting by its reason alone, named or not
    assert doctor_job.limit_fix(view("AssocMaxCpuPerJobLimit", "cpu=32"), refused) == (
        "ask for fewer CPUs (MPI procs x threads) than your association allows per job, or ask your admins to raise "
        "the limit"
    )
