"""relion/gui.py Boxes: which GUI box filled which script line, from RELION_QSUB_TEMPLATE and the box labels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from relion_qsub.checks.placeholders import _empty_value
from relion_qsub.launch.invocation import parse_args
from relion_qsub.relion.gui import EMPTY, Boxes, box_name, from_environment, from_job, relion_box, unset_value

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "".join(
    line + "\n"
    for line in (
        "#!/bin/bash",
        "#SBATCH --partition=XXXqueueXXX",
        "#SBATCH --mem=XXXextra2XXXGB",
        "#SBATCH XXXextra3XXX",
        "srun XXXcommandXXX",
    )
)


def test_names() -> None:
    assert box_name("extra2", {2: "Memory"}) == "the 'Memory' box (RELION_QSUB_EXTRA2)"
    assert box_name("extra5", {}) == "RELION_QSUB_EXTRA5 (not set)"
    assert box_name("queue", {}) == "the 'Queue name' box"
    assert box_name("timelimit", {}) == "the profile's [placeholders.timelimit] (XXXtimelimitXXX)"  # a site value


def test_from_the_environment_and_checked_against_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.sh"
    path.write_text(TEMPLATE)
    boxes = from_environment({"RELION_QSUB_TEMPLATE": str(path), "RELION_QSUB_EXTRA2": "Memory", "PATH": "/bin"})
    assert boxes.for_line(3, "#SBATCH --mem=GB") == "the 'Memory' box (RELION_QSUB_EXTRA2)"
    assert boxes.for_line(3, "#SBATCH --time=1:00") is None  # not the line this template gives: no guess
    assert boxes.for_line(2) == "the 'Queue name' box" and boxes.for_line(1) is None and boxes.for_line(99) is None
    assert boxes.for_option("mem") == "the 'Memory' box (RELION_QSUB_EXTRA2)"
    assert boxes.for_option("gres") == "RELION_QSUB_EXTRA3 (not set)"  # the whole-line box takes any option
    assert Boxes(["#SBATCH -n 1"], {}).for_option("gres") == ""
    assert from_environment({"RELION_QSUB_TEMPLATE": str(tmp_path / "missing")}).template is None  # a hint only


def test_check_names_the_box_from_relions_environment(tmp_path: Path) -> None:
    template = tmp_path / "site.sh"
    template.write_text(TEMPLATE)
    script = tmp_path / "CtfFind" / "job003" / "run_submit.script"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/bash\n#SBATCH --partition=norm\n#SBATCH --mem=GB\n#SBATCH gpu:1\nsrun x\n")
    env = {"PATH": "/usr/bin:/bin", "RELION_QSUB_SITE": "testbed", "RELION_QSUB_TEMPLATE": str(template)}
    env |= {"RELION_QSUB_EXTRA2": "Memory (GB)", "RELION_QSUB_EXTRA3": "More options", "RELION_QSUB_NO_CACHE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "relion_qsub", "check", str(script)], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 65, done.stderr
    assert "so the 'Memory (GB)' box (RELION_QSUB_EXTRA2) was left empty" in done.stderr
    assert "it came from the 'More options' box (RELION_QSUB_EXTRA3)" in done.stderr


@pytest.mark.parametrize(
    ("value", "unset"),
    [
        ("", EMPTY),
        ("  ", EMPTY),
        ('""', EMPTY),
        ("''", EMPTY),
        ("XXXextra2XXX", "XXXextra2XXX"),
        ("2XXXqosXXX", "XXXqosXXX"),
        ("4G", None),
        ("XXX", None),
        ("gpu:1", None),
    ],
)
def test_one_answer_for_an_option_a_box_left_empty_or_unfilled(value: str, unset: str | None) -> None:
    """The launcher-line rule (relion-qsub) and relion-launch drop the same options: both ask gui.unset_value."""
    assert unset_value(value) == unset
    assert _empty_value(f"--mem-per-cpu={value}") is (unset is not None)
    inv = parse_args([f"--mem-per-cpu={value}", "relion_refine_mpi"])
    assert (inv.srun_options == []) is (unset is not None), inv


def test_job_star_names_the_template_and_the_boxes_the_job_has(tmp_path: Path) -> None:
    """from_job: the template job.star names (relative to the project), fixed lines by path and number, and the
    boxes of the job's type (a ModelAngelo job.star has no nr_mpi)."""
    (tmp_path / "t.sh").write_text(TEMPLATE)
    boxes = from_job(
        {"qsubscript": "t.sh", "qsub_extra2": "4", "gpu_id": "0"}, str(tmp_path), {"RELION_QSUB_EXTRA2": "Mem"}
    )
    assert boxes.recorded and boxes.path == "t.sh"
    assert boxes.fixed_line(1, "#!/bin/bash") == "the template (t.sh, line 1)"
    assert boxes.fixed_line(3, "#SBATCH --mem=4GB") is None  # a box filled it
    assert boxes.for_line(3, "#SBATCH --mem=4GB") == "the 'Mem' box (RELION_QSUB_EXTRA2)"
    assert boxes.fixed_line(1, "#!/bin/sh") is None  # not this template's line
    assert boxes.uses("queue") is True and boxes.uses("threads") is False
    assert boxes.has_box("nr_mpi") is False and boxes.has_box("gpu_id") is True
    assert relion_box(boxes, "nr_mpi") is None and relion_box(boxes, "gpu_id") == "the 'Which GPUs to use' box"
    assert Boxes(None, {}).has_box("nr_mpi") is None and Boxes(None, {}).uses("queue") is None
    assert relion_box(Boxes(None, {}), "nr_mpi") == "the 'Number of MPI procs' box"  # no job.star: not ruled out
