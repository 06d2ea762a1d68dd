"""Issue 21 items 2-4: job.star is the source of what the user typed, and the allocation is judged against what
RELION will run (checks/allocation.py: threads_cpus, mpi_tasks, gpu_without_gres).

Each case is a RELION project as the GUI leaves it before it runs the Queue submit command: ``<jobdir>job.star``
(from the fixtures of tests/data/relion/: the 3.1.3 one written by the real relion_pipeliner, the 5.0.1 ones from
RelionJob::write), the template it names (``qsubscript``) and ``run_submit.script`` filled from it by
tests/relionfill.py (byte for byte RELION 3.1.3's, tests/test_relionfill.py). RELION_QSUB_TEMPLATE names another
template, the GUI's starting default: job.star must win. Each message's fix is applied to the template, the script
refilled, and the finding must be gone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from relion_qsub import profile
from relion_qsub.checks.allocation import _launcher_over, commands, gpu_use, tasks
from relion_qsub.checks.core import Change, Context
from relion_qsub.checks.engine import parse_cli_options
from relion_qsub.prepare import prepare
from relion_qsub.relion.gui import Boxes
from relion_qsub.script import parse
from tests.relionfill import fill
from tests.slurmtools import job_env, submit_and_wait

DATA = Path(__file__).resolve().parent / "data" / "relion"
TESTBED = profile.load("testbed")
HEAD = "#!/bin/bash\n"
OUT = "#SBATCH --error=XXXerrfileXXX\n#SBATCH --output=XXXoutfileXXX\n#SBATCH --time=1:00:00\n"
# The GUI's starting default (RELION_QSUB_TEMPLATE): a template that fills every line from a box. A script filled
# from another template must never be blamed on its boxes.
DEFAULT = HEAD + "#SBATCH --ntasks=XXXmpinodesXXX\n#SBATCH --cpus-per-task=XXXthreadsXXX\n#SBATCH -p XXXqueueXXX\n"


def job_star(fixture: str, **values: str) -> str:
    """A fixture job.star with some boxes' values changed (RelionJob::write's `variable value` rows)."""
    text = (DATA / fixture).read_text()
    for name, value in values.items():
        text, n = re.subn(rf"(?m)^\s*{name}\s+.*$", f"{name} {value}", text)
        assert n == 1, name
    return text


@dataclass
class Job:
    """A RELION job dir in a project, and what relion-qsub check says of its script."""

    project: Path
    jobdir: str  # Class2D/job001/
    template: str
    star: str
    commands: list[str]
    mpi: int = 1
    threads: int = 1
    queue: str = "norm"
    extras: dict[int, str] | None = None  # qsub_extraN values RELION filled in

    def write(self) -> Path:
        (self.project / "site.sh").write_text(self.template)
        (self.project / "default.sh").write_text(DEFAULT)
        job = self.project / self.jobdir
        job.mkdir(parents=True, exist_ok=True)
        (job / "job.star").write_text(self.star)
        script = job / "run_submit.script"
        text = fill(
            self.template,
            jobdir=self.jobdir,
            commands=self.commands,
            mpi=self.mpi,
            threads=self.threads,
            queue=self.queue,
            extras=self.extras,
        )
        script.write_text(text)
        return script

    def findings(self, monkeypatch: pytest.MonkeyPatch, rule: str) -> list[Change]:
        self.write()
        monkeypatch.chdir(self.project)
        monkeypatch.setenv("RELION_QSUB_TEMPLATE", str(self.project / "default.sh"))
        prepared = prepare(Path(self.jobdir) / "run_submit.script", [], TESTBED)
        return [c for c in prepared.result.changes if c.rule == rule]


def refine(jobdir: str, mpi: int, extra: str = "") -> str:
    """RELION's Class2D command as getCommandsClass2DJob builds it (3.1.3: `which relion_refine_mpi` with MPI > 1)."""
    binary = "relion_refine_mpi" if mpi > 1 else "relion_refine"
    return f"`which {binary}` --o {jobdir}run --i particles.star{extra} --pipeline_control {jobdir}"


