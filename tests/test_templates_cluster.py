"""Generated templates on the real testbed: every one, filled as RELION fills it, passes `relion-qsub check` and
`sbatch --test-only`; a few run real jobs (relion-qsub submit path, srun as the launcher); real relion_pipeliner
fills a representative handful and its job runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from relion_qsub import profile
from relion_qsub.checks.core import Context
from relion_qsub.checks.engine import normalise
from relion_qsub.script import parse
from relion_qsub.sitetools.templates import plan, write
from tests.relionfill import fill
from tests.slurmtools import job_env, run, wait_for_job
from tests.templatecases import cases, fill_case, write_project

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parent.parent
QSUB = str(ROOT / "bin" / "relion-qsub")
SITE = profile.load("testbed")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The testbed templates, rendered where they will be used (the monitor path inside them is real)."""
    out = tmp_path_factory.mktemp("templates")
    write(plan(SITE, str(out)), out)
    return out


def test_every_filled_template_passes_check_and_sbatch_test_only(tmp_path: Path, tree: Path) -> None:
    rendered = plan(SITE, str(tree))
    failures = []
    all_cases = cases(SITE, rendered)
    for case in all_cases:
        result = normalise(parse(fill_case(case, rendered), case.name), Context(SITE))
        if not result.ok:
            failures.append(f"{case.name}: check: {[str(e) for e in result.errors]}")
            continue
        path = write_project(case, result.script.render(), tmp_path).with_suffix(".slurm")
        path.write_text(result.script.render())
        proc = run(["sbatch", "--test-only", str(path)], env=job_env(), check=False, timeout=30)
        if proc.returncode != 0 or "to start at" not in proc.stderr:
            failures.append(f"{case.name}: sbatch --test-only: {proc.stderr.strip()}")
    assert not failures, "\n".join(failures)
    assert len(all_cases) >= 40


