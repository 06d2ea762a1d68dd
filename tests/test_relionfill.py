"""tests/relionfill.py against its rules, and byte for byte against RELION 3.1.3's run_submit.script.

The ``relion`` tests drive Debian's ``relion_pipeliner`` without a GUI or a cluster: ``--addJob`` (or
``--addJobFromStar``) then ``--RunJobs`` with a "Queue submit command" that is a tiny script of ours.
RELION writes ``<jobdir>run_submit.script`` from the template, runs
``<our script> <jobdir>run_submit.script &`` and then waits for a ``RELION_JOB_EXIT_*`` file, which our
script creates at once. The commands RELION put in the script are read back from ``<jobdir>note.txt``
and handed to :func:`relionfill.fill`, whose output must equal RELION's file.

Without ``relion_pipeliner`` those tests skip, but fail when ``RELION_QSUB_REQUIRE_SLURM=1`` (as in
``make test`` and CI).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

from tests.relionfill import (
    add_pipeline_control,
    fill,
    number,
    placeholders,
    relion_command,
    which,
)

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
BIOWULF = (CORPUS / "templates" / "biowulf_common.sh").read_text()
BIOWULF_SEED_SHA256 = "45b0050ace98344f120a1c03de0c26952ff845c43707c1328521df3f413f9f06"
BIOWULF_LABELS = {
    1: "Walltime",
    2: "Memory Per Thread",
    3: "Gres",
    4: "SBATCH Directives",
    5: "SBATCH Directives",
    6: "SBATCH Directives",
}


# ----------------------------------------------------------------------------------------------------
# fill() on its own


def test_placeholders_and_trailing_blank_line() -> None:
    template = (
        "#!/bin/bash\n"
        "#SBATCH --ntasks=XXXmpinodesXXX --cpus-per-task=XXXthreadsXXX\n"
        "# cores=XXXcoresXXX dedicated=XXXdedicatedXXX nodes=XXXnodesXXX\n"
        "#SBATCH -J XXXnameXXX -p XXXqueueXXX -e XXXerrfileXXX -o XXXoutfileXXX\n"
        "srun XXXcommandXXX\n"
    )
    cmd = relion_command("relion_refine", "--o Class2D/job012/run", jobdir="Class2D/job012/", mpi=4)
    got = fill(template, jobdir="Class2D/job012/", commands=[cmd], mpi=4, threads=3, queue="gpu", dedicated=8)
    assert got == (
        "#!/bin/bash\n"
        "#SBATCH --ntasks=4 --cpus-per-task=3\n"
        "# cores=12 dedicated=8 nodes=2\n"
        "#SBATCH -J Class2D/job012/ -p gpu -e Class2D/job012/run.err -o Class2D/job012/run.out\n"
        "srun `which relion_refine_mpi` --o Class2D/job012/run --pipeline_control Class2D/job012/\n"
        "\n"
    )


@pytest.mark.parametrize(
    ("mpi", "threads", "dedicated", "nodes"),
    [(4, 3, 1, 12), (4, 3, 8, 2), (20, 4, 40, 2), (65, 16, 56, 19), (1, 1, 64, 1), (5, 4, 4, 5)],
)
def test_nodes_is_ceil_of_cores_over_dedicated(mpi: int, threads: int, dedicated: int, nodes: int) -> None:
    table = placeholders(jobdir="X/job001/", mpi=mpi, threads=threads, dedicated=dedicated)
    assert table["XXXnodesXXX"] == str(nodes)
    assert table["XXXcoresXXX"] == str(mpi * threads)


def test_numbers_print_like_relion_floattostring() -> None:
    assert [number(n) for n in (1, 12, 999999, 1000000, 1001000, 16777217)] == [
        "1",
        "12",
        "999999",
        "1e+06",
        "1.001e+06",
        "1.67772e+07",
    ]


def test_unset_extras_stay_literal_and_empty_extras_are_empty() -> None:
    template = "#SBATCH --time=XXXextra1XXX\n#SBATCH --gres=XXXextra3XXX\n#SBATCH XXXextra4XXX\n"
    got = fill(template, jobdir="J/job001/", commands=[], extras={1: "", 3: ""})
    assert got == "#SBATCH --time=\n#SBATCH --gres=\n#SBATCH XXXextra4XXX\n\n"


def test_mpi_relion_command_gets_the_line_everything_else_is_bare() -> None:
    template = "before\n${RELION_STD_LAUNCHER} --mem-per-cpu=XXXextra2XXX XXXcommandXXX\nafter\n"
    jobdir = "MultiBody/job030/"
    commands = [
        relion_command("relion_refine", "--continue x_optimiser.star --o MultiBody/job030/run", jobdir=jobdir, mpi=3),
        relion_command(
            "relion_flex_analyse",
            "--PCA_orient --o MultiBody/job030/analyse",
            jobdir=jobdir,
            mpi=3,
            mpi_capable=False,
        ),
        "echo done > MultiBody/job030/done.txt",
    ]
    got = fill(template, jobdir=jobdir, commands=commands, mpi=3, extras={2: "4g"})
    assert got.splitlines() == [
        "before",
        "${RELION_STD_LAUNCHER} --mem-per-cpu=4g " + commands[0],
        commands[1],
        commands[2],
        "after",
        "",
    ]


def test_with_one_mpi_process_every_relion_command_gets_the_line() -> None:
    jobdir = "InitialModel/job015/"
    commands = add_pipeline_control(
        [
            "`which relion_refine` --o InitialModel/job015/run --grad --denovo_3dref",
            "rm -f InitialModel/job015/RELION_JOB_EXIT_SUCCESS",
            "`which relion_align_symmetry` --i InitialModel/job015/run_it200_model.star",
            "touch InitialModel/job015/RELION_JOB_EXIT_SUCCESS",
        ],
        jobdir,
    )
    assert "pipeline_control" not in commands[1] + commands[3]  # RELION_ in capitals is not relion_
    got = fill("srun XXXcommandXXX\n", jobdir=jobdir, commands=commands, mpi=1, threads=16)
    assert got.splitlines() == ["srun " + commands[0], commands[1], "srun " + commands[2], commands[3], ""]


def test_mpi_means_the_backticked_mpi_binary() -> None:
    # RELION looks for "_mpi`": a bare relion_x_mpi without RELION's backticks is not recognised.
    got = fill("srun XXXcommandXXX\n", jobdir="J/", commands=["relion_refine_mpi --o J/run"], mpi=2)
    assert got == "relion_refine_mpi --o J/run\n\n"


def test_every_command_line_of_the_template_gets_every_command() -> None:
    template = "echo XXXcommandXXX\nsrun XXXcommandXXX\n"
    got = fill(template, jobdir="J/", commands=["`which relion_a_mpi`", "`which relion_b_mpi`"], mpi=2)
    assert got == "echo `which relion_a_mpi`\necho `which relion_b_mpi`\nsrun `which relion_a_mpi`\n" + (
        "srun `which relion_b_mpi`\n\n"
    )


def test_only_the_first_command_placeholder_of_a_line_is_replaced() -> None:
    got = fill("a XXXcommandXXX b XXXcommandXXX\n", jobdir="J/", commands=["`which relion_x`"])
    assert got == "a `which relion_x` b XXXcommandXXX\n\n"


def test_a_command_line_without_commands_vanishes() -> None:
    assert fill("a\nsrun XXXcommandXXX\nb\n", jobdir="J/", commands=[]) == "a\nb\n\n"


def test_lines_are_split_like_getline() -> None:
    assert fill("a\r\nb", jobdir="J/", commands=[]) == "a\r\nb\n\n"
    assert fill("a\n\n", jobdir="J/", commands=[]) == "a\n\n\n"
    assert fill("", jobdir="J/", commands=[]) == "\n"


def test_placeholders_are_applied_in_std_map_order() -> None:
    # An extra's value is expanded further by the placeholders sorting after XXXextraNXXX, not earlier ones.
    extras = {1: "n=XXXnameXXX q=XXXqueueXXX c=XXXcoresXXX", 10: "<XXXextra1XXX>", 2: "<XXXextra10XXX>"}
    got = fill("XXXextra1XXX|XXXextra10XXX|XXXextra2XXX\n", jobdir="J/", commands=[], queue="gpu", extras=extras)
    assert got == "n=J/ q=gpu c=XXXcoresXXX|<n=J/ q=gpu c=XXXcoresXXX>|<XXXextra10XXX>\n\n"


def test_a_command_placeholder_brought_in_by_an_extra_counts() -> None:
    got = fill("XXXextra1XXX\n", jobdir="J/", commands=["`which relion_x`"], extras={1: "srun XXXcommandXXX"})
    assert got == "srun `which relion_x`\n\n"


def test_which_and_relion_command() -> None:
    assert which("relion_refine", mpi=4) == "`which relion_refine_mpi`"
    assert which("relion_refine", mpi=1) == "`which relion_refine`"
    assert which("relion_reconstruct", mpi=4, mpi_capable=False) == "`which relion_reconstruct`"
    assert relion_command("relion_refine", "--o C/job001/run ", jobdir="C/job001/", mpi=2) == (
        "`which relion_refine_mpi` --o C/job001/run  --pipeline_control C/job001/"
    )
    assert add_pipeline_control(["touch C/job001/RELION_JOB_EXIT_SUCCESS"], "C/job001/") == [
        "touch C/job001/RELION_JOB_EXIT_SUCCESS"
    ]
    with pytest.raises(ValueError, match="serial name"):
        relion_command("relion_refine_mpi", "", jobdir="C/job001/")
    with pytest.raises(ValueError, match="not a RELION program"):
        relion_command("topaz", "", jobdir="C/job001/")


@pytest.mark.parametrize("kwargs", [{"mpi": 0}, {"threads": 0}, {"dedicated": 0}, {"extras": {0: "x"}}])
def test_nonsense_values_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        fill("x\n", jobdir="J/", commands=[], **kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------
# The corpus is what its generator makes


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("corpus_generate", CORPUS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_corpus_files_equal_generator_output() -> None:
    gen = _generator()
    rendered: dict[str, str] = gen.render_all()
    on_disk = {p.name: p.read_bytes().decode() for p in CORPUS.glob("*.script")}
    assert sorted(on_disk) == sorted(rendered), "run `python tests/corpus/generate.py`"
    for name, text in rendered.items():
        assert on_disk[name] == text, f"{name} is stale: run `python tests/corpus/generate.py`"
    readme = (CORPUS / "README.md").read_text()
    assert readme == gen.render_readme(readme), "README.md's case table is stale: run the generator"


def test_corpus_keeps_the_seed_rows_as_they_are() -> None:
    scripts = {p.stem: p.read_bytes().decode() for p in CORPUS.glob("*.script")}
    assert len(scripts) >= 50
    typo = sorted(name for name, text in scripts.items() if "--exlusive" in text)
    assert typo == ["class2d_gpu_k80", "subtomo_denovo_k80", "vdam_k80"]
    for name, text in scripts.items():
        assert text.endswith("\n\n"), name
    assert "#SBATCH XXXextra4XXX\n" in scripts["extras_4_to_6_unset"]
    assert "#SBATCH --gres=\n" in scripts["empty_gres_and_time"]
    assert "\r\n" in scripts["crlf_template"]
    assert "\n`which relion_flex_analyse` " in scripts["multibody_flex_analyse"]
    v100 = scripts["class2d_gpu_v100"]
    assert "--preread_images" in v100 and "--scratch_dir" not in v100
    assert "`which relion_refine` --o Class2D/job017/run --grad " in scripts["vdam_k80"]


def test_biowulf_template_is_the_seed_verbatim() -> None:
    assert BIOWULF.startswith("#!/bin/bash\n#SBATCH --ntasks=XXXmpinodesXXX\n")
    assert BIOWULF.endswith("${RELION_STD_LAUNCHER} --mem-per-cpu=XXXextra2XXX XXXcommandXXX\n")
    # The corpus copy is the seed page's common.sh verbatim (tests/corpus/README.md); its digest was recorded when it
    # was checked against the page, so an edit of the copy fails here instead of passing for the seed's template.
    assert hashlib.sha256(BIOWULF.encode()).hexdigest() == BIOWULF_SEED_SHA256


# ----------------------------------------------------------------------------------------------------
# Byte for byte against relion_pipeliner


@dataclass
class RelionRun:
    """One job run through relion_pipeliner: what RELION wrote and the commands it ran."""

    jobdir: str
    script: str
    commands: list[str]


@dataclass
class Case:
    name: str
    template: str
    job: str  # --addJob type, or a job.star text for --addJobFromStar
    options: dict[str, str]
    mpi: int
    threads: int
    queue: str
    dedicated: int = 1
    extra_count: int | None = None  # RELION_QSUB_EXTRA_COUNT, None: unset (RELION's default 2)
    labels: dict[int, str] = field(default_factory=dict)  # RELION_QSUB_EXTRAn
    extras: dict[int, str] = field(default_factory=dict)  # qsub_extraN values given to RELION
    files: dict[str, str] = field(default_factory=dict)  # inputs the job needs to find
    expect_commands: int = 1


@pytest.fixture(scope="module")
def pipeliner() -> str:
    path = shutil.which("relion_pipeliner")
    if path is None:
        why = "relion_pipeliner is not installed (Debian package relion): run `make deps`"
        if os.environ.get("RELION_QSUB_REQUIRE_SLURM") == "1":
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return path


EMPTY = '""'  # an empty value in a STAR file
SUBMIT = """#!/bin/sh
# A stand-in "Queue submit command": keep a copy of the script and tell RELION the job has finished.
cp "$1" "$1.submitted"
touch "$(dirname "$1")/RELION_JOB_EXIT_SUCCESS"
"""


def _commands_from_note(note: str) -> list[str]:
    """The command lines of the last "with the following command(s):" block of a job's note.txt."""
    blocks = note.split(" ++++ with the following command(s): \n")
    assert len(blocks) > 1, note
    return blocks[-1].split("\n ++++ \n")[0].split("\n")