# RELION 5.0.1 getCommandsModelAngeloJob: the executable, build with the protein sequence, the map, -o, -d <gpu_id>,
# other_args (empty: a blank), then prepareFinalCommand's `--pipeline-control` with a dash (do_dash_for_python).
MODELANGELO = (
    "relion_python_modelangelo build  -pf seq.fasta -v PostProcess/job020/postprocess.mrc -o ModelAngelo/job021/ "
    "-d 0  --pipeline-control ModelAngelo/job021/"
)
# RELION 5.0.1 getCommandsDynaMightJob, a new job: optimize-deformations with its inputs, --n-threads nr_threads,
# --gpu-id <gpu_id>, other_args, --pipeline-control.
DYNAMIGHT = (
    "relion_python_dynamight optimize-deformations  --refinement-star-file Refine3D/job010/run_data.star "
    "--output-directory DynaMight/job030/ --initial-model Refine3D/job010/run_class001.mrc --n-gaussians 30 "
    "--regularization-factor 1 --n-threads 4 --gpu-id 0  --pipeline-control DynaMight/job030/"
)


# ---------------------------------------------------------------------------------------------- threads


def test_threads_the_template_does_not_allocate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """13 of 39 published templates: no --cpus-per-task from the threads box; RELION runs --j 4 in each of 8
    ranks on 8 CPUs."""
    template = HEAD + "#SBATCH --ntasks=XXXmpinodesXXX\n#SBATCH -p XXXqueueXXX\n" + OUT + "srun XXXcommandXXX\n"
    star = job_star("class2d-3.1.3.job.star", nr_mpi="8", nr_threads="4", qsubscript="site.sh", use_gpu="No")
    job = Job(tmp_path, "Class2D/job001/", template, star, [refine("Class2D/job001/", 8, " --j 4")], 8, 4)
    (found,) = job.findings(monkeypatch, "threads-cpus")
    assert found.action == "warning" and found.line == 7, found
    assert found.message == (
        "RELION's 'Number of threads' is 4, so it runs 4 threads (--j 4) in each process but the job gives each "
        "task 1 CPU (no --cpus-per-task), so the threads share them: add '#SBATCH --cpus-per-task=XXXthreadsXXX' "
        "to the template (site.sh)"
    )
    job.template = template.replace("#SBATCH -p", "#SBATCH --cpus-per-task=XXXthreadsXXX\n#SBATCH -p")
    assert job.findings(monkeypatch, "threads-cpus") == []  # the fix works
    job.template = template.replace("#SBATCH -p", "#SBATCH --exclusive\n#SBATCH -p")
    assert job.findings(monkeypatch, "threads-cpus") == []  # a whole node's CPUs: not judged (a valueless option)


def test_threads_from_a_fixed_template_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = HEAD + "#SBATCH --ntasks=XXXmpinodesXXX\n#SBATCH --cpus-per-task=2\n" + OUT + "srun XXXcommandXXX\n"
    star = job_star("class2d-3.1.3.job.star", nr_mpi="4", nr_threads="6", qsubscript="site.sh", use_gpu="No")
    job = Job(tmp_path, "Class2D/job001/", template, star, [refine("Class2D/job001/", 4, " --j 6")], 4, 6)
    (found,) = job.findings(monkeypatch, "threads-cpus")
    assert "(--cpus-per-task=2 from the template (site.sh, line 3))" in found.message, found.message
    assert found.message.endswith("change --cpus-per-task in the template (site.sh, line 3) to XXXthreadsXXX")
    assert "'Number of threads' box" not in found.message  # the box did not fill that line
    job.template = template.replace("--cpus-per-task=2", "--cpus-per-task=XXXthreadsXXX")
    assert job.findings(monkeypatch, "threads-cpus") == []


