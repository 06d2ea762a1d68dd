"""`relion-qsub site init|validate|reference` (issue 14). Pure tests read Slurm 22.05.8 output captured on the
testbed (tests/data/slurm-22.05: `scontrol show partition -o`, `scontrol show node -o`, `sinfo --json` cut to the
keys read); the real-cluster tests run init -> validate --live on the testbed."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from relion_qsub import proc, profile
from relion_qsub.cli import qsub_main
from relion_qsub.errors import CommandError, UsageError
from relion_qsub.relion import jobtypes
from relion_qsub.sitetools import cluster, livecheck, recommend, siteinit
from tests.slurmtools import job_env, run

DATA = Path(__file__).resolve().parent / "data" / "slurm-22.05"
ROOT = Path(__file__).resolve().parent.parent
QSUB = str(ROOT / "bin" / "relion-qsub")
TESTBED = profile.load("testbed")


def _captured(json_works: bool = True):  # type: ignore[no-untyped-def]
    answers = {
        ("scontrol", "show", "partition", "-o"): (DATA / "partitions.txt").read_text(),
        ("scontrol", "show", "node", "-o"): (DATA / "nodes.txt").read_text(),
        ("sinfo", "--json"): (DATA / "sinfo.json").read_text() if json_works else "",
        ("scontrol", "show", "config"): "ClusterName             = relionqsub\n",
    }

    def runner(argv: list[str], timeout: float | None = None) -> proc.Result:
        key = tuple(argv)
        if key == ("sinfo", "--json") and not json_works:
            return proc.Result(key, 1, "", "sinfo: unrecognized option '--json'")
        return proc.Result(key, 0, answers[key], "")

    return runner


def test_partitions_and_nodes_parse_as_slurm_reports_them() -> None:
    parts = cluster.parse_partitions((DATA / "partitions.txt").read_text())
    assert [(p.name, p.default, p.max_time, p.max_nodes, p.total_nodes, p.oversubscribe) for p in parts] == [
        ("gpu", False, "10-00:00:00", 0, 4, "NO"),
        ("multinode", False, "10-00:00:00", 0, 2, "NO"),
        ("norm", True, "10-00:00:00", 0, 2, "NO"),
        ("service", False, "00:10:00", 0, 1, "FORCE:16"),
    ]
    from_json = cluster.parse_nodes_json((DATA / "sinfo.json").read_text())
    from_text = cluster.parse_nodes_text((DATA / "nodes.txt").read_text())
    for nodes in (from_json, from_text):
        cn1, cn5 = nodes[0], nodes[4]
        assert (cn1.name, cn1.cpus, cn1.memory_mb, cn1.gpus(), cn1.features) == (
            "cn1",
            16,
            64000,
            ("p100", 4),
            ("gpup100",),
        )
        assert cn1.gres[("lscratch", "")] == 800 and cn1.partitions == ("gpu",)
        assert (cn5.cpus, cn5.memory_mb, cn5.gpus(), cn5.partitions) == (32, 128000, ("", 0), ("multinode", "norm"))
    assert cluster.parse_gres("gpu:a100:4(S:0-1),lscratch:3200") == {("gpu", "a100"): 4, ("lscratch", ""): 3200}
    assert cluster.parse_gres("(null)") == {}


@pytest.mark.parametrize("json_works", [True, False])
def test_init_writes_a_profile_that_validates_unchanged(tmp_path: Path, json_works: bool) -> None:
    text = siteinit.init("", _captured(json_works))
    path = tmp_path / "relionqsub.toml"
    path.write_text(text)
    generated = profile.load(str(path), {"RELION_QSUB_NO_CACHE": "1"}, full=True)
    assert generated.name == "relionqsub"  # Slurm's ClusterName
    assert ("sinfo --json" in text) == json_works
    # The partition limits are the testbed's, as testbed.toml states them by hand.
    assert generated.partitions == TESTBED.partitions
    assert {
        n: (t.partition, t.cpus, t.memory_mb, t.gpu_type, t.gpus, t.scratch_gb, t.constraint)
        for n, t in generated.profile.node_types.items()
    } == {
        n: (t.partition, t.cpus, t.memory_mb, t.gpu_type, t.gpus, t.scratch_gb, t.constraint)
        for n, t in TESTBED.profile.node_types.items()
    }
    assert text.count("REVIEW") >= 5
    tried, failures = siteinit.validate(generated, live=False)
    assert tried >= 10 and failures == []


def _every_job_type(path: Path, capsys: pytest.CaptureFixture[str]) -> set[str]:
    """`recommend JOBTYPE` for every RELION job type the project knows; the template directories built."""
    for job in jobtypes.JOB_TYPES:
        assert recommend.main([job.name, "--site", str(path), "--json"]) == 0, job.name
        advice = json.loads(capsys.readouterr().out)
        assert advice and all(a["warnings"] == [] for a in advice), (job.name, advice)
    generated = profile.load(str(path), {"RELION_QSUB_NO_CACHE": "1"}, full=True)
    return {jobtypes.of_directory(t.directory).name for t in generated.profile.template_sets}  # type: ignore[union-attr]


def test_init_learns_every_job_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 22: `site init` gave a new site only Class2D. Now a recipe and a template directory for every job type,
    sized by the seed's rules from this cluster's nodes."""
    path = tmp_path / "new.toml"
    path.write_text(siteinit.init("new", _captured()))
    assert _every_job_type(path, capsys) == {j.name for j in jobtypes.JOB_TYPES}
    data = tomllib.loads(path.read_text())
    recipes, sets = data["recipes"], data["job_templates"]
    # GPU refinement is homogeneous+1 on whole nodes with the GPU type's safe threads (p100: 2) and all scratch.
    assert recipes["class_gpu"]["rows"]["p100"] == {
        "mpi": 20,
        "threads": 2,
        "queue": "gpu",
        "walltime": "8:00:00",
        "memory": "0",
        "gres": "lscratch:800,gpu:p100:4",
        "directives": "--nodes=4 --ntasks-per-node=5 --exclusive",
    }
    assert sets["Class3D_gpu"]["recipe"] == "class_gpu" and sets["Refine3D_gpu"]["recipe"] == "refine_gpu"
    # CPU refinement: odd MPI procs, 16 threads, the node's feature, scratch; CPU nodes get exclusive templates.
    refine = recipes["refine"]["rows"]["x2695"]
    assert (refine["mpi"] % 2, refine["threads"], refine["directives"], refine["gres"]) == (
        1,
        16,
        "--constraint=x2695",
        "lscratch:400",
    )
    assert all(size["mpi"] % 2 for size in sets["Polish"]["sizes"].values())
    # Job types without threads or MPI boxes (RelionJob::initialise) get none.
    assert "threads" not in recipes["ctffind"]["rows"]["x2695"]
    assert (
        recipes["modelangelo"]["rows"]["p100"]["mpi"] == 1 and "threads" not in recipes["modelangelo"]["rows"]["p100"]
    )
    # The VDAM rule: 4 threads per safe GPU thread (seed: p100 2 -> 8), one whole node.
    assert recipes["vdam"]["rows"]["p100"]["threads"] == 8