def run_relion(pipeliner: str, project: Path, case: Case) -> RelionRun:
    project.mkdir()
    (project / "default_pipeline.star").write_text("data_pipeline_general\n\n_rlnPipeLineJobCounter 1\n")
    for name, text in case.files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    (project / "template.sh").write_bytes(case.template.encode())
    submit = project / "submit.sh"
    submit.write_text(SUBMIT)
    submit.chmod(0o755)

    env = {k: v for k, v in os.environ.items() if not k.startswith("RELION_")}
    if case.extra_count is not None:
        env["RELION_QSUB_EXTRA_COUNT"] = str(case.extra_count)
    env.update({f"RELION_QSUB_EXTRA{n}": label for n, label in case.labels.items()})

    options = {
        **case.options,
        "do_queue": "Yes",
        "qsub": str(submit),
        "qsubscript": str(project / "template.sh"),
        "queuename": case.queue,
        "min_dedicated": str(case.dedicated),
        **{f"qsub_extra{n}": value for n, value in case.extras.items()},
    }
    if "data_job" in case.job:  # a job.star for --addJobFromStar
        rows = "".join(f"{k} {v or EMPTY}\n" for k, v in options.items())
        (project / "job_in.star").write_text(case.job + rows)
        add = [pipeliner, "--addJobFromStar", "job_in.star"]
    else:
        add = [
            pipeliner,
            "--addJob",
            case.job,
            "--addJobOptions",
            ";".join(f"{k} == {v}" for k, v in options.items()),
        ]

    def run(argv: list[str]) -> str:
        proc = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, f"{argv}: {proc.stdout}\n{proc.stderr}"
        return proc.stdout + proc.stderr

    run(add)
    jobdirs = sorted(p for p in project.glob("*/job001") if p.is_dir())
    assert len(jobdirs) == 1, f"{case.name}: no job directory after --addJob: {sorted(project.iterdir())}"
    jobdir = f"{jobdirs[0].parent.name}/job001/"
    log = run([pipeliner, "--RunJobs", jobdir, "--sec_wait_after", "0"])
    script = project / jobdir / "run_submit.script"
    assert script.exists(), f"{case.name}: RELION wrote no run_submit.script:\n{log}"
    submitted = project / jobdir / "run_submit.script.submitted"
    assert submitted.read_bytes() == script.read_bytes(), "the submit command was not given the script"
    commands = _commands_from_note((project / jobdir / "note.txt").read_text())
    return RelionRun(jobdir=jobdir, script=script.read_bytes().decode(), commands=commands)