def test_dynamight_threads_are_n_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DynaMight has a threads box (has_thread) and passes it as --n-threads, not --j."""
    template = HEAD + "#SBATCH -p XXXqueueXXX\n#SBATCH --gres=gpu:1\n" + OUT + "XXXcommandXXX\n"
    star = job_star("modelangelo-5.0.1.job.star", qsubscript="site.sh").replace("modelangelo", "dynamight", 1)
    job = Job(tmp_path, "DynaMight/job030/", template, star, [DYNAMIGHT], 1, 4, "gpu")
    (found,) = job.findings(monkeypatch, "threads-cpus")
    assert "the command runs 4 threads (--n-threads 4) in each process" in found.message, found.message


# ---------------------------------------------------------------------------------------------- MPI


def test_a_fixed_ntasks_1_with_four_mpi_procs_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """relion_refine_mpi started as one process stops: "at least 2 MPI processes are required"
    (ml_optimiser_mpi.cpp, MlOptimiserMpi::initialiseWorkLoad)."""
    template = HEAD + "#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=XXXthreadsXXX\n" + OUT + "srun XXXcommandXXX\n"
    star = job_star("class2d-3.1.3.job.star", qsubscript="site.sh", use_gpu="No", nr_threads="1")
    job = Job(tmp_path, "Class2D/job001/", template, star, [refine("Class2D/job001/", 4)], 4, 1)
    (found,) = job.findings(monkeypatch, "mpi-tasks")
    assert found.action == "error", found
    assert found.message == (
        "RELION's 'Number of MPI procs' is 4 (relion_refine_mpi) but the job allocates 1 task (from the template "
        "(site.sh, line 2)), so relion_refine_mpi starts as one process and stops ('at least 2 MPI processes are "
        "required'): change --ntasks in the template (site.sh, line 2) to XXXmpinodesXXX (RELION then fills in "
        "'Number of MPI procs')"
    )
    job.template = template.replace("--ntasks=1", "--ntasks=XXXmpinodesXXX")
    assert job.findings(monkeypatch, "mpi-tasks") == []


def test_a_different_task_count_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = HEAD + "#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n" + OUT + "srun XXXcommandXXX\n"
    star = job_star("class2d-3.1.3.job.star", qsubscript="site.sh", use_gpu="No", nr_threads="1")
    job = Job(tmp_path, "Class2D/job001/", template, star, [refine("Class2D/job001/", 4)], 4, 1)
    (found,) = job.findings(monkeypatch, "mpi-tasks")
    assert found.action == "warning" and "allocates 8 tasks" in found.message and "runs 8 processes" in found.message


@pytest.mark.parametrize(
    ("directives", "cli", "expected"),
    [
        ("--ntasks=5", [], 5),
        ("--nodes=2 --ntasks-per-node=3", [], 6),
        ("--ntasks-per-node=3", [], 3),  # one node unless --nodes says more
        ("--nodes=3", [], 3),  # one task per node by default
        ("--nodes=2-4 --ntasks-per-node=2", [], 4),  # a range counts as its minimum
        ("--cpus-per-task=8", [], 1),
        ("--ntasks=1", ["--ntasks=4"], 4),  # the command line wins
        ("--nodes=2 --ntasks-per-node=4 --ntasks=6", [], 6),  # --ntasks wins; per node is then a maximum
    ],
)
def test_tasks_as_sbatch_counts_them(directives: str, cli: list[str], expected: int) -> None:
    script = parse(f"#!/bin/bash\n#SBATCH {directives}\nhostname\n")
    assert tasks(script, Context(TESTBED, parse_cli_options(cli), Boxes(None, {}))) == expected


@pytest.mark.slurm
@pytest.mark.parametrize(
    "directives",
    [
        "--ntasks=5",
        "--nodes=2 --ntasks-per-node=3",
        "--ntasks-per-node=3",
        "--nodes=3",
        "--cpus-per-task=8",
        "--nodes=2 --ntasks-per-node=4 --ntasks=6",
    ],
)
def test_the_tasks_srun_starts_are_the_ones_counted(directives: str, tmp_path: Path) -> None:
    """What relion_refine_mpi gets under srun (or relion-launch) is the tasks the real Slurm starts."""
    script = f"#!/bin/bash\n#SBATCH {directives}\n#SBATCH -p gpu\n#SBATCH --time=0:02:00\nsrun hostname | wc -l\n"
    done = submit_and_wait(script, tmp_path, env=job_env(), timeout=120)
    assert done.ok, done
    counted = tasks(parse(script), Context(TESTBED, (), Boxes(None, {})))
    assert done.output.split()[-1] == str(counted), done.output


# ---------------------------------------------------------------------------------------------- GPUs


def test_modelangelo_without_a_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ModelAngelo uses GPUs through -d, not --gpu; it has no MPI, no threads and no 'Use GPU acceleration?' box."""
    template = HEAD + "#SBATCH -p XXXqueueXXX\n#SBATCH --ntasks=1\n" + OUT + "XXXcommandXXX\n"
    star = job_star("modelangelo-5.0.1.job.star", qsubscript="site.sh")
    job = Job(tmp_path, "ModelAngelo/job021/", template, star, [MODELANGELO], queue="gpu")
    (found,) = job.findings(monkeypatch, "gpu-without-gres")
    assert found.action == "error" and found.line == 7, found
    assert found.message == (
        "relion_python_modelangelo runs with -d 0 but the job allocates no GPU: ask for --gres=gpu:N in the template "
        "(site.sh) (it has no box for --gres) (and a GPU 'Queue name')"
    )
    job.template = template.replace("--ntasks=1\n", "--ntasks=1\n#SBATCH --gres=gpu:1\n")
    assert job.findings(monkeypatch, "gpu-without-gres") == []