def test_init_sizes_recipes_from_other_clusters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A cluster of only GPU nodes (two types, one with a 2-day MaxTime) and one of only CPU nodes."""
    parts = [cluster.Partition("gpu", True, "2-00:00:00", 0, 6), cluster.Partition("big", False, "", 0, 2)]
    a100 = cluster.Node("g1", 128, 1024000, {("gpu", "a100"): 8, ("lscratch", ""): 3200}, ("gpua100",), ("gpu",))
    v100 = cluster.Node("g2", 32, 192000, {("gpu", "v100"): 4}, ("gpuv100",), ("gpu",))
    bundled = profile.load("biowulf", full=True)
    text = siteinit.generate("gpus", parts, [a100, v100, v100], bundled, "test")
    path = tmp_path / "gpus.toml"
    path.write_text(text)
    assert _every_job_type(path, capsys) == {j.name for j in jobtypes.JOB_TYPES}
    recipes = tomllib.loads(text)["recipes"]
    assert recipes["class_gpu"]["rows"]["a100"]["directives"] == "--nodes=1 --ntasks-per-node=9 --exclusive"
    assert recipes["class_gpu"]["rows"]["a100"]["threads"] == 4  # a100: 4 safe threads (biowulf's [gpu_types])
    assert recipes["class_gpu"]["rows"]["v100"]["gres"] == "gpu:v100:4"  # no scratch on these nodes
    assert recipes["refine_gpu"]["rows"]["v100"]["walltime"] == "2-00:00:00"  # cut to the partition's MaxTime
    assert recipes["refine"]["rows"]["v100"]["queue"] == "gpu"  # no CPU nodes: CPU programs on GPU nodes
    assert siteinit.validate(profile.load(str(path), {"RELION_QSUB_NO_CACHE": "1"}, full=True), live=False)[1] == []

    cpu = cluster.Node("c1", 64, 256000, {("lscratch", ""): 800}, ("x6140",), ("big",))
    text = siteinit.generate("cpus", parts[1:], [cpu, cpu], bundled, "test")
    (tmp_path / "cpus.toml").write_text(text)
    recipes = tomllib.loads(text)["recipes"]
    assert "class_gpu" not in recipes and recipes["initialmodel_cpu"]["rows"]["x6140"]["mpi"] == 1
    assert recipes["class_cpu"]["rows"]["x6140"]["mpi"] == "2-16"  # 2 nodes x 64 CPUs / 8 threads


def test_init_names_and_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match=re.escape("--name '../x': expected a plain name")):
        siteinit.init("../x", _captured())
    out = tmp_path / "p.toml"
    out.write_text("mine")
    assert qsub_main(["site", "init", "-o", str(out)]) == 64  # exists: refused, not replaced
    assert out.read_text() == "mine" and "exists; give --force" in capsys.readouterr().err


def test_validate_reports_one_line_per_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A recipe whose walltime the partition does not allow: every case built from it fails, each on one line.
    text = (ROOT / "relion_qsub" / "profiles" / "testbed.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(
        text.replace('[partitions.multinode]\nmax_time = "10-00:00:00"', '[partitions.multinode]\nmax_time = "0:10:00"')
    )
    code = qsub_main(["site", "validate", "--site", str(bad)])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert code == 78 and len(lines) >= 5, out
    assert all(
        line.startswith(f"{bad}: ") and "'multinode', 0:10:00 (the job would pend forever)" in line for line in lines
    ), lines
    assert f"{len(lines)} failed" in err


def test_reference_subcommand_prints_the_docs(capsys: pytest.CaptureFixture[str]) -> None:
    assert qsub_main(["site", "reference"]) == 0
    assert capsys.readouterr().out == (ROOT / "docs" / "profile-reference.md").read_text()


@pytest.mark.slurm
def test_init_then_validate_live_on_the_testbed(tmp_path: Path) -> None:
    path = tmp_path / "generated.toml"
    run([QSUB, "site", "init", "--name", "generated", "-o", str(path)], env=job_env(), timeout=60)
    assert tomllib.loads(path.read_text())["partitions"]["norm"]["default"] is True
    proc_ = run([QSUB, "site", "validate", "--site", str(path), "--live"], env=job_env(), check=False, timeout=120)
    assert proc_.returncode == 0 and proc_.stdout == "", proc_.stdout + proc_.stderr
    assert "0 failed and sbatch --test-only" in proc_.stderr
    # Issue 22: the live cluster's profile has a recipe and templates for every job type, and recommend takes each.
    for job in jobtypes.JOB_TYPES:
        shown = run([QSUB, "recommend", job.name, "--site", str(path)], env=job_env(), check=False, timeout=60)
        assert shown.returncode == 0 and "Running tab" in shown.stdout, shown.stdout + shown.stderr
    tree = tmp_path / "templates"
    run([QSUB, "templates", "build", "--site", str(path), "--out", str(tree), "-q"], env=job_env(), timeout=60)
    for directory in ("MotionCor2", "CtfFind", "AutoPick_gpu", "Class2D_gpu", "Class3D_gpu", "Refine3D_gpu"):
        assert (tree / directory / "01_tiny.sh").is_file(), directory
    for directory in ("InitialModel", "Polish", "CtfRefine", "LocalRes", "MultiBody_gpu", "ModelAngelo", "DynaMight"):
        assert list((tree / directory).glob("0*.sh")), directory


@pytest.mark.slurm
def test_validate_live_passes_for_testbed_toml() -> None:
    proc_ = run([QSUB, "site", "validate", "--site", "testbed", "--live"], env=job_env(), check=False, timeout=180)
    assert proc_.returncode == 0 and proc_.stdout == "", proc_.stdout + proc_.stderr


@pytest.mark.slurm
def test_validate_live_finds_what_only_slurm_knows(tmp_path: Path) -> None:
    # The profile believes the CPU nodes have 64 CPUs and 256 GB: its own checks pass, sbatch --test-only does not.
    text = siteinit.init("believer", proc.run)
    for old, new in (
        ("cpus = 32", "cpus = 64"),
        ('memory = "128000"', 'memory = "256000"'),
        ("threads = 16\n", "threads = 40\n"),  # the refine recipe's CPU row (the only 16)
    ):
        text = text.replace(old, new)
    path = tmp_path / "believer.toml"
    path.write_text(text.replace("thread_max = 32", "thread_max = 64"))
    offline = run([QSUB, "site", "validate", "--site", str(path)], env=job_env(), check=False, timeout=60)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    live = run([QSUB, "site", "validate", "--site", str(path), "--live"], env=job_env(), check=False, timeout=120)
    lines = live.stdout.splitlines()
    assert live.returncode == 78 and lines, live.stderr
    # Slurm's own numbers first (issue 22: compared by name with --live), then what sbatch --test-only refuses.
    compared = [line for line in lines if "sbatch --test-only" not in line]
    assert compared == [
        f"{path}: partitions.{part}.{key}: {value} but its largest node has {has}"
        for part in ("multinode", "norm")
        for key, value, has in (("cpus", "64", "32 (Slurm)"), ("memory", "'256000'", "128000 MB (Slurm RealMemory)"))
    ], compared
    built = ("Refine3D_cpu/", "MultiBody_cpu/", "Polish/", "common.sh-refine-x2695")
    tried = lines[len(compared) :]
    assert tried and all(any(what in line for what in built) for line in tried), tried
    assert all(
        line.endswith("sbatch --test-only: allocation failure: Requested node configuration is not available")
        for line in tried
    )


def test_init_proposes_the_sites_home_for_service_jobs() -> None:
    """A partition every job shares (OverSubscribe=FORCE) that takes short jobs only is where the end-watcher waits
    for no compute node (issue 20); its nodes get no RELION recipe, its MaxTime sets no recipe's walltime."""
    norm = cluster.Partition("norm", True, "10-00:00:00", 0, 2)
    assert siteinit.service_home([norm, cluster.Partition("shared", False, "2:00:00", 0, 1, "FORCE:4")]) is None
    assert siteinit.service_home([norm, cluster.Partition("quick", False, "30", 0, 1, "YES:4")]) is None
    service = cluster.Partition("service", False, "00:10:00", 0, 1, "FORCE:16")
    assert siteinit.service_home([norm, service]) is service
    parts = cluster.parse_partitions((DATA / "partitions.txt").read_text())  # the testbed's, with its service
    nodes = cluster.parse_nodes_text((DATA / "nodes.txt").read_text())
    text = siteinit.generate("x", parts, nodes, TESTBED, "scontrol show node")
    assert '[submit]\nwatch_options = ["--partition=service"]\n' in text
    assert 'walltime = "00:10:00"' not in text