COMMON_INPUTS = {"particles.star": "", "ref.mrc": ""}
MULTIBODY_STAR = """
# version 30001

data_job

_rlnJobType                            19
_rlnJobIsContinue                       0

# version 30001

data_joboptions_values

loop_
_rlnJobOptionVariable #1
_rlnJobOptionValue #2
fn_in Refine3D/job010/run_it017_optimiser.star
do_analyse Yes
"""
BODIES = "data_\nloop_\n_rlnBodyMaskName #1\n_rlnBodyRotateRelativeTo #2\nmask1.mrc 2\nmask2.mrc 1\n"
RELION5_STYLE = """#!/bin/bash
#SBATCH --job-name=XXXnameXXX
#SBATCH --partition=XXXqueueXXX
#SBATCH --nodes=XXXnodesXXX
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH --ntasks-per-node=XXXdedicatedXXX
#SBATCH --cpus-per-task=XXXthreadsXXX
#SBATCH --time=XXXextra1XXX
#SBATCH --error=XXXerrfileXXX
#SBATCH --output=XXXoutfileXXX
# XXXcoresXXX cores in all
srun --mpi=pmix XXXcommandXXX
"""
# CRLF on one line, no newline at the end, two placeholders of a kind on a line, two XXXcommandXXX on a line,
# extras whose values hold placeholders (expanded or not depending on std::map order), a field 10.
TORTURE = (
    "#!/bin/sh\r\n"
    "#SBATCH -n XXXmpinodesXXX -c XXXthreadsXXX # XXXmpinodesXXX x XXXthreadsXXX\n"
    "#SBATCH XXXextra1XXX\n"
    "#SBATCH XXXextra10XXX\n"
    "#SBATCH --comment=XXXextra3XXX\n"
    "\n"
    "mpirun -n XXXmpinodesXXX XXXcommandXXX # then XXXcommandXXX\n"
    "echo done XXXnameXXX"
)

