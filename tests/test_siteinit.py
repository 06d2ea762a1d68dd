"""`relion-qsub site init|validate|reference` (issue 14). Pure tests read Slurm 22.05.8 output captured on the
testbed (tests/data/slurm-22.05: `scontrol show partition -o`, `scontrol show node -o`, `sinfo --json` cut to the
keys read); the real-cluster tests run init -> validate --live on the testbed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from relion_qsub import proc, profile
from relion_qsub.cli import qsub_main
from relion_qsub.errors import UsageError
from relion_qsub.sitetools import cluster, siteinit
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
        ("threads = 4\n", "threads = 40\n"),
    ):
        text = text.replace(old, new)
    path = tmp_path / "believer.toml"
    path.write_text(text.replace("thread_max = 32", "thread_max = 64"))
    offline = run([QSUB, "site", "validate", "--site", str(path)], env=job_env(), check=False, timeout=60)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    live = run([QSUB, "site", "validate", "--site", str(path), "--live"], env=job_env(), check=False, timeout=120)
    lines = live.stdout.splitlines()
    assert live.returncode == 78 and lines, live.stderr
    assert all("Class2D_x2695" in line or "x2695" in line for line in lines), lines
    assert all(
        line.endswith("sbatch --test-only: allocation failure: Requested node configuration is not available")
        for line in lines
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