def test_init_says_what_it_asks_and_fails_fast_without_a_controller(capsys: pytest.CaptureFixture[str]) -> None:
    """site init was silent for 59 s against a dead controller; now scontrol ping first, with a timeout."""
    calls: list[tuple[tuple[str, ...], float | None]] = []

    def dead(argv: list[str], timeout: float | None = None) -> proc.Result:
        calls.append((tuple(argv), timeout))
        down = "Slurmctld(primary) at vm is DOWN\n*****************************************\n"
        return proc.Result(tuple(argv), 1, down, "")

    with pytest.raises(CommandError, match=r"does not answer scontrol ping: Slurmctld\(primary\) at vm is DOWN"):
        cluster.ping(dead, siteinit.PING_TIMEOUT)
    assert calls == [(("scontrol", "ping"), siteinit.PING_TIMEOUT)]


def test_live_comparison_names_what_slurm_contradicts(tmp_path: Path) -> None:
    text = siteinit.init("", _captured())
    for old, new in (
        ('features = ["x2695"]', 'features = ["x2695", "ib"]'),
        ('[partitions.gpu]\ngpu_types = ["p100"]', '[partitions.gpu]\ngpu_types = ["p100", "a100"]'),
        ("p100 = { safe_threads = 2 }", "p100 = { safe_threads = 2 }\na100 = { safe_threads = 4 }"),
        ('max_time = "10-00:00:00"\nnodes = 2', 'max_time = "2-00:00:00"\nnodes = 2'),
    ):
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "p.toml"
    path.write_text(text + "\n[partitions.bigmem]\ncpus = 64\n")
    site = profile.load(str(path), {"RELION_QSUB_NO_CACHE": "1"}, full=True)
    parts = cluster.parse_partitions((DATA / "partitions.txt").read_text())
    nodes = cluster.parse_nodes_text((DATA / "nodes.txt").read_text())
    found = livecheck.compare(site, parts, nodes)
    assert found == [
        f"{path}: partitions.gpu.gpu_types: 'a100' is on no node of the partition (Slurm: p100)",
        f"{path}: partitions.multinode.features: 'ib' is on no node of the partition (Slurm: x2695)",
        f"{path}: partitions.multinode.max_time: '2-00:00:00' but Slurm's MaxTime is '10-00:00:00'",
        f"{path}: partitions.bigmem: no such partition (Slurm has: gpu, multinode, norm, service)",
    ], found


def test_validate_verbose_lists_every_script_it_tried(capsys: pytest.CaptureFixture[str]) -> None:
    assert qsub_main(["site", "validate", "--site", "testbed", "-v"]) == 0
    err = capsys.readouterr().err
    tried = [line for line in err.splitlines() if line.endswith("): ok")]
    assert "the forms of times and memory sizes" in err
    assert len(tried) >= 10 and any("Class2D_gpu/01_tiny.sh (5 MPI x 2 threads, queue" in line for line in tried)
    assert re.search(rf"{len(tried)} scripts \(every template filled as RELION would\), 0 failed", err)


def test_init_labels_each_gui_box_distinctly() -> None:
    """Three boxes labelled "SBATCH Directives" made every message about one of them ambiguous."""
    labels = [f["label"] for f in tomllib.loads(siteinit.init("x", _captured()))["fields"]]
    assert labels[3:] == ["SBATCH Directives", "SBATCH Directives 2", "SBATCH Directives 3"]
    assert len(set(labels)) == len(labels)
