"""Fit rules against the real testbed (issue 14): what relion-qsub refuses before sbatch is what Slurm would have
refused ("Requested node configuration is not available", "Invalid feature specification") or left pending forever
(PartitionTimeLimit); relion-qsub refuses it in one line naming the GUI box, tells RELION, and never calls sbatch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.slurmtools import cancel, job_env, job_info, run, wait_until
from tests.test_fit import CONSTRAINTS, common

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parent.parent
QSUB = str(ROOT / "bin" / "relion-qsub")

CASES = [
    (
        {"gres": "lscratch:5000"},
        "Requested node configuration is not available",
        "--gres=lscratch:5000 from the 'Gres' box",
    ),
    (
        {"directives": "--constraint=x2680"},
        "Invalid feature specification",
        "--constraint=x2680 from the 'SBATCH Directives' box",
    ),
    (
        {"mem": "200g"},
        "Requested node configuration is not available",
        "--mem-per-cpu=200g from the 'Memory Per Thread' box",
    ),
    (
        {"mpi": 8, "threads": 8, "directives": "--nodes=1"},
        "Requested node configuration is not available",
        "8 tasks per node (from the 'Number of MPI procs' box) x 8 CPUs",
    ),
    (
        {"mpi": 3, "directives": "--nodes=3"},
        "Requested node configuration is not available",
        "--nodes=3 from the 'SBATCH Directives' box",
    ),
]


def _relion_job(tmp_path: Path, text: str) -> Path:
    job = tmp_path / "Class2D" / "job001"
    job.mkdir(parents=True)
    (job / "run_submit.script").write_text(text)
    return job


def _qsub(tmp_path: Path) -> tuple[int, str]:
    proc = run(
        [QSUB, "Class2D/job001/run_submit.script"],
        env=job_env(RELION_QSUB_SITE="testbed"),
        check=False,
        timeout=60,
    )
    return proc.returncode, proc.stderr


@pytest.mark.parametrize(("values", "slurm_says", "box"), CASES)
def test_refused_before_sbatch_what_slurm_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, values: dict[str, object], slurm_says: str, box: str
) -> None:
    text = common(**values)
    raw = tmp_path / "raw.sh"
    raw.write_text(text)
    proc = run(["sbatch", "--test-only", str(raw)], env=job_env(), check=False, timeout=30)
    assert proc.returncode != 0 and slurm_says in proc.stderr, proc.stderr  # Slurm itself refuses the job
    job = _relion_job(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    code, stderr = _qsub(tmp_path)
    assert code == 65, stderr
    (line,) = (job / "run.err").read_text().splitlines()
    assert line.startswith("relion-qsub: job not submitted: Class2D/job001/run_submit.script: ") and box in line
    assert (job / "RELION_JOB_EXIT_FAILURE").exists()
    entry = json.loads((job / "relion-qsub.jsonl").read_text().splitlines()[-1])
    assert entry["submitted"] is False and "sbatch_argv" not in entry  # sbatch never ran


def test_walltime_over_maxtime_pends_forever_in_slurm_and_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = common(time="11-00:00:00")
    raw = tmp_path / "raw.sh"
    raw.write_text(text.replace("${RELION_STD_LAUNCHER} `which relion_refine_mpi`", "echo"))
    out = run(["sbatch", "--parsable", f"--output={tmp_path}/o", str(raw)], env=job_env(), timeout=30).stdout
    job_id = out.strip().split(";")[0]
    try:
        # The controller may first show another reason (PartitionConfig was seen once); the time limit follows.
        wait_until("PartitionTimeLimit", lambda: job_info(job_id).get("Reason") == "PartitionTimeLimit", timeout=20)
        assert job_info(job_id)["JobState"] == "PENDING"
    finally:
        cancel(job_id)
    _relion_job(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    code, stderr = _qsub(tmp_path)
    assert (
        code == 65
        and "--time=11-00:00:00 from the 'Walltime' box is over the MaxTime of partition 'multinode'" in stderr
    )


def test_gpu_request_without_queue_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "#!/bin/bash\n#SBATCH --ntasks=1\n#SBATCH --gres=gpu:p100:1\nhostname\n"
    raw = tmp_path / "raw.sh"
    raw.write_text(text)
    proc = run(["sbatch", "--test-only", str(raw)], env=job_env(), check=False, timeout=30)
    assert proc.returncode != 0 and "Requested node configuration is not available" in proc.stderr
    _relion_job(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    code, stderr = _qsub(tmp_path)
    assert code == 65 and "the default partition 'norm', which has none: set the 'Queue name' box to gpu" in stderr


def test_a_job_that_fits_is_submitted_quietly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = common(mpi=2, threads=2, gres="lscratch:5", directives="--constraint=x2695").replace(
        "${RELION_STD_LAUNCHER} `which relion_refine_mpi`", "echo relion_refine_mpi"
    )
    job = _relion_job(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    proc = run([QSUB, "Class2D/job001/run_submit.script"], env=job_env(RELION_QSUB_SITE="testbed"), timeout=60)
    assert proc.stderr == "", proc.stderr
    job_id = proc.stdout.split()[-1]
    cancel(job_id)
    assert "RELION_QSUB_REPORT" not in (job / "run_submit.slurm").read_text()


@pytest.mark.relion
def test_relion_fills_a_sized_template_with_other_boxes_and_it_is_refused_before_sbatch(tmp_path: Path) -> None:
    """Real relion_pipeliner fills InitialModel/01_tiny.sh (1 MPI x 8 threads) with 'Number of threads' 4: before,
    the job waited in the queue and then stopped at once; now relion-qsub refuses it and tells RELION."""
    import shutil
    import subprocess

    from relion_qsub import profile
    from relion_qsub.sitetools.templates import plan, write

    if shutil.which("relion_pipeliner") is None:
        pytest.fail("relion_pipeliner is not installed: run `make deps` (Debian package relion)")
    site = profile.load("testbed")
    tree = tmp_path / "templates"
    write(plan(site, str(tree)), tree)
    project = tmp_path / "project"
    project.mkdir()
    (project / "default_pipeline.star").write_text("data_pipeline_general\n\n_rlnPipeLineJobCounter 1\n")
    (project / "particles.star").write_text("")
    fields = {f"RELION_QSUB_EXTRA{f.number}": f.label for f in site.profile.fields}
    env = job_env(RELION_QSUB_SITE="testbed", RELION_QSUB_EXTRA_COUNT=str(len(site.profile.fields)), **fields)
    options = [
        "fn_img == particles.star",
        "nr_mpi == 1",
        "nr_threads == 4",
        "do_queue == Yes",
        f"qsub == {QSUB}",
        f"qsubscript == {tree / 'InitialModel' / '01_tiny.sh'}",
        "queuename == gpu",
    ]
    kw = dict(cwd=project, env=env, capture_output=True, text=True, timeout=90, check=True)
    subprocess.run(["relion_pipeliner", "--addJob", "InitialModel", "--addJobOptions", ";".join(options)], **kw)  # type: ignore[call-overload]
    subprocess.run(["relion_pipeliner", "--RunJobs", "InitialModel/job001/", "--sec_wait_after", "0"], **kw)  # type: ignore[call-overload]
    job = project / "InitialModel" / "job001"
    entry = json.loads((job / "relion-qsub.jsonl").read_text().splitlines()[-1])
    assert entry["submitted"] is False and "sbatch_argv" not in entry, entry
    assert (job / "RELION_JOB_EXIT_FAILURE").exists()
    (line,) = (job / "run.err").read_text().splitlines()
    assert "this template is for 1 MPI procs x 8 threads but RELION's Running tab says 1 x 4" in line, line


@pytest.mark.parametrize(("expression", "sbatch"), CONSTRAINTS.items())
def test_sbatch_agrees_with_the_constraint_expressions(tmp_path: Path, expression: str, sbatch: str | None) -> None:
    """The facts unknown_feature relies on (tests/test_fit.py CONSTRAINTS), asked of the real sbatch."""
    raw = tmp_path / "raw.sh"
    raw.write_text(common(queue="gpu", gres="gpu:p100:1", directives=f"--constraint={expression}"))
    proc = run(["sbatch", "--test-only", str(raw)], env=job_env(), check=False, timeout=30)
    if sbatch is None:
        assert proc.returncode == 0 and "to start at" in proc.stderr, proc.stderr
    else:
        assert proc.returncode != 0 and sbatch in proc.stderr, proc.stderr