CASES = [
    Case(
        name="class2d_mpi4_biowulf",
        template=BIOWULF,
        job="Class2D",
        options={
            "fn_img": "particles.star",
            "nr_mpi": "4",
            "nr_threads": "3",
            "use_gpu": "Yes",
            "scratch_dir": "/lscratch/$SLURM_JOB_ID",
        },
        mpi=4,
        threads=3,
        queue="gpu",
        dedicated=8,
        extra_count=6,
        labels={n: BIOWULF_LABELS[n] for n in (1, 2, 3)},  # 4-6 unset: XXXextra4..6XXX stay literal
        extras={1: "2:00:00", 3: ""},  # field 2 exists and keeps its empty default; empty Gres: --gres=
        files=COMMON_INPUTS,
    ),
    Case(
        name="refine3d_mpi1_preread",
        template=BIOWULF,
        job="Refine3D",
        options={
            "fn_img": "particles.star",
            "fn_ref": "ref.mrc",
            "nr_mpi": "1",
            "nr_threads": "16",
            "do_preread_images": "Yes",
            "scratch_dir": "/lscratch/$SLURM_JOB_ID",
        },
        mpi=1,
        threads=16,
        queue="multinode",
        extra_count=6,
        labels=BIOWULF_LABELS,
        extras={1: "2-00:00:00", 2: "4g", 3: "lscratch:400", 4: "--constraint=x2695", 5: "", 6: ""},
        files=COMMON_INPUTS,
    ),
    Case(
        name="multibody_mpi3_two_commands",
        template=BIOWULF,
        job=MULTIBODY_STAR,
        # "_mpi" without RELION's backtick in the serial command must not win it the launcher line
        options={"nr_mpi": "3", "nr_threads": "4", "fn_bodies": "bodies_mpi.star"},
        mpi=3,
        threads=4,
        queue="gpu",
        files={"bodies_mpi.star": BODIES, "Refine3D/job010/run_it017_optimiser.star": ""},
        expect_commands=2,
    ),
    Case(
        name="multibody_mpi1_two_commands",
        template=BIOWULF,
        job=MULTIBODY_STAR,
        options={"nr_mpi": "1", "nr_threads": "4", "fn_bodies": "bodies.star"},
        mpi=1,
        threads=4,
        queue="gpu",
        files={"bodies.star": BODIES, "Refine3D/job010/run_it017_optimiser.star": ""},
        expect_commands=2,
    ),
    Case(
        name="external_non_relion_command",
        template=BIOWULF,
        job="External",
        options={"fn_exe": "my_picker.sh", "in_mic": "mics.star", "nr_threads": "2"},
        mpi=1,
        threads=2,
        queue="norm",
        extra_count=6,
        labels=BIOWULF_LABELS,
        extras={1: "1:00:00", 2: "2g", 3: "lscratch:10", 4: "", 5: "", 6: ""},
        files={"mics.star": ""},
    ),
    Case(
        name="relion5_style_nodes",
        template=RELION5_STYLE,
        job="Class3D",
        options={"fn_img": "particles.star", "fn_ref": "ref.mrc", "nr_mpi": "5", "nr_threads": "4"},
        mpi=5,
        threads=4,
        queue="gpu",
        dedicated=8,
        labels={1: "Walltime"},
        extras={1: "8:00:00"},
        files=COMMON_INPUTS,
    ),
    Case(
        name="relion5_style_default_dedicated",
        template=RELION5_STYLE,
        job="Class3D",
        options={"fn_img": "particles.star", "fn_ref": "ref.mrc", "nr_mpi": "4", "nr_threads": "3"},
        mpi=4,
        threads=3,
        queue="gpu",
        files=COMMON_INPUTS,
    ),
    Case(
        name="torture",
        template=TORTURE,
        job="Class2D",
        options={"fn_img": "particles.star", "nr_mpi": "2", "nr_threads": "1"},
        mpi=2,
        threads=1,
        queue="q",
        extra_count=11,
        labels={1: "a", 3: "c", 10: "j"},
        extras={1: "--job-name=XXXnameXXX --cores=XXXcoresXXX", 10: "--x=XXXextra1XXX", 3: "'two words'"},
        files=COMMON_INPUTS,
    ),
    Case(
        name="million_cores",
        template="# XXXmpinodesXXX XXXthreadsXXX XXXcoresXXX XXXnodesXXX\nXXXcommandXXX\n",
        job="Class2D",
        options={"fn_img": "particles.star", "nr_mpi": "1000", "nr_threads": "1001"},
        mpi=1000,
        threads=1001,
        queue="q",
        dedicated=3,
        files=COMMON_INPUTS,
    ),
]