def test_dynamight_without_a_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = HEAD + "#SBATCH -p XXXqueueXXX\n#SBATCH --cpus-per-task=XXXthreadsXXX\n" + OUT + "XXXcommandXXX\n"
    star = job_star("modelangelo-5.0.1.job.star", qsubscript="site.sh").replace("modelangelo", "dynamight", 1)
    job = Job(tmp_path, "DynaMight/job030/", template, star, [DYNAMIGHT], 1, 4, "gpu")
    (found,) = job.findings(monkeypatch, "gpu-without-gres")
    assert found.message.startswith("relion_python_dynamight runs with --gpu-id 0 but the job allocates no GPU")


@pytest.mark.parametrize(
    ("line", "flag"),
    [
        ('srun `which relion_refine_mpi` --o x --gpu "" --pipeline_control C/job001/', "--gpu"),
        ("srun `which relion_refine_mpi` --o x --gpu 0:1 --blush --pipeline_control C/job001/", "--gpu"),
        ("mpirun -n 4 `which relion_autopick_mpi` --i m.star --gpu= --pipeline_control A/job001/", "--gpu"),
        (MODELANGELO, "-d 0"),
        (DYNAMIGHT, "--gpu-id 0"),
        # Blush without --gpu runs on the CPU: ml_optimiser.cpp passes `--gpu -1` to relion_python_blush.
        ("srun `which relion_refine_mpi` --o x --blush --pipeline_control C/job001/", None),
        ("relion_python_modelangelo hmm_search  -i M/job1/ -f lib.fasta -o M/job1/ -a amino", None),
        ("# relion_refine --gpu", None),  # a comment runs nothing
        ("srun my_relion_wrapper --gpu", None),  # not a RELION program
    ],
)
def test_every_relion_gpu_flag(line: str, flag: str | None) -> None:
    used = gpu_use(commands(parse(f"#!/bin/bash\n#SBATCH -n 4\n{line}\n")))
    assert (used[1] if used else None) == flag


def test_use_gpu_box_is_named_only_where_the_job_has_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = HEAD + "#SBATCH --ntasks=XXXmpinodesXXX\n#SBATCH -p XXXqueueXXX\n" + OUT + "srun XXXcommandXXX\n"
    star = job_star("class2d-5.0.1.job.star", qsubscript="site.sh", nr_threads="1")
    job = Job(tmp_path, "Class2D/job001/", template, star, [refine("Class2D/job001/", 4, ' --gpu "0:1"')], 4, 1)
    (found,) = job.findings(monkeypatch, "gpu-without-gres")
    assert found.message.endswith("or set 'Use GPU acceleration?' to No"), found.message


