"""`relion-qsub report` without a cluster: sacct output recorded on the testbed (tests/data/report/), fed through the
proc seam; verdicts against the site profiles' limits; the table's width and colour rules."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from relion_qsub import proc, profile
from relion_qsub.errors import CommandError, InputError, UsageError
from relion_qsub.relion.record import Record
from relion_qsub.report import figures as per_job
from relion_qsub.report import jobs, main, render, sacct, summary, verdict
from relion_qsub.report.units import GIB, clock, gb, short
from relion_qsub.slurm import client
from tests.reportdata import make_project, recorded

TESTBED = profile.load("testbed")
BIOWULF = profile.load("biowulf")
ANSI = re.compile(r"\033\[[0-9;]*m")
SECONDS = re.compile(r"\(\d+\.\d+ s\)")


def records() -> dict[str, sacct.Job]:
    return sacct.parse("\n".join(line for lines in recorded().values() for line in lines))


def jobdir(name: str = "Class2D/job001", relion: str = "failure", **requested: object) -> jobs.JobDir:
    logged = datetime(2026, 12, 1, 22, 37, 44).astimezone()
    job = jobs.JobDir(
        Path("/p") / name, name, name.split("/")[0], relion, [Record(time=logged.isoformat(), job_id="111")]
    )
    job.requested = jobs.Requested(**requested)  # type: ignore[arg-type]
    return job


def measured(job_id: str, **requested: object) -> per_job.Usage:
    job = jobdir(relion="success" if job_id == "114" else "failure", **requested)
    job.submissions = [Record(time=job.submissions[0].time, job_id=job_id)]
    return per_job.measure(job, records()[job_id], datetime(2026, 12, 1, 23, 0))


# ---- sacct: argv and parsing -----------------------------------------------------------------------------------


def test_one_sacct_argv_for_every_job() -> None:
    argv = sacct.argv(["11", "12", "13"])
    assert argv[0] == "sacct" and "--parsable2" in argv and "--noconvert" in argv and "--noheader" in argv
    assert "--jobs=11,12,13" in argv
    assert argv[-1] == "--format=" + ",".join(sacct.FIELDS) and sacct.FIELDS[-1] == "Comment"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:00.199", 0.199), ("12:34", 754.0), ("01:02:03", 3723.0), ("1-02:03:04", 93784.0), ("", None), ("x", None)],
)
def test_durations_as_sacct_prints_them(text: str, seconds: float | None) -> None:
    assert client.seconds(text) == pytest.approx(seconds) if seconds is not None else client.seconds(text) is None


def test_sizes_and_tres() -> None:
    assert client.size_bytes("507904") == 507904
    assert client.size_bytes("4000M") == 4000 * 1024**2
    assert client.size_bytes("1.5G") == int(1.5 * GIB)
    assert client.size_bytes("100", "M") == 100 * 1024**2
    assert client.size_bytes("lots") is None
    assert client.tres("billing=2,cpu=2,gres/gpu=1,mem=500M,node=1") == {
        "billing": "2",
        "cpu": "2",
        "gres/gpu": "1",
        "mem": "500M",
        "node": "1",
    }


def test_recorded_output_parses_into_jobs_and_steps() -> None:
    got = records()
    assert sorted(got) == ["111", "112", "113", "114"]
    oom = got["111"]
    assert oom.line.state == "FAILED" and [s.step for s in oom.steps] == ["batch", "0"]
    assert oom.steps[1].state == "OUT_OF_MEMORY" and oom.steps[1].exit_code == "0:125"
    assert got["113"].line.state == "TIMEOUT" and got["113"].line.limit == 60
    ok = got["114"].line
    assert ok.alloc["gres/gpu"] == "1" and ok.cpus == 2 and ok.partition == "gpu"
    assert ok.total_cpu == pytest.approx(1.152) and ok.end is not None


def test_comment_with_a_bar_keeps_the_other_fields() -> None:
    line = recorded()["114"][0] + "mine | [relion-qsub:abc]"
    parsed = sacct.parse_line(line)
    assert parsed is not None and parsed.partition == "gpu" and parsed.comment == "mine | [relion-qsub:abc]"


def test_unknown_and_short_lines_are_skipped() -> None:
    assert sacct.parse("garbage\n12+0|COMPLETED" + "|" * 18 + "\n") == {}
    assert sacct.not_recorded(["111", "999"], records()) == ["999"]


# ---- usage: the figures -------------------------------------------------------------------------------------------


def test_oom_of_an_srun_step_is_out_of_memory_although_the_job_says_failed() -> None:
    figures = measured("111")
    assert figures.slurm == "FAILED" and figures.failure == "OUT_OF_MEMORY"
    assert figures.mem_alloc == 100 * 1024**2 and figures.wait == 2.0 and figures.elapsed == 1
    assert figures.node_hours == pytest.approx(1 / 3600)


def test_rank_crash_names_the_step_and_exit_code() -> None:
    assert measured("112").failure == "rank crash (step 112.0: exit code 3)"


def test_timeout_and_completed_figures() -> None:
    assert measured("113").failure == "TIMEOUT"
    ok = measured("114")
    assert ok.failure == "" and ok.gpus == 1 and ok.ranks_per_node == 2
    assert ok.cpu_eff == pytest.approx(1.152 / (8 * 2))
    assert ok.mem_peak == 328650752  # both tasks' peaks on the one node (TRESUsageInTot), not one task's MaxRSS
    assert ok.mem_alloc == 500 * 1024**2


def test_a_record_submitted_after_the_log_line_is_another_job() -> None:
    job = jobdir()
    job.submissions = [Record(time=datetime(2026, 12, 1, 20, 0).astimezone().isoformat(), job_id="114")]
    figures = per_job.measure(job, records()["114"], datetime(2026, 12, 1, 23, 0))
    assert figures.slurm == "id reused" and figures.node_hours == 0
    assert "now names a later job" in verdict.judge(TESTBED, figures).text


def test_a_token_in_the_stored_comment_must_be_ours() -> None:
    line = sacct.parse_line(recorded()["114"][0] + "[relion-qsub:other]")
    assert line is not None
    logged = datetime(2026, 12, 1, 22, 37, 44).astimezone()
    assert not per_job.same_job(Record(time=logged.isoformat(), job_id="114", token="relion-qsub:mine"), line)
    assert per_job.same_job(Record(time=logged.isoformat(), job_id="114", token="relion-qsub:other"), line)


NODE_FAIL = """\
322|NODE_FAIL|0:0|2026-12-01T23:00:56|2026-12-01T23:00:56|2026-12-01T23:00:57|1|5|2|32||00:00.007|||billing=2,cpu=2,mem=200M,node=2|billing=32,cpu=32,gres/gpu=8,mem=3200M,node=2|cn[1-2]|gpu|
322.batch|CANCELLED|0:15|2026-12-01T23:00:56|2026-12-01T23:00:56|2026-12-01T23:00:58|2||1|16|1|00:00.003|3952640|cpu=00:00:00,energy=0,fs/disk=0,mem=3952640,pages=0,vmem=3960832||cpu=16,gres/gpu=4,mem=1600M,node=1|cn1||
322.0|CANCELLED|0:15|2026-12-01T23:00:57|2026-12-01T23:00:57|2026-12-01T23:00:59|2||2|32|2|00:00.004|0|cpu=00:00:00,energy=0,fs/disk=0,mem=0,pages=0,vmem=0||cpu=32,mem=3200M,node=2|cn[1-2]||
"""  # recorded on the testbed: a job whose node's slurmd was killed (a fault-injection test)


def test_node_failure_is_not_a_rank_crash() -> None:
    job = jobdir()
    job.submissions = [Record(time=datetime(2026, 12, 1, 23, 0, 57).astimezone().isoformat(), job_id="322")]
    figures = per_job.measure(job, sacct.parse(NODE_FAIL)["322"], datetime(2026, 12, 1, 23, 5))
    assert figures.failure == "NODE_FAIL" and figures.gpus == 8 and figures.nodes == 2
    assert verdict.judge(TESTBED, figures).text == (
        "NODE_FAIL: run it again, continuing from its last iteration if it has one"
    )


def test_an_abort_is_shown_as_an_abort_not_a_failure() -> None:
    """RELION_JOB_EXIT_ABORTED (the GUI's Abort): Slurm says FAILED (exit code 2, exit(RELION_EXIT_ABORTED)) or
    CANCELLED, but the user asked for it: no failure reason, no failed node hours, no sizing advice."""
    job = jobdir(relion="aborted")
    job.submissions = [Record(time=job.submissions[0].time, job_id="112")]
    figures = per_job.measure(job, records()["112"], datetime(2026, 12, 1, 23, 0))
    assert figures.failure == "" and not figures.failed
    assert verdict.judge(TESTBED, figures) == verdict.Verdict(
        verdict.INFO, "aborted from RELION; continue it from its last iteration when it should go on"
    )
    assert summary.summarise([(figures, verdict.judge(TESTBED, figures))]).failed_hours == 0


def test_not_submitted_and_not_recorded() -> None:
    job = jobdir()
    job.submissions = [Record(submitted=False, error="line 14: unrecognized option '--frobnicate'")]
    figures = per_job.measure(job, None, datetime.now())
    assert figures.slurm == "not submitted" and figures.failure.startswith("not submitted: line 14")
    assert per_job.measure(jobdir(), None, datetime.now()).slurm == "no record"
    assert per_job.measure(jobdir(), None, datetime.now(), asked=False).slurm == "not asked"


# ---- verdicts -------------------------------------------------------------------------------------------------


def test_verdicts_of_the_recorded_endings() -> None:
    oom = verdict.judge(TESTBED, measured("111"))
    assert oom == verdict.Verdict(
        "error", "OUT_OF_MEMORY at 0.10 GB: ask 1.0 GB (Memory Per Thread 1g) or fewer threads"
    )
    assert verdict.judge(TESTBED, measured("113")).text == (
        "TIMEOUT at 0:01:00: ask 0:02:00 (Walltime) and continue from the last iteration"
    )
    running = measured("113")
    running.job.relion = "running"
    assert verdict.judge(TESTBED, running).text.endswith(
        "; RELION still shows it running (relion-qsub doctor --job Class2D/job001 --fix)"
    )
    crash = verdict.judge(TESTBED, measured("112")).text
    assert crash.startswith("rank crash (step 112.0: exit code 3) on cn[5-6]: see run.err")
    ok = verdict.judge(TESTBED, measured("114", gres="lscratch:5,gpu:p100:1", gpu_flag=False))
    assert ok.level == "waste" and "1 GPU allocated but RELION ran without --gpu" in ok.text


def big(**kw: object) -> per_job.Usage:
    """A Biowulf p100 job of 4 nodes x 16 CPUs, 64 GB per node, 8 h asked."""
    figures = per_job.Usage(jobdir(relion="success"), job_id="1", slurm="COMPLETED", partition="gpu", gpu_type="p100")
    figures.nodes, figures.cpus, figures.limit, figures.elapsed = 4, 64, 8 * 3600, 8 * 3600 - 60
    figures.mem_alloc, figures.mem_peak = 64 * GIB, 30 * GIB
    for key, value in kw.items():
        setattr(figures, key, value)
    return figures


def test_the_issue_examples() -> None:
    assert verdict.judge(BIOWULF, big(elapsed=72 * 60)).text == (
        "asked 8:00:00, used 1:12:00: 2:00:00 would have started sooner"
    )
    assert verdict.judge(BIOWULF, big(mem_peak=61 * GIB)).text == (
        "peak 61 GB of 64 GB per node: close to the limit, next time Memory Per Thread 5g"
    )
    assert verdict.judge(BIOWULF, big(failure="OUT_OF_MEMORY")).text == (
        "OUT_OF_MEMORY at 64 GB: ask 96 GB (Memory Per Thread 6g) or fewer threads"
    )
    assert verdict.judge(BIOWULF, big(gpus=16, ranks_per_node=5)).text == (
        "4 GPUs and 5 MPI ranks per node: homogeneous+1 as recommended"
    )


def test_out_of_memory_beyond_the_node_type_says_whole_node_or_fewer_ranks() -> None:
    assert verdict.judge(BIOWULF, big(failure="OUT_OF_MEMORY", mem_alloc=200 * GIB)).text == (
        "OUT_OF_MEMORY at 200 GB: ask the whole p100 node (Memory Per Thread 0 with --exclusive) or fewer threads"
    )
    assert verdict.judge(BIOWULF, big(failure="OUT_OF_MEMORY", mem_alloc=240 * GIB)).text == (
        "OUT_OF_MEMORY at 240 GB, all of a p100 node: fewer MPI ranks per node or fewer threads"
    )


def test_gpu_overload_scratch_and_fits() -> None:
    assert verdict.judge(BIOWULF, big(gpus=16, ranks_per_node=8)).level == "warning"
    full = verdict.judge(BIOWULF, big(scratch_req_gb=400, scratch_used_kib=390 * 1024**2))
    assert full.text == "scratch 390 GB of lscratch:400 used: nearly full, ask lscratch:600 (a p100 node has 650)"
    idle = verdict.judge(BIOWULF, big(scratch_req_gb=650, scratch_used_kib=10 * 1024**2))
    assert idle.text == "scratch 10 GB of lscratch:650 used: lscratch:15 would do"
    assert verdict.judge(BIOWULF, big()).text == "used 7:59:00 of 8:00:00: fits"
    assert verdict.judge(BIOWULF, big(mem_peak=2 * GIB)).text == (
        "peak 2.0 GB of 64 GB per node: Memory Per Thread 200m would do"
    )
    assert verdict.judge(BIOWULF, big(cpu_eff=0.12)).text == (
        "CPU efficiency 12%: 56 of 64 CPUs idle; ask fewer threads or MPI procs"
    )
    short_job = big(mem_peak=2 * GIB, cpu_eff=0.12, elapsed=200, limit=300)
    assert verdict.judge(BIOWULF, short_job).text == "used 0:03:20 of 0:05:00: fits"  # too short to judge


def test_walltime_rounding() -> None:
    assert clock(verdict.walltime_hint(12)) == "0:05:00"
    assert clock(verdict.walltime_hint(30 * 60)) == "0:45:00"
    assert clock(verdict.walltime_hint(72 * 60)) == "2:00:00"
    assert clock(3 * 86400 + 61) == "3-00:01:01"


def test_units() -> None:
    assert [short(s) for s in (None, 12, 420, 3600, 4320, 93784)] == ["-", "12s", "7m", "1h", "1h12m", "1d2h"]
    assert [gb(n) for n in (None, 0.05 * GIB, 6.1 * GIB, 61 * GIB)] == ["-", "0.05", "6.1", "61"]


# ---- the job dirs ---------------------------------------------------------------------------------------------


def test_log_lines_since_and_damage() -> None:
    text = (
        '{"time": "2026-11-30T10:00:00+0000", "job_id": "1", "token": "relion-qsub:a"}\n'
        "not json\n"
        '{"time": "2026-12-01T10:00:00+0000", "submitted": false, "error": "bad"}\n'
    )
    subs = jobs.read_log(text)
    assert [(s.job_id, s.failure) for s in subs] == [("1", ""), (None, "bad")]
    assert len(jobs.read_log(text, datetime(2026, 12, 1))) == 1


def test_scratch_monitor_log_peak() -> None:
    log = "# time host used_kib free_kib dir\n"
    log += "2026-12-01T10:00:00 cn1 100 900 /l/1\n2026-12-01T10:00:01 cn1 250 750 /l/1\n"
    assert jobs.scratch_peak_kib(log) == 250 and jobs.scratch_peak_kib("# header only\n") is None


def test_requested_from_the_normalised_script() -> None:
    script = "#!/bin/bash\n#SBATCH -c 4 --gres=lscratch:400,gpu:p100:4 --exclusive\n#SBATCH --mem-per-cpu=0\n"
    req = jobs.read_requested(script + "srun `which relion_refine_mpi` --gpu '' --j 4\n")
    assert (req.threads, req.gres, req.exclusive, req.mem_per_cpu, req.gpu_flag) == (
        4,
        "lscratch:400,gpu:p100:4",
        True,
        "0",
        True,
    )
    assert jobs.read_requested(script + "echo hi\n").gpu_flag is None


def test_resolve_project_and_jobdirs(tmp_path: Path) -> None:
    make_project(tmp_path, 4)
    project, dirs = jobs.resolve([str(tmp_path)], Path("/"))
    assert project == tmp_path and [d.name for d in dirs] == ["job002", "job003", "job001", "job004"]
    project, dirs = jobs.resolve(["Class2D/job002"], tmp_path)
    assert project == tmp_path and dirs == [tmp_path / "Class2D" / "job002"]
    with pytest.raises(InputError, match="no such directory"):
        jobs.resolve(["nope"], tmp_path)
    with pytest.raises(InputError, match="not a RELION job dir"):
        jobs.resolve([str(tmp_path), "Class2D/job002"], tmp_path)


# ---- the whole command through the proc seam ----------------------------------------------------------------------


class FakeSacct:
    """Stands in for proc.run: answers sacct with recorded output and counts the calls."""

    def __init__(self, stdout: str = "", returncode: int = 0, stderr: str = "", missing: bool = False) -> None:
        self.stdout, self.returncode, self.stderr, self.missing = stdout, returncode, stderr, missing
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], **_: object) -> proc.Result:
        self.calls.append(list(argv))
        if self.missing:
            raise CommandError(f"{argv[0]}: command not found")
        return proc.Result(tuple(argv), self.returncode, self.stdout, self.stderr)


def run_report(
    project: Path, fake: FakeSacct, *extra: str, tty: bool = False, env: dict[str, str] | None = None
) -> tuple[str, int]:
    args = main._parser().parse_args([str(project), "--site", "testbed", *extra])
    return main.report(args, env or {}, tty, fake)


def test_one_sacct_call_for_the_whole_project(tmp_path: Path) -> None:
    fake = FakeSacct(make_project(tmp_path, 40))
    out, code = run_report(tmp_path, fake)
    assert code == 0 and len(fake.calls) == 1
    ids = fake.calls[0][4].removeprefix("--jobs=").split(",")
    assert sorted(ids) == [str(5000 + i) for i in range(40)]
    assert "40 jobs in" in out and "1 sacct call for 40 Slurm job(s), 40 recorded" in out
    assert out.count("OUT_OF_MEMORY at 0.10 GB") == 10 and out.count("rank crash (step") == 10
    assert "failed: " in out and "largest waste: " in out


def test_table_fits_100_columns_and_colour_only_on_a_tty(tmp_path: Path) -> None:
    fake = FakeSacct(make_project(tmp_path, 8))
    plain, _ = run_report(tmp_path, fake)
    assert "\033[" not in plain
    assert max(len(line) for line in plain.splitlines()) <= 100, plain
    coloured, _ = run_report(tmp_path, fake, tty=True)
    assert "\033[31m" in coloured and SECONDS.sub("", ANSI.sub("", coloured)) == SECONDS.sub("", plain)
    assert "\033[" not in run_report(tmp_path, fake, tty=True, env={"NO_COLOR": "1"})[0]
    doc, _ = run_report(tmp_path, fake, "--json", tty=True)
    assert "\033[" not in doc


def test_json_document(tmp_path: Path) -> None:
    fake = FakeSacct(make_project(tmp_path, 4))
    doc = json.loads(run_report(tmp_path, fake, "--json")[0])
    by_job = {j["job_id"]: j for j in doc["jobs"]}
    assert by_job["5000"]["failure"] == "OUT_OF_MEMORY" and by_job["5002"]["failure"] == "TIMEOUT"
    assert by_job["5003"]["gpus"] == 1 and by_job["5003"]["verdict"]["level"] == "waste"
    assert by_job["5000"]["scratch_gb"] == 5 and by_job["5001"]["scratch_used_gb"] == pytest.approx(1 / 1024, abs=1e-3)
    assert doc["summary"]["jobs"] == 4 and doc["summary"]["failed"] == 3
    assert set(doc["summary"]["node_hours_by_type"]) == {"Class2D", "Refine3D"}
    assert doc["sacct"]["calls"] == 1 and doc["sacct"]["records"] == 4


def test_since_leaves_older_submissions_out(tmp_path: Path) -> None:
    fake = FakeSacct(make_project(tmp_path, 10))
    start = datetime.fromisoformat(recorded()["111"][0].split("|")[3]) + timedelta(minutes=5)
    doc = json.loads(run_report(tmp_path, fake, "--json", "--since", start.isoformat())[0])
    assert [j["job_id"] for j in doc["jobs"]] == [str(5000 + i) for i in range(5, 10) if i % 3] + [
        str(5000 + i) for i in range(5, 10) if not i % 3
    ]
    with pytest.raises(UsageError, match="--since 'yesterday'"):
        run_report(tmp_path, fake, "--since", "yesterday")


def test_without_sacct_the_relion_side_is_reported_and_the_exit_is_69(tmp_path: Path) -> None:
    make_project(tmp_path, 2)
    out, code = run_report(tmp_path, FakeSacct(missing=True))
    assert code == 69 and "sacct could not be asked about job 5000" in out
    assert "Slurm's figures are missing: sacct: command not found" in out
    out, code = run_report(
        tmp_path, FakeSacct(returncode=1, stderr="sacct: error: Slurm accounting storage is disabled")
    )
    assert code == 69 and "Slurm accounting storage is disabled" in out


def test_no_jobs_no_sacct_call(tmp_path: Path) -> None:
    fake = FakeSacct()
    out, code = run_report(tmp_path, fake)
    assert code == 0 and fake.calls == [] and "no job in it went through relion-qsub" in out


def test_summary_orders_the_waste() -> None:
    a, b, c = big(failure="TIMEOUT", node_hours=4.0), big(cpu_eff=0.5, node_hours=2.0), big(node_hours=1.0)
    b.job = jobdir("Refine3D/job002")
    total = summary.summarise([(u, verdict.judge(BIOWULF, u)) for u in (a, b, c)])
    assert total.by_type == {"Class2D": (2, 5.0), "Refine3D": (1, 2.0)}
    assert total.failed_hours == 4.0 and total.failed_by_reason == {"TIMEOUT": 4.0}
    assert [w[0] for w in total.waste] == ["Class2D/job001", "Refine3D/job002"]


def test_cli_lists_report() -> None:
    from relion_qsub import cli

    assert cli.SUBCOMMANDS["report"] == "relion_qsub.report.main"
    assert "report [PROJECT_DIR|JOBDIR]" in cli.help_text()


# ---- the job's data (issue 23): data size beside scratch asked and used; RELION's "scratch space full" ---------


def test_scratch_too_small_from_relions_own_warning(tmp_path: Path) -> None:
    job_dir = tmp_path / "Refine3D" / "job012"
    job_dir.mkdir(parents=True)
    (tmp_path / "Extract" / "job007").mkdir(parents=True)
    rows = "".join(f"    1 {i:06d}@Extract/job007/parts.mrcs \n" for i in range(1, 4001))
    (tmp_path / "Extract" / "job007" / "particles.star").write_text(
        "data_optics\nloop_\n_rlnOpticsGroup #1\n_rlnImageSize #2\n1 512\n\n"
        f"data_particles\nloop_\n_rlnOpticsGroup #1\n_rlnImageName #2\n{rows}\n"
    )
    (job_dir / "relion-qsub.jsonl").write_text('{"time": "2026-12-01T22:37:44+00:00", "job_id": "111"}\n')
    (job_dir / "run_submit.slurm").write_text(
        "#!/bin/bash\n#SBATCH -p gpu --gres=lscratch:12,gpu:p100:4 -n 5\n"
        "srun `which relion_refine_mpi` --o Refine3D/job012/run --auto_refine --i Extract/job007/particles.star "
        "--scratch_dir /lscratch/$SLURM_JOB_ID --gpu --pipeline_control Refine3D/job012/\n"
    )
    (job_dir / "RELION_JOB_EXIT_SUCCESS").touch()
    # Experiment::copyParticlesToScratch's warning, verbatim (src/exp_model.cpp, std::cerr: run.err)
    (job_dir / "run.err").write_text(
        " Warning: scratch space full on cn3. Remaining 1961 particles will be read from where they were.\n"
    )
    job = jobs.read_jobdir(job_dir, tmp_path)
    assert job is not None and job.scratch_full == ("cn3", 1961)
    assert job.data is not None and job.data.particles is not None and job.data.particles.count == 4000
    figures = per_job.Usage(job, job_id="111", slurm="COMPLETED", partition="gpu", gpu_type="p100")
    figures.scratch_req_gb, figures.scratch_used_kib = 12, 2 * 1024**2
    said = verdict.judge(TESTBED, figures)
    assert said.level == "warning"
    assert said.text.startswith(
        "scratch too small: on cn3 RELION read 1,961 of 4,000 particles from where they were "
        "(data 3.9 GB + --keep_free_scratch 10 GB > lscratch:12); ask lscratch:14"
    )
    row = render.job_dict(figures, said)
    assert row["data"] == {"star": "Extract/job007/particles.star", "particles": 4000, "box": 512, "gb": 3.906}
    assert row["scratch_full"] == {"host": "cn3", "particles": 1961}
    # Without RELION's warning, the data size stands beside the scratch asked and used, and what would do is what
    # RELION needs to copy it all (data + --keep_free_scratch), not 1.5 x the peak (which would copy nothing).
    (job_dir / "run.err").write_text("")
    job = jobs.read_jobdir(job_dir, tmp_path)
    assert job is not None and job.scratch_full is None
    figures.job, figures.scratch_req_gb, figures.scratch_used_kib = job, 40, 4 * 1024**2
    assert (
        "scratch 4.0 GB of lscratch:40 used (data 3.9 GB): lscratch:14 would do" in verdict.judge(TESTBED, figures).text
    )
