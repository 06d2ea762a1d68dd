"""docs/errors.md, generated: one entry per policy key of relion_qsub/checks/registry.py, with what the user sees
taken from a real run of the checks (tests/test_errors_catalogue.py keeps the page in step; re-record with
RELION_QSUB_RERECORD=1).

"What you see" is the line relion-qsub printed for a RELION-filled script of tests/corpus/ (the first that fires
the rule, with the biowulf or the testbed profile) or, where no corpus script does, for the short script below;
the GUI boxes are named as the Biowulf module names them (RELION_QSUB_EXTRA1..6).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from relion_qsub import profile
from relion_qsub.checks.core import Change
from relion_qsub.checks.registry import RULES, Action, Kind, Rule
from relion_qsub.prepare import prepare

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
BOXES = {
    "RELION_QSUB_EXTRA_COUNT": "6",
    "RELION_QSUB_EXTRA1": "Walltime",
    "RELION_QSUB_EXTRA2": "Memory Per Thread",
    "RELION_QSUB_EXTRA3": "Gres",
    "RELION_QSUB_EXTRA4": "SBATCH Directives",
    "RELION_QSUB_EXTRA5": "SBATCH Directives 2",
    "RELION_QSUB_EXTRA6": "SBATCH Directives 3",
}
HEAD = (
    "#!/bin/bash\n#SBATCH --ntasks=2\n#SBATCH --error=Class2D/job001/run.err\n#SBATCH --output=Class2D/job001/run.out\n"
)
REFINE = "srun `which relion_refine_mpi` --o Class2D/job001/run --i particles.star --pipeline_control Class2D/job001/"
# Scripts for the rules no corpus script fires (profile, script).
SAMPLES = {
    "foreign_scheduler": ("testbed", "#!/bin/csh\n#$ -pe mpi 4\n#$ -q all.q\nmpirun relion_refine_mpi --o x\n"),
    "foreign_directive": ("testbed", HEAD + "#PBS -l walltime=1:00:00\nsrun hostname\n"),
    "partly_empty": ("testbed", HEAD + "#SBATCH --time=:00:00\nsrun hostname\n"),
    "body_placeholder": ("testbed", HEAD + "#SBATCH --partition=norm\nsrun relion_refine_mpi --j XXXthreadsXXX\n"),
    "repeated_option": ("testbed", HEAD + "#SBATCH --time=1:00:00\n#SBATCH --time=2:00:00\nsrun hostname\n"),
    "scratch_job_id": ("testbed", HEAD + "#SBATCH --gres=lscratch:10\n" + REFINE + " --scratch_dir /lscratch\n"),
    "scratch_missing": ("biowulf", HEAD + "#SBATCH --gres=gpu:p100:1\n" + REFINE + "\n"),
    "scratch_preread": (
        "testbed",
        HEAD + "#SBATCH --gres=lscratch:10\n" + REFINE + " --preread_images --scratch_dir /lscratch/$SLURM_JOB_ID\n",
    ),
    "plus_one_launcher": (
        "testbed",
        "#!/bin/bash\n#SBATCH --ntasks=10\n#SBATCH --partition=gpu\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=5\n"
        "#SBATCH --gres=gpu:p100:4\n" + REFINE + ' --gpu ""\n',
    ),
    "unknown_partition": ("biowulf", HEAD + "#SBATCH --partition=gpuu\nsrun hostname\n"),
    "threads_cpus": ("testbed", HEAD + "#SBATCH --partition=norm\n" + REFINE + " --j 4\n"),
    "mpi_tasks": ("testbed", HEAD.replace("--ntasks=2", "--ntasks=1") + "#SBATCH --partition=norm\n" + REFINE + "\n"),
    "max_time": ("testbed", HEAD + "#SBATCH --partition=gpu\n#SBATCH --time=14-00:00:00\nsrun hostname\n"),
    "memory_unit": ("testbed", HEAD + "#SBATCH --partition=norm\n#SBATCH --mem-per-cpu=20\nsrun hostname\n"),
    "memory_unit_mpi": ("testbed", HEAD + "#SBATCH --partition=norm\n#SBATCH --mem=240\n" + REFINE + "\n"),
    # An absolute path: the message names the directory sbatch would use, and a relative one depends on the cwd.
    "missing_chdir": ("testbed", HEAD + "#SBATCH --partition=norm\n#SBATCH --chdir=/CREATE_PWD\nsrun hostname\n"),
    "gpu_default_partition": ("testbed", HEAD + "#SBATCH --gres=gpu:p100:1\nsrun hostname\n"),
    "data_scratch": (
        "testbed",
        HEAD
        + "#SBATCH --partition=gpu\n#SBATCH --gres=lscratch:12,gpu:p100:4\n"
        + REFINE
        + " --scratch_dir /lscratch/$SLURM_JOB_ID\n",
    ),
    "preread_memory": (
        "testbed",
        HEAD + "#SBATCH --partition=norm\n#SBATCH --mem-per-cpu=1g\n" + REFINE + " --preread_images\n",
    ),
    "gpu_box": (
        "testbed",
        "#!/bin/bash\n#SBATCH --ntasks=9\n#SBATCH --partition=gpu\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=9\n"
        "#SBATCH --gres=gpu:p100:4\n" + REFINE + " --auto_refine --gpu\n",
    ),
}
# The data checks' samples read the job's particles: (count, box) of the particles.star written beside them.
DATA = {"data_scratch": (4000, 512), "preread_memory": (20000, 256), "gpu_box": (100, 512)}


def _particles(project: Path, count: int, box: int) -> None:
    """A particles file in RELION 3.1's shape (data_optics with the box, data_particles with one row each)."""
    rows = "".join(f"{i:06d}@Extract/job007/parts.mrcs 1\n" for i in range(1, count + 1))
    (project / "particles.star").write_text(
        f"data_optics\nloop_\n_rlnOpticsGroup #1\n_rlnImageSize #2\n1 {box}\n\n"
        f"data_particles\nloop_\n_rlnImageName #1\n_rlnOpticsGroup #2\n{rows}\n"
    )