# ---------------------------------------------------------------------------------------------- provenance


def test_a_fixed_template_line_is_the_templates_not_a_box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`#SBATCH --cpus-per-task=30` fixed in another site's template used to be "the 'Number of threads' box"."""
    template = HEAD + "#SBATCH --ntasks=XXXmpinodesXXX\n#SBATCH --cpus-per-task=30\n#SBATCH -p XXXqueueXXX\n"
    template += OUT + "srun XXXcommandXXX\n"
    star = job_star("class2d-3.1.3.job.star", qsubscript="site.sh", nr_threads="1", use_gpu="No")
    job = Job(tmp_path, "Class2D/job001/", template, star, [refine("Class2D/job001/", 4)], 4, 1, "gpu")
    (found,) = job.findings(monkeypatch, "node-cpus")
    assert "--cpus-per-task=30 from the template (site.sh, line 3)" in found.message, found.message
    assert "change --cpus-per-task in the template (site.sh, line 3) to 16 or fewer" in found.message
    assert "box" not in found.message


def test_a_queue_box_the_template_does_not_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 'Queue name' box held `gpu`, but the template has no XXXqueueXXX: it is not "empty"."""
    template = HEAD + "#SBATCH --ntasks=XXXmpinodesXXX\n#SBATCH --gres=gpu:p100:1\n" + OUT + "srun XXXcommandXXX\n"
    star = job_star("class2d-3.1.3.job.star", qsubscript="site.sh", nr_threads="1")
    job = Job(tmp_path, "Class2D/job001/", template, star, [refine("Class2D/job001/", 2, ' --gpu ""')], 2, 1, "gpu")
    (found,) = job.findings(monkeypatch, "gpu-default-partition")
    assert "is empty" not in found.message
    assert found.message.startswith("--gres=gpu:p100:1 asks for GPUs but the template (site.sh) has no --partition")
    assert found.message.endswith("add '#SBATCH --partition=XXXqueueXXX' to it and set 'Queue name' to gpu")
    job.template = template.replace("#SBATCH --gres", "#SBATCH --partition=XXXqueueXXX\n#SBATCH --gres")
    assert job.findings(monkeypatch, "gpu-default-partition") == []


def test_no_mpi_box_is_asked_of_a_job_without_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ModelAngelo has no 'Number of MPI procs' (RelionJob::initialise: has_mpi = false): a fixed --ntasks=4 on one
    GPU is the template's to change."""
    template = HEAD + "#SBATCH -p XXXqueueXXX\n#SBATCH --ntasks=4 --nodes=1\n#SBATCH --gres=gpu:p100:1\n"
    template += OUT + "XXXcommandXXX\n"
    star = job_star("modelangelo-5.0.1.job.star", qsubscript="site.sh")
    job = Job(tmp_path, "ModelAngelo/job021/", template, star, [MODELANGELO], queue="gpu")
    (found,) = job.findings(monkeypatch, "tasks-per-gpu")
    assert "MPI" not in found.message, found.message