def _submit(project: Path, script: Path, **env: str) -> str:
    environ = job_env(RELION_QSUB_SITE="testbed", **env)
    proc = subprocess.run(
        [QSUB, str(script.relative_to(project))], cwd=project, env=environ, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()[-1]


def _commands(jobdir: str, seconds: int) -> list[str]:
    # The first gets the launcher line (a relion_ MPI program in RELION's backticks); the others are written bare.
    return [
        f"echo ran `which relion_refine_mpi` on $(hostname) --pipeline_control {jobdir}",
        f"sleep {seconds}",
        f"touch {jobdir}RELION_JOB_EXIT_SUCCESS",
    ]


@pytest.mark.parametrize(
    ("template", "mpi", "threads", "queue", "expect"),
    [
        ("common.sh", 2, 1, "norm", {"Partition": "norm", "NumTasks": "2"}),
        ("Class2D_gpu/01_tiny.sh", 5, 2, "", {"Partition": "gpu", "NumTasks": "5", "OverSubscribe": "NO"}),
        ("x2695_exclusive.sh", 2, 4, "", {"Partition": "multinode", "OverSubscribe": "NO", "MinMemoryCPU": "4000M"}),
    ],
)
def test_generated_template_runs_a_job(
    tmp_path: Path, tree: Path, template: str, mpi: int, threads: int, queue: str, expect: dict[str, str]
) -> None:
    jobdir = "Class2D/job001/"
    extras = {f.number: f.default for f in SITE.profile.fields}
    script = fill(
        (tree / template).read_text(),
        jobdir=jobdir,
        commands=_commands(jobdir, 3),
        mpi=mpi,
        threads=threads,
        queue=queue,
        extras=extras,
    )
    (tmp_path / jobdir).mkdir(parents=True)
    path = tmp_path / jobdir / "run_submit.script"
    path.write_text(script)
    job_id = _submit(tmp_path, path, RELION_STD_LAUNCHER="srun")
    info = wait_for_job(job_id, timeout=60)
    assert info["JobState"] == "COMPLETED", (info, (tmp_path / jobdir / "run.err").read_text())
    assert {k: info.get(k) for k in expect} == expect
    out = (tmp_path / jobdir / "run.out").read_text()
    assert out.count("ran /usr/bin/relion_refine_mpi") == mpi  # srun started every rank
    assert (tmp_path / jobdir / "RELION_JOB_EXIT_SUCCESS").exists()
    log = (tmp_path / jobdir / "scratch_usage.log").read_text().splitlines()
    assert log[0].startswith("# time host") and len(log) >= 3, log  # sampled every second for 3 s
    assert all(line.endswith(f"/lscratch/{job_id}") for line in log[1:])
    # The monitor ended with the job script (it once outlived every job: the review found 64 still logging).
    deadline = time.monotonic() + 5
    while _monitors(tree) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _monitors(tree), "lscratch_mon.sh outlived the job"


def _monitors(tree: Path) -> list[psutil.Process]:
    """lscratch_mon.sh processes of this tree (the testbed's nodes run on this host, so they are visible here)."""
    script = str(tree / "lscratch_mon.sh")
    return [p for p in psutil.process_iter(["cmdline"]) if script in (p.info["cmdline"] or [])]


RELION_FIELDS = {f"RELION_QSUB_EXTRA{f.number}": f.label for f in SITE.profile.fields} | {
    f"RELION_QSUB_EXTRA{f.number}_DEFAULT": f.default for f in SITE.profile.fields
}


@pytest.mark.relion
@pytest.mark.parametrize(
    ("job", "template", "mpi", "threads", "partition"),
    [
        ("Class2D", "common.sh", 1, 1, "norm"),
        ("InitialModel", "InitialModel/01_tiny.sh", 1, 8, "gpu"),
        ("Class2D", "x2695_exclusive.sh", 1, 4, "multinode"),
    ],
)
def test_relion_pipeliner_fills_and_the_job_runs(
    tmp_path: Path, tree: Path, job: str, template: str, mpi: int, threads: int, partition: str
) -> None:
    if shutil.which("relion_pipeliner") is None:
        pytest.fail("relion_pipeliner is not installed: run `make deps` (Debian package relion)")
    (tmp_path / "default_pipeline.star").write_text("data_pipeline_general\n\n_rlnPipeLineJobCounter 1\n")
    (tmp_path / "particles.star").write_text("")  # relion_refine starts in the job and fails at once
    env = job_env(RELION_QSUB_SITE="testbed", RELION_QSUB_EXTRA_COUNT=str(len(SITE.profile.fields)), **RELION_FIELDS)
    options = [
        "fn_img == particles.star",
        f"nr_mpi == {mpi}",
        f"nr_threads == {threads}",
        "do_queue == Yes",
        f"qsub == {QSUB}",
        f"qsubscript == {tree / template}",
        f"queuename == {SITE.profile.queue.name}",
    ] + [f"qsub_extra{f.number} == {f.default}" for f in SITE.profile.fields]
    kw = dict(cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90, check=True)
    subprocess.run(["relion_pipeliner", "--addJob", job, "--addJobOptions", ";".join(options)], **kw)  # type: ignore[call-overload]
    subprocess.run(["relion_pipeliner", "--RunJobs", f"{job}/job001/", "--sec_wait_after", "0"], **kw)  # type: ignore[call-overload]
    jobdir = tmp_path / job / "job001"
    entry = json.loads((jobdir / "relion-qsub.jsonl").read_text().splitlines()[-1])
    assert entry["submitted"] is True, entry
    info = wait_for_job(entry["job_id"], timeout=60)
    assert info["Partition"] == partition
    # relion_refine ran inside the job (the guard of a size template let it through) and reported its failure.
    assert (jobdir / "RELION_JOB_EXIT_FAILURE").exists()
    assert "asks for" not in (jobdir / "run.err").read_text()
    assert os.path.getsize(jobdir / "run.out") > 0