def _wrong_size() -> str:
    """The testbed's Class2D_gpu/01_tiny.sh (5 MPI procs x 2 threads) as RELION fills it with 3 x 1."""
    from relion_qsub.sitetools.relionfill import fill, relion_command
    from relion_qsub.sitetools.templates import plan

    text = next(r.text for r in plan(profile.load("testbed"), "/opt/templates") if r.path == "Class2D_gpu/01_tiny.sh")
    command = relion_command(
        "relion_refine", "--o Class2D/job001/run --i particles.star", jobdir="Class2D/job001/", mpi=3
    )
    return fill(text, jobdir="Class2D/job001/", commands=[command], mpi=3, threads=1, queue="gpu")


@contextmanager
def _boxes() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in BOXES}
    os.environ.update(BOXES)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _changes(site_name: str, script: Path) -> list[Change]:
    return list(prepare(script, [], profile.load(site_name, {"RELION_QSUB_NO_CACHE": "1"})).result.changes)


def examples(tmp: Path) -> dict[str, tuple[str, Change]]:
    """Rule name -> (where the example came from, the finding)."""
    found: dict[str, tuple[str, Change]] = {}
    with _boxes():
        for site_name in ("biowulf", "testbed"):
            for path in sorted(CORPUS.glob("*.script")):
                for change in _changes(site_name, path):
                    where = f"`tests/corpus/{path.name}` with the {site_name} profile"
                    found.setdefault(change.rule, (where, change))
        for key, (site_name, text) in [*SAMPLES.items(), ("template_size", ("testbed", _wrong_size()))]:
            job = tmp / key / "Class2D" / "job001"
            job.mkdir(parents=True, exist_ok=True)
            script = job / "run_submit.script"
            script.write_text(text)
            if key in DATA:
                _particles(tmp / key, *DATA[key])
            for change in _changes(site_name, script):
                what = (
                    "the testbed's `Class2D_gpu/01_tiny.sh` filled by RELION with 3 MPI procs x 1 thread"
                    if key == "template_size"
                    else f"the script below with the {site_name} profile"
                )
                found.setdefault(change.rule, (what, change))
    return found


KIND = {
    Kind.NORMALISE: "a check of the script's text and what it asks (before sbatch)",
    Kind.FIT: "a fit rule: the job against the profile's partition limits (before sbatch)",
}
OUTCOME = {
    Action.ERROR: "relion-qsub submits nothing: the reason goes to the job's `run.err` (what the GUI shows) and "
    "`RELION_JOB_EXIT_FAILURE` is written, so RELION shows the job Failed at once. Change what the message names "
    "(the box by its label, or the template line) and run the job again.",
    Action.WARN: "the job is submitted; the warning is printed and kept in the job's `relion-qsub.jsonl`. Act on it "
    "before the next run.",
    Action.FIX: "relion-qsub repairs its copy of the script (`run_submit.slurm`; RELION's `run_submit.script` is "
    "never changed), says so, and submits it. Nothing to do, unless the repair is not what was meant.",
    Action.OFF: "nothing happens.",
}


def _entry(rule: Rule, example: tuple[str, Change] | None) -> list[str]:
    out = [f"## `{rule.key}`", "", f"{KIND[rule.kind]}; default **{rule.default}**.", ""]
    out += [f"**What:** {rule.doc or rule.reason}", "", f"**Why:** {rule.reason}", ""]
    if example:
        where, change = example
        out += [f"**What you see** ({where}):", "", f"    relion-qsub: {change}", ""]
        sample = SAMPLES.get(rule.key)
        if sample and where.startswith("the script below"):
            out += ["```bash", *sample[1].rstrip("\n").splitlines(), "```", ""]
            if rule.key in DATA:
                count, box = DATA[rule.key]
                out += [f"(its `particles.star`: {count:,} particles of box {box} px, RELION 3.1's shape)", ""]
    out += [f"**Then:** {OUTCOME[rule.default]}", ""]
    out += [f'**Policy:** `[policy] {rule.key} = "error" | "warn" | "fix" | "off"` in the site profile.', ""]
    return out


def render(tmp: Path) -> str:
    found = examples(tmp)
    lines = [
        "# Error catalogue",
        "",
        "<!-- generated by tests/errors_catalogue.py from relion_qsub/checks/registry.py; do not edit -->",
        "",
        "One entry per policy key, in the order the checks run: what it catches, why, what the user sees (a real",
        "run of the checks, quoted), what happens to the job and how to act. The defaults are the README's policy",
        'table; exit codes are in the README ("Exit codes"); problems outside these checks are in',
        "[Troubleshooting](troubleshooting.md).",
        "",
    ]
    for rule in RULES:
        lines += _entry(rule, found.get(rule.name))
    return "\n".join(lines).rstrip("\n") + "\n"