def test_without_job_star_the_environment_template_still_names_fixed_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job dir without job.star (or a standalone script) falls back to RELION_QSUB_TEMPLATE, checked line by
    line against the script."""
    template = HEAD + "#SBATCH --ntasks=XXXmpinodesXXX\n#SBATCH --cpus-per-task=30\n#SBATCH -p XXXqueueXXX\n"
    template += OUT + "srun XXXcommandXXX\n"
    job = Job(tmp_path, "Class2D/job001/", template, "", [refine("Class2D/job001/", 4)], 4, 1, "gpu")
    script = job.write()
    (script.parent / "job.star").unlink()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RELION_QSUB_TEMPLATE", "site.sh")
    prepared = prepare(Path("Class2D/job001/run_submit.script"), [], TESTBED)
    (found,) = [c for c in prepared.result.changes if c.rule == "node-cpus"]
    assert "--cpus-per-task=30 from the template (site.sh, line 3)" in found.message, found.message


@pytest.mark.parametrize(
    ("line", "rule", "said"),
    [
        ("#SBATCH --cpus-per-task=30\n", "node-cpus", "--cpus-per-task=30 from the template (gone.sh, line 3)"),
        # The testbed profile's first box is 'Walltime' (--time); job.star's qsub_extra1 held 2:00:00, not this.
        ("#SBATCH --time=14-00:00:00\n", "max-time", "--time=14-00:00:00 from the template (gone.sh, line 3)"),
    ],
)
def test_a_guess_job_star_contradicts_names_no_box(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, rule: str, said: str
) -> None:
    """The template job.star names is gone (moved after the run): the box guessed from the line's shape is checked
    against job.star's value of that box, and a box that did not hold the value is not named."""
    template = HEAD + "#SBATCH --ntasks=XXXmpinodesXXX\n" + line + "#SBATCH -p XXXqueueXXX\n"
    template += OUT.replace("#SBATCH --time=1:00:00\n", "") + "srun XXXcommandXXX\n"
    star = job_star("class2d-3.1.3.job.star", qsubscript="gone.sh", nr_threads="1", use_gpu="No")
    job = Job(tmp_path, "Class2D/job001/", template, star, [refine("Class2D/job001/", 4)], 4, 1, "gpu")
    job.write()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RELION_QSUB_TEMPLATE", raising=False)
    prepared = prepare(Path("Class2D/job001/run_submit.script"), [], TESTBED)
    (found,) = [c for c in prepared.result.changes if c.rule == rule]
    assert said in found.message and "box" not in found.message, found.message


def test_a_line_edited_after_relion_wrote_it_is_the_scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The template fills --cpus-per-task from 'Number of threads', job.star says 1, the script says 30: someone
    edited run_submit.script after RELION wrote it, and the box did not give 30."""
    template = HEAD + "#SBATCH --ntasks=XXXmpinodesXXX\n#SBATCH --cpus-per-task=XXXthreadsXXX\n#SBATCH -p XXXqueueXXX\n"
    template += OUT + "srun XXXcommandXXX\n"
    star = job_star("class2d-3.1.3.job.star", qsubscript="site.sh", nr_threads="1", use_gpu="No")
    job = Job(tmp_path, "Class2D/job001/", template, star, [refine("Class2D/job001/", 4)], 4, 1, "gpu")
    script = job.write()
    script.write_text(script.read_text().replace("--cpus-per-task=1", "--cpus-per-task=30"))
    monkeypatch.chdir(tmp_path)
    prepared = prepare(Path("Class2D/job001/run_submit.script"), [], TESTBED)
    (found,) = [c for c in prepared.result.changes if c.rule == "node-cpus"]
    assert "--cpus-per-task=30 from line 3 of the script" in found.message, found.message
    assert "change --cpus-per-task in line 3 of the script to 16 or fewer" in found.message


def test_a_fixed_partition_is_changed_in_the_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A template with `-p gpuu` fixed and no XXXqueueXXX: setting 'Queue name' would change nothing."""
    template = HEAD + "#SBATCH -p gpuu\n#SBATCH --ntasks=XXXmpinodesXXX\n" + OUT + "srun XXXcommandXXX\n"
    star = job_star("class2d-3.1.3.job.star", qsubscript="site.sh", nr_threads="1", use_gpu="No")
    job = Job(tmp_path, "Class2D/job001/", template, star, [refine("Class2D/job001/", 4)], 4, 1, "gpu")
    (found,) = job.findings(monkeypatch, "unknown-partition")
    assert found.message == (
        "partition 'gpuu' is not one of this site's: change --partition in the template (site.sh, line 2) to one "
        "of gpu, multinode, norm, service"
    )
    job.template = template.replace("-p gpuu", "-p XXXqueueXXX")
    assert job.findings(monkeypatch, "unknown-partition") == []


