"""Issue 21 items 2-4 with RELION's own files: the real relion_pipeliner (Debian's 3.1.3) writes job.star and fills
another site's template; relion-qsub check must name the template line, not a box, and its fix must work: the fixed
template, filled again by relion_pipeliner, passes, and the real sbatch (``--test-only``) takes the script.

relion_pipeliner 3.1.3 fills template lines exactly as 4.0 and 5.0 do (only the commands differ); its job.star has
the 3.1 shape (tests/test_jobstar.py reads the 4.0 and 5.0 shapes).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from relion_qsub import profile
from relion_qsub.checks.core import Change
from relion_qsub.prepare import prepare
from tests.test_relionfill import COMMON_INPUTS, Case, RelionRun, pipeliner, run_relion  # noqa: F401 (a fixture)

TESTBED = profile.load("testbed")
TAIL = "#SBATCH --time=0:05:00\n#SBATCH --error=XXXerrfileXXX\n#SBATCH --output=XXXoutfileXXX\nsrun XXXcommandXXX\n"
# A site's template with a fixed --ntasks=1 (it was written for single-process jobs) while the MPI box says 4.
FIXED_NTASKS = "#!/bin/bash\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=XXXthreadsXXX\n#SBATCH -p XXXqueueXXX\n" + TAIL
# One of the 13 published templates with no --cpus-per-task from the threads box.
NO_CPUS = "#!/bin/bash\n#SBATCH --ntasks=XXXmpinodesXXX\n#SBATCH -p XXXqueueXXX\n" + TAIL


def case(template: str, mpi: int, threads: int) -> Case:
    options = {"fn_img": "particles.star", "nr_mpi": str(mpi), "nr_threads": str(threads), "use_gpu": "No"}
    return Case("alloc", template, "Class2D", options, mpi, threads, "norm", files=COMMON_INPUTS)


def findings(project: Path, run: RelionRun, rule: str, monkeypatch: pytest.MonkeyPatch) -> list[Change]:
    monkeypatch.chdir(project)
    # The GUI's starting default names another template: job.star's qsubscript is the one RELION filled.
    monkeypatch.setenv("RELION_QSUB_TEMPLATE", "/nonexistent/default.sh")
    prepared = prepare(Path(run.jobdir) / "run_submit.script", [], TESTBED)
    return [c for c in prepared.result.changes if c.rule == rule]


def test_relions_own_job_star_names_the_fixed_ntasks_line(
    pipeliner: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = run_relion(pipeliner, tmp_path / "before", case(FIXED_NTASKS, 4, 1))
    (found,) = findings(tmp_path / "before", run, "mpi-tasks", monkeypatch)
    template = tmp_path / "before" / "template.sh"
    assert found.action == "error", found
    assert f"the job allocates 1 task (from the template ({template}, line 2))" in found.message, found.message
    assert found.message.endswith(
        f"change --ntasks in the template ({template}, line 2) to XXXmpinodesXXX "
        "(RELION then fills in 'Number of MPI procs')"
    )
    fixed = FIXED_NTASKS.replace("--ntasks=1", "--ntasks=XXXmpinodesXXX")
    run = run_relion(pipeliner, tmp_path / "after", case(fixed, 4, 1))
    assert findings(tmp_path / "after", run, "mpi-tasks", monkeypatch) == []


def test_relions_own_job_star_and_the_threads_the_template_does_not_give(
    pipeliner: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = run_relion(pipeliner, tmp_path / "before", case(NO_CPUS, 8, 4))
    (found,) = findings(tmp_path / "before", run, "threads-cpus", monkeypatch)
    template = tmp_path / "before" / "template.sh"
    assert found.message.startswith("RELION's 'Number of threads' is 4, so it runs 4 threads (--j 4)"), found.message
    assert found.message.endswith(f"add '#SBATCH --cpus-per-task=XXXthreadsXXX' to the template ({template})")
    fixed = NO_CPUS.replace("#SBATCH -p", "#SBATCH --cpus-per-task=XXXthreadsXXX\n#SBATCH -p")
    run = run_relion(pipeliner, tmp_path / "after", case(fixed, 8, 4))
    assert findings(tmp_path / "after", run, "threads-cpus", monkeypatch) == []


@pytest.mark.slurm
@pytest.mark.parametrize(
    ("template", "mpi", "threads", "processors"),
    [
        (FIXED_NTASKS, 4, 1, 1),  # what relion-qsub refuses: Slurm gives one task
        (FIXED_NTASKS.replace("--ntasks=1", "--ntasks=XXXmpinodesXXX"), 4, 1, 4),  # the fix
        (NO_CPUS, 8, 4, 8),  # 8 ranks x --j 4 on 8 CPUs: what relion-qsub warns of
        (NO_CPUS.replace("#SBATCH -p", "#SBATCH --cpus-per-task=XXXthreadsXXX\n#SBATCH -p"), 8, 4, 32),  # the fix
    ],
    ids=["ntasks-1", "ntasks-fixed", "no-cpus", "cpus-fixed"],
)
def test_what_slurm_allocates_for_the_scripts_relion_fills(
    pipeliner: str,  # noqa: F811
    tmp_path: Path,
    template: str,
    mpi: int,
    threads: int,
    processors: int,
) -> None:
    """The real sbatch (--test-only: nothing runs) allocates for the scripts RELION filled what the rules say:
    one CPU per task without --cpus-per-task, and --ntasks tasks whatever 'Number of MPI procs' says."""
    run = run_relion(pipeliner, tmp_path / "p", case(template, mpi, threads))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") or k == "SLURM_CONF"}
    done = subprocess.run(
        ["sbatch", "--test-only", f"{run.jobdir}run_submit.script"],
        cwd=tmp_path / "p",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"using {processors} processors" in done.stderr, done.stderr
