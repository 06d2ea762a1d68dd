"""`relion-qsub recommend`: the seed's memory formulas, fit warnings, CLI output; bad new profile sections."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from relion_qsub import profile
from relion_qsub.errors import ProfileError, UsageError
from relion_qsub.profile import recipes
from relion_qsub.sitetools import recommend

ROOT = Path(__file__).resolve().parent.parent
QSUB = str(ROOT / "bin" / "relion-qsub")
BIOWULF = profile.load("biowulf")


def qsub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([QSUB, "recommend", *args], capture_output=True, text=True, timeout=60, check=False)


def test_seed_formulas() -> None:
    # seed: "3710 * 3838 * (49 + 2 + 1) * 4, or ~ 2.7 GB"
    assert recommend.motion_bytes(3710, 3838, 49, 1) == 3710 * 3838 * 52 * 4
    assert round(recommend.motion_bytes(3710, 3838, 49, 1) / 1e9, 1) == 3.0  # 2.96e9 B = 2.76 GiB
    assert round(recommend.motion_bytes(3710, 3838, 49, 1) / recommend.GIB, 1) == 2.8
    # seed: "100,000 particles of box size 350 pixels would need ~43 GB of RAM per MPI task" (45.6 GiB exactly)
    assert recommend.preread_bytes(100_000, 350) == 100_000 * 350 * 350 * 4


def test_memory_units() -> None:
    assert recipes.memory_mb("4200m") == 4200 and recipes.memory_mb("20g") == 20480 and recipes.memory_mb("500") == 500
    assert recipes.memory_mb("0") == 0 and recipes.memory_mb("1t") == 1024 * 1024 and recipes.memory_mb("lots") is None


def test_table_is_copyable_and_json_matches() -> None:
    text = qsub("class_gpu", "--node-type", "p100")
    assert text.returncode == 0, text.stderr
    assert (
        "  Number of MPI procs:  20\n" in text.stdout
        and "  Gres:                 lscratch:650,gpu:p100:4\n" in text.stdout
    )
    assert "Which GPUs to use:                    (leave blank)" in text.stdout
    data = json.loads(qsub("class_gpu", "--node-type", "p100", "--json").stdout)
    assert len(data) == 1 and data[0]["running"]["Number of threads:"] == "2" and data[0]["warnings"] == []


def test_preread_that_does_not_fit_warns() -> None:
    data = json.loads(qsub("vdam", "--node-type", "p100", "--particles", "1000000", "--box", "400", "--json").stdout)
    assert any("does not fit a p100 node" in w for w in data[0]["warnings"])
    ok = json.loads(qsub("vdam", "--node-type", "p100", "--particles", "10000", "--box", "200", "--json").stdout)
    assert ok[0]["warnings"] == [] and "per MPI task" in ok[0]["estimates"][0]


def test_motion_correction_over_allocation_warns() -> None:
    # 16g x 1 thread = 16 GiB per task; 8k x 8k x 200 frames needs ~51 GiB.
    data = json.loads(
        qsub(
            "motcorrel",
            "--node-type",
            "x2695",
            "--threads",
            "1",
            "--width",
            "8000",
            "--height",
            "8000",
            "--frames",
            "200",
            "--json",
        ).stdout
    )
    warnings = data[0]["warnings"]
    assert any("motion correction needs" in w and "it gets 16.0 GiB" in w for w in warnings), warnings


def test_request_beyond_the_node_warns() -> None:
    data = json.loads(qsub("Class2D_gpu", "--mpi", "20", "--threads", "8", "--json").stdout)
    warnings = " | ".join(data[0]["warnings"])
    assert "p100 GPUs hang above 2" in warnings
    cpu = json.loads(qsub("refine", "--node-type", "x2695", "--threads", "64", "--mpi", "64", "--json").stdout)
    text = " | ".join(cpu[0]["warnings"])
    assert "64 threads per MPI proc but a x2695 node has 56 CPUs" in text and "not what this recipe recommends" in text


def test_jobtype_lookup() -> None:
    [(recipe, node)] = recommend.find_recipes(BIOWULF, "class2d_gpu", None)
    assert (recipe.key, node) == ("class_gpu", "p100")
    assert [r.key for r, _ in recommend.find_recipes(BIOWULF, "Class2D", "x2695")] == ["class_cpu"]
    # A RELION job type as users name it: every recipe for it (the title says "Class2D & Class3D").
    for word in ("Class3D", "class3d", "relion.class3d", "3D classification"):
        assert [r.key for r, _ in recommend.find_recipes(BIOWULF, word, None)] == ["class_gpu", "class_cpu"]
    assert [r.key for r, _ in recommend.find_recipes(BIOWULF, "Polish", None)] == ["refine"]
    with pytest.raises(UsageError, match=r"no recipe 'nosuch'.*known: motioncor2.*RELION job type \(MotionCorr"):
        recommend.find_recipes(BIOWULF, "nosuch", None)
    with pytest.raises(UsageError, match="biowulf has no recipe for ModelAngelo"):
        recommend.find_recipes(BIOWULF, "ModelAngelo", None)


def test_recommend_class3d_and_the_help_examples_work(capsys: pytest.CaptureFixture[str]) -> None:
    """`recommend Class3D` failed with "no recipe 'Class3D'"; every example in --help must run."""
    help_text = recommend._parser().format_help()
    examples = [line.split()[2:] for line in help_text.splitlines() if line.strip().startswith("relion-qsub recommend")]
    assert ["Class3D"] in examples
    for argv in examples:
        assert recommend.main([*argv, "--site", "biowulf"]) == 0, argv
    capsys.readouterr()
    assert recommend.main(["Class3D", "--site", "biowulf", "--json"]) == 0
    advice = json.loads(capsys.readouterr().out)
    assert {a["recipe"] for a in advice} == {"class_gpu", "class_cpu"} and len(advice) == 7


def test_cli_errors_are_one_line() -> None:
    proc = qsub("class_gpu", "--node-type", "h100")
    assert proc.returncode == 64 and proc.stderr.count("\n") == 1 and "known: k80" in proc.stderr
    assert qsub("--list").stdout.startswith("recipes in site profile biowulf:")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[queue]\nuse = 'Yes please'\n", "queue.use: expected one of yes, no, true, false"),
        ("[limits]\nnr_mpi = 128\n", "limits.nr_mpi: expected a whole number <= 127 (RELION stores it in a char"),
        ("[limits]\nnr_threads = 0\n", "limits.nr_threads: expected a whole number >= 1"),
        ("[partitions.gpu]\n[node_types.a]\npartition = 'gpux'\ncpus = 4\nmemory = '1g'\n", "node_types.a.partition"),
        ("[partitions.gpu]\n[node_types.a]\npartition = 'gpu'\nmemory = '1g'\n", "node_types.a.cpus: missing"),
        ("[partitions.gpu]\n[node_types.a]\npartition = 'gpu'\ncpus = 4\nmemory = 'lots'\n", "node_types.a.memory"),
        ("[[fields]]\noption = 'time'\n", "fields[1].label"),
        ("[tools]\nctfind = '/x'\n", "tools.ctfind: unknown key; did you mean tools.ctffind?"),
        ("[recipes.x.rows.h100]\nqueue = 'gpu'\n", "recipes.x.rows.h100: expected a node type"),
        ("[recipes.x.rows.any]\nmpi = 'lots'\nqueue = 'q'\n", "recipes.x.rows.any.mpi: expected a number of MPI"),
        ("[recipes.x.rows.any]\nmpi = 2\n", "recipes.x.rows.any.queue"),
        ("[job_templates.D]\nrecipe = 'nosuch'\n", "job_templates.D.recipe: expected one of the [recipes]"),
        ("[launcher]\nvariable = 'RELION STD'\n", "launcher.variable: expected an environment variable name"),
    ],
)
def test_bad_new_sections_name_file_key_and_expectation(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ProfileError) as info:
        profile.load(str(path), full=True)
    assert str(path) in str(info.value) and message in str(info.value)


def test_a_template_directory_gives_its_node_type_and_node_warnings() -> None:
    # "CtfFind" is the template directory (built for x2695); "ctffind" the recipe, whose one row is "any".
    assert recommend.find_recipes(BIOWULF, "CtfFind", None) == [(BIOWULF.profile.recipes["ctffind"], "x2695")]
    assert recommend.find_recipes(BIOWULF, "ctffind", None) == [(BIOWULF.profile.recipes["ctffind"], None)]
    assert recommend.find_recipes(BIOWULF, "GCTF", None)[0][1] == "p100"
    text = qsub("CtfFind", "--threads", "60")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("CTFRefinement using cttfind4 on x2695 (") and "on any node" not in text.stdout
    assert "60 threads per MPI proc but a x2695 node has 56 CPUs" in text.stdout
    data = json.loads(qsub("CtfFind", "--threads", "60", "--json").stdout)
    assert data[0]["node_type"] == "x2695" and any("has 56 CPUs" in w for w in data[0]["warnings"])
    anywhere = json.loads(qsub("ctffind", "--threads", "60", "--json").stdout)
    assert anywhere[0]["node_type"] == "any" and not any("CPUs" in w for w in anywhere[0]["warnings"])


@pytest.mark.parametrize(
    ("directives", "per_node"),
    [
        ("--ntasks-per-node=3", 3),
        ("--ntasks-per-node 3", 3),
        ("--ntasks-per-n=3", 3),  # an unambiguous prefix, as sbatch reads it
        ("--nodes=2 --ntasks-per-node=3 --ntasks-per-node=2", 2),  # the last wins
        ("--comment='--ntasks-per-node=3'", None),  # a value, not an option
        ("", None),
    ],
)
def test_tasks_per_node_is_read_by_option_name(directives: str, per_node: int | None) -> None:
    row = recipes.Row("x2695", recipes.Mpi(8), 2, "multinode", directives=directives)
    assert recommend.fixed_tasks_per_node(row) == per_node
    node = BIOWULF.profile.node_types["x2695"]
    assert recommend.tasks_per_node(row, node, 8, 2) == (per_node or 8)


@pytest.mark.parametrize(
    "directives", ["--exclusive", "--exclusive=user", "--exclusive=mcs", "--exclusi", "-N1 --exclusive"]
)
def test_whole_node_memory_with_every_spelling_of_exclusive(directives: str) -> None:
    row = recipes.Row("x2695", recipes.Mpi(4), 2, "multinode", memory="0", directives=directives)
    node = BIOWULF.profile.node_types["x2695"]
    assert recommend.memory_per_task_mb(BIOWULF, row, node, 2, 4) == node.memory_mb // 4
    shared = recipes.Row("x2695", recipes.Mpi(4), 2, "multinode", memory="0", directives="--comment=exclusive")
    assert recommend.memory_per_task_mb(BIOWULF, shared, node, 2, 4) == 0