@pytest.mark.relion
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fill_matches_relion_pipeliner_byte_for_byte(pipeliner: str, tmp_path: Path, case: Case) -> None:
    got = run_relion(pipeliner, tmp_path / "project", case)
    assert len(got.commands) == case.expect_commands, got.commands
    for command in got.commands:
        if "relion_" in command:
            assert command.startswith("`which relion_"), command
            assert command.endswith(" --pipeline_control " + got.jobdir), command
    expected = fill(
        case.template,
        jobdir=got.jobdir,
        commands=got.commands,
        mpi=case.mpi,
        threads=case.threads,
        queue=case.queue,
        dedicated=case.dedicated,
        extras={n: case.extras.get(n, "") for n in case.labels if n <= (case.extra_count or 2)},
    )
    assert got.script == expected


@pytest.mark.relion
def test_relion_shapes_worth_knowing(pipeliner: str, tmp_path: Path) -> None:
    """The facts the corpus relies on, read off RELION itself."""
    by_name = {c.name: c for c in CASES}

    c2d = run_relion(pipeliner, tmp_path / "c2d", by_name["class2d_mpi4_biowulf"])
    assert c2d.jobdir == "Class2D/job001/"
    (command,) = c2d.commands
    assert command.startswith("`which relion_refine_mpi` --o Class2D/job001/run ")
    assert " --scratch_dir /lscratch/$SLURM_JOB_ID " in command
    lines = c2d.script.split("\n")
    assert "#SBATCH --gres=" in lines and "#SBATCH --mem-per-cpu=" in lines
    assert "#SBATCH XXXextra4XXX" in lines
    assert "${RELION_STD_LAUNCHER} --mem-per-cpu= `which relion_refine_mpi` --o" in c2d.script
    assert c2d.script.endswith(" --pipeline_control Class2D/job001/\n\n")

    r3d = run_relion(pipeliner, tmp_path / "r3d", by_name["refine3d_mpi1_preread"])
    (command,) = r3d.commands
    assert command.startswith("`which relion_refine` --o Refine3D/job001/run --auto_refine")
    assert "--preread_images" in command and "--scratch_dir" not in command

    mb = run_relion(pipeliner, tmp_path / "mb", by_name["multibody_mpi3_two_commands"])
    assert mb.commands[1].startswith("`which relion_flex_analyse` ")
    assert "_mpi" in mb.commands[1] and "_mpi`" not in mb.commands[1]
    assert "\n" + mb.commands[1] + "\n" in mb.script  # bare: no launcher prefix

    ext = run_relion(pipeliner, tmp_path / "ext", by_name["external_non_relion_command"])
    assert ext.commands == ["my_picker.sh --o External/job001/ --in_mics mics.star --j 2 "]
    assert "\nmy_picker.sh --o External/job001/" in ext.script