@pytest.mark.parametrize(
    ("launcher", "counted"),
    [
        ("srun", False),
        ("mpirun", False),
        ("mpirun -np", False),
        ("srun -c 4", False),
        ("srun -n 4", True),
        ("mpirun -np 4", True),
        ("mpirun -c 4", True),
        ("${RELION_STD_LAUNCHER} --mem-per-cpu=4g", False),
        ("/usr/bin/mpiexec --n 4", True),
        ("/usr/bin/mpiexec --np=4", False),  # mpirun 4.1.4: unknown option "--np=2"
        ("srun --ntasks=4", True),
        ("srun --mpi=pmix -n4", True),
    ],
)
def test_a_launcher_with_its_own_rank_count(launcher: str, counted: bool) -> None:
    """mpirun -c N is a rank count (OpenMPI: -c, -np, --np); srun -c N is CPUs per task."""
    (command,) = commands(parse(f"#!/bin/bash\n#SBATCH -n 1\n{launcher} `which relion_refine_mpi` --o x\n"))
    assert command.counted is counted and command.mpi and command.program == "relion_refine"


def test_a_value_typed_into_a_directives_box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--ntasks=1 typed into an 'SBATCH Directives' box (RELION_QSUB_EXTRA2; job.star's qsub_extra2 holds it): the
    fix is that box's, by the site's label."""
    template = HEAD + "#SBATCH XXXextra2XXX\n#SBATCH -p XXXqueueXXX\n" + OUT + "srun XXXcommandXXX\n"
    star = job_star(
        "class2d-3.1.3.job.star", qsubscript="site.sh", nr_threads="1", use_gpu="No", qsub_extra2="--ntasks=1"
    )
    job = Job(
        tmp_path, "Class2D/job001/", template, star, [refine("Class2D/job001/", 4)], 4, 1, extras={2: "--ntasks=1"}
    )
    monkeypatch.setenv("RELION_QSUB_EXTRA2", "More options")
    (found,) = job.findings(monkeypatch, "mpi-tasks")
    assert "(from the 'More options' box (RELION_QSUB_EXTRA2))" in found.message, found.message
    assert found.message.endswith("change --ntasks in the 'More options' box (RELION_QSUB_EXTRA2) to 4")


# ---------------------------------------------------------------------------------------------- launcher rank counts

LAUNCHED = HEAD + "#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=XXXthreadsXXX\n" + OUT


def test_srun_n_beyond_the_allocation_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """srun makes no step beyond the job's CPUs: test_launcher_over_count_fails_as_said runs it on the testbed."""
    template = LAUNCHED + "srun -n XXXmpinodesXXX XXXcommandXXX\n"
    star = job_star("class2d-3.1.3.job.star", qsubscript="site.sh", use_gpu="No", nr_threads="1")
    job = Job(tmp_path, "Class2D/job001/", template, star, [refine("Class2D/job001/", 4)], 4, 1)
    (found,) = job.findings(monkeypatch, "mpi-tasks")
    assert found.action == "error", found
    assert found.message == (
        "RELION's 'Number of MPI procs' is 4, and srun -n 4 starts 4 processes of relion_refine_mpi but the job "
        "allocates 1 task (from the template (site.sh, line 2)) x 1 CPU per task, so srun refuses the step ('More "
        "processors requested than permitted'): change --ntasks in the template (site.sh, line 2) to XXXmpinodesXXX "
        "(RELION then fills in 'Number of MPI procs')"
    )
    job.template = template.replace("--ntasks=1", "--ntasks=XXXmpinodesXXX")
    assert job.findings(monkeypatch, "mpi-tasks") == []


def test_mpirun_np_beyond_the_slots_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenMPI's mpirun has one slot per task Slurm gives, whatever the CPUs per task (4 threads here)."""
    template = LAUNCHED + "mpirun -np XXXmpinodesXXX XXXcommandXXX\n"
    star = job_star("class2d-3.1.3.job.star", qsubscript="site.sh", use_gpu="No", nr_threads="4")
    job = Job(tmp_path, "Class2D/job001/", template, star, [refine("Class2D/job001/", 4, " --j 4")], 4, 4)
    (found,) = job.findings(monkeypatch, "mpi-tasks")
    assert found.message == (
        "RELION's 'Number of MPI procs' is 4, and mpirun -np 4 starts 4 processes of relion_refine_mpi but the job "
        "allocates 1 task (from the template (site.sh, line 2)) = 1 slot for mpirun, so mpirun refuses to start them "
        "('There are not enough slots available'): change --ntasks in the template (site.sh, line 2) to "
        "XXXmpinodesXXX (RELION then fills in 'Number of MPI procs')"
    )
    job.template = template.replace("--ntasks=1", "--ntasks=XXXmpinodesXXX")
    assert job.findings(monkeypatch, "mpi-tasks") == []


def test_a_fixed_launcher_count_is_the_templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The allocation is the box's and the launcher's count a fixed number: the fix is the launcher's."""
    template = HEAD + "#SBATCH --ntasks=XXXmpinodesXXX\n" + OUT + "mpirun -np 8 XXXcommandXXX\n"
    star = job_star("class2d-3.1.3.job.star", qsubscript="site.sh", use_gpu="No", nr_threads="1")
    job = Job(tmp_path, "Class2D/job001/", template, star, [refine("Class2D/job001/", 4)], 4, 1)
    (found,) = job.findings(monkeypatch, "mpi-tasks")
    assert found.message == (
        "mpirun -np 8 starts 8 processes of relion_refine_mpi but the job allocates 4 tasks (from the 'Number of MPI "
        "procs' box) = 4 slots for mpirun, so mpirun refuses to start them ('There are not enough slots available'): "
        "start 4 ranks in the template (site.sh) ('mpirun ... XXXmpinodesXXX' fills it in)"
    )
    job.template = template.replace("-np 8", "-np XXXmpinodesXXX")
    assert job.findings(monkeypatch, "mpi-tasks") == []


@pytest.mark.parametrize(
    ("directives", "launcher"),
    [
        ("--ntasks=1 --cpus-per-task=4", "srun -n 4"),  # 4 CPUs hold 4 one-CPU tasks (ran on the testbed)
        ("--ntasks=1", "srun -O -n 4"),  # --overcommit
        ("--ntasks=1", "mpirun --oversubscribe -np 4"),
        ("--ntasks=1", "mpirun --map-by core:OVERSUBSCRIBE -np 4"),
        ("--ntasks=1 --exclusive", "srun -n 4"),  # a whole node's CPUs
        ("--nodes=1-2 --ntasks-per-node=1", "mpirun -np 2"),  # a range: Slurm may give more
        ("--ntasks=4", "srun -n 4"),
        ("--ntasks=1", "srun -n $SLURM_NTASKS"),
    ],
)
def test_a_launcher_count_the_job_can_hold(directives: str, launcher: str) -> None:
    script = parse(f"#!/bin/bash\n#SBATCH {directives}\n{launcher} `which relion_refine_mpi` --o x\n")
    (command,) = commands(script)
    assert _launcher_over(script, Context(TESTBED, (), Boxes(None, {})), command) is None


@pytest.mark.slurm
@pytest.mark.parametrize("launcher", ["srun -n 2", "mpirun -np 2"])
def test_launcher_over_count_fails_as_said(launcher: str, tmp_path: Path) -> None:
    """The refusal mpi_tasks quotes is what the real srun / OpenMPI mpirun say in a one-task job (a 2-rank step)."""
    head = "#!/bin/bash\n#SBATCH --ntasks=1\n#SBATCH -p norm\n#SBATCH --time=0:02:00\n"
    script = parse(head + f"{launcher} `which relion_refine_mpi` --o x\n")
    (command,) = commands(script)
    found = _launcher_over(script, Context(TESTBED, (), Boxes(None, {})), command)
    assert found is not None
    said = re.findall(r"\('([^']+)'\)", found[1])[-1]  # the refusal the message quotes
    # OpenMPI's mpirun refuses root unless told (the testbed's jobs run as the submitting user), and uses TCP there.
    env = job_env(OMPI_MCA_btl="self,tcp", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    done = submit_and_wait(head + f"{launcher} hostname\necho rc=$?\n", tmp_path, env=env, timeout=120)
    assert said in done.output, (said, done.output)
    assert "rc=0" not in done.output, done.output
