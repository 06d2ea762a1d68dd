"""The strict profile schema (issue 14): unknown keys name the nearest known one, defaults live in one place,
cross-checks catch profiles that would build templates relion-qsub or sbatch then refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from relion_qsub import profile
from relion_qsub.checks import registry
from relion_qsub.errors import ProfileError
from relion_qsub.profile import files, keys, recipes

ROOT = Path(__file__).resolve().parent.parent
TESTBED = (ROOT / "relion_qsub" / "profiles" / "testbed.toml").read_text()


def _load(tmp_path: Path, text: str, full: bool = True) -> profile.Site:
    path = tmp_path / "p.toml"
    path.write_text(text)
    return profile.load(str(path), {"RELION_QSUB_NO_CACHE": "1"}, full=full)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[partitions.gpu]\ngpu_types = []\ngpus_per_nod = 4\n",
            "partitions.gpu.gpus_per_nod: unknown key; did you mean partitions.gpu.gpus_per_node?",
        ),
        (
            "[gpu_types.p100]\nsafe_thread = 2\n",
            "gpu_types.p100.safe_thread: unknown key; did you mean gpu_types.p100.safe_threads?",
        ),
        ("[scrach]\ngres = 'lscratch'\n", "scrach: unknown section; did you mean scratch?"),
        ("[limits]\nthreads_max = 8\n", "limits.threads_max: unknown key; did you mean limits.thread_max?"),
        (
            "[job_templates.X]\nrecipe = 'r'\nnode_type = 'n'\n[job_templates.X.sizes.larg]\n",
            "job_templates.X.sizes.larg: unknown section; did you mean job_templates.X.sizes.large?",
        ),
        (
            "[[fields]]\nlabel = 'Walltime'\noptoin = 'time'\n",
            "fields[1].optoin: unknown key; did you mean fields[1].option?",
        ),
        ("[submit]\ntimeout = 'soon'\n", "submit.timeout: expected a number, got 'soon'"),
        ("zzzz = 1\n", "zzzz: unknown key; known: "),
    ],
)
def test_unknown_or_mistyped_key_names_file_key_and_nearest(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ProfileError) as info:
        _load(tmp_path, toml, full=False)  # the submit path refuses it too: no silent fallback to a default
    assert str(info.value).startswith(f"{tmp_path / 'p.toml'}: ") and message in str(info.value), str(info.value)


def test_defaults_come_from_the_declarations(tmp_path: Path) -> None:
    empty = _load(tmp_path, "")
    assert empty.scratch == profile.Scratch() and empty.scratch.gres == "lscratch" and empty.scratch.min_gb == 5
    assert empty.submit == profile.Submit() and empty.submit.backoff == (2.0, 5.0, 15.0)
    assert empty.launchers == ("RELION_STD_LAUNCHER", "relion-launch") and empty.profile.limits.mpi_max == 64
    assert (
        empty.profile.limits == recipes.Limits()
        and empty.profile.queue == recipes.Queue()
        and empty.profile.memory == recipes.MemoryPolicy()
    )
    # Each default is written once, in its declaration: the typed sections' defaults in site.py and recipes.py,
    # not again in the checker, the readers or the loader.
    for source in ("keys.py", "reader.py", "files.py", "declare.py"):
        text = (ROOT / "relion_qsub" / "profile" / source).read_text()
        assert '"lscratch"' not in text and '"/lscratch' not in text and "2.0, 5.0, 15.0" not in text, source
        assert '"mpirun"' not in text and '"sbatch"' not in text, source
    declared = (ROOT / "relion_qsub" / "profile" / "site.py").read_text()
    assert declared.count('"lscratch"') == 1 and declared.count("(2.0, 5.0, 15.0)") == 1


def test_reference_is_up_to_date() -> None:
    doc = ROOT / "docs" / "profile-reference.md"
    expected = keys.reference({"policy": registry.reference_rows()})
    assert doc.read_text() == expected, "re-record: .venv/bin/relion-qsub site reference > docs/profile-reference.md"
    for key in (
        "partitions.<name>.max_time",
        "tools.must_exist",
        "recipes.<name>.rows.<name>.queue",
    ):
        assert f"`{key}`" in expected


def test_packaged_profiles_pass_the_schema_and_the_cross_checks() -> None:
    for name in ("biowulf", "testbed"):
        profile.load(name, {"RELION_QSUB_NO_CACHE": "1"}, full=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            (
                '[recipes.topaz_picking.rows.p100]\nmpi = 4\nthreads = 1\nqueue = "gpu"',
                '[recipes.topaz_picking.rows.p100]\nmpi = 4\nthreads = 1\nqueue = "norm"',
            ),
            "recipes.topaz_picking.rows.p100.queue: partition 'norm' has no p100 GPUs, which node type 'p100' needs: "
            "use gpu",
        ),
        (
            ('queue = "multinode"\nwalltime = "0:20:00"', 'queue = "multinod"\nwalltime = "0:20:00"'),
            "recipes.ctffind.rows.any.queue: 'multinod' is not a [partitions] entry",
        ),
        (
            ("xlarge = { threads = 16, walltime", "xlarge = { threads = 17, walltime"),
            "job_templates.InitialModel.sizes.xlarge: 1 tasks x 17 threads = 17 CPUs per node, but a p100 node has 16",
        ),
        (
            (
                'gres = "lscratch:100"\ndirectives = "--constraint=x2695"',
                'gres = "lscratch:900"\ndirectives = "--constraint=x2695"',
            ),
            "job_templates.Class2D_cpu.sizes.tiny: lscratch:900 is more than the lscratch:400 of a x2695 node",
        ),
        (
            ("[partitions.multinode]\n", "[partitions.multinode]\ndefault = true\n"),
            "partitions.norm.default: only one partition can be Slurm's default (multinode is)",
        ),
        (
            ("[tools]\n", "[tools]\nmust_exist = true\n"),
            "tools.ctffind: expected an executable file (tools.must_exist = true)",
        ),
    ],
)
def test_cross_checks(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in TESTBED
    with pytest.raises(ProfileError) as info:
        _load(tmp_path, TESTBED.replace(old, new, 1))
    assert message in str(info.value), str(info.value)


def test_tool_paths_that_exist_pass(tmp_path: Path) -> None:
    tool = tmp_path / "ctffind"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    text = f"[tools]\nmust_exist = true\nctffind = '{tool}'\n"
    assert _load(tmp_path, text).profile.tools == {"ctffind": str(tool)}


def test_installed_site_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    monkeypatch.setattr(files, "INSTALLED_DIR", etc)
    assert profile.resolve(None, {}) == profile.PROFILE_DIR / "biowulf.toml"  # nothing installed: the bundled default
    (etc / "mysite.toml").write_text("name = 'mysite'\n")
    assert profile.resolve(None, {}) == etc / "mysite.toml"
    assert profile.resolve("mysite", {}) == etc / "mysite.toml"
    assert profile.resolve(None, {"RELION_QSUB_SITE": "testbed"}) == profile.PROFILE_DIR / "testbed.toml"
    assert profile.resolve("testbed", {"RELION_QSUB_SITE": "mysite"}) == profile.PROFILE_DIR / "testbed.toml"
    with pytest.raises(ProfileError) as info:
        profile.load("nosuch", {})
    assert f"{etc / 'mysite.toml'}, biowulf, testbed" in str(info.value)
    (etc / "other.toml").write_text("")
    with pytest.raises(ProfileError, match="holds 2 site profiles; choose one with --site"):
        profile.resolve(None, {})


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("gpus_per_node = 4\nmax_time", "gpus_per_nod = 4\nmax_time", "did you mean partitions.gpu.gpus_per_node?"),
        ("p100 = { safe_threads = 2 }", "p100 = { safe_thread = 2 }", "did you mean gpu_types.p100.safe_threads?"),
        ("[scratch]\n", "[scrach]\n", "scrach: unknown section; did you mean scratch?"),
        (
            '[recipes.topaz_picking.rows.p100]\nmpi = 4\nthreads = 1\nqueue = "gpu"',
            '[recipes.topaz_picking.rows.p100]\nmpi = 4\nthreads = 1\nqueue = "norm"',
            "partition 'norm' has no p100 GPUs",
        ),
    ],
)
def test_templates_build_and_module_refuse_what_used_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, message: str
) -> None:
    """Issue 14: these loaded, built and installed with exit 0, each silently falling back to a default."""
    from relion_qsub.cli import qsub_main

    assert old in TESTBED
    bad = tmp_path / "bad.toml"
    bad.write_text(TESTBED.replace(old, new, 1))
    for argv in (
        ["templates", "build", "--site", str(bad), "--out", str(tmp_path / "out")],
        ["module", "--site", str(bad), "--format", "lua", "--prefix", str(tmp_path / "prefix")],
        # The submit path checks the schema too (cross-checks need the rich sections it never builds).
        *([["check", "--site", str(bad), str(bad)]] if "unknown" in message or "did you mean" in message else []),
    ):
        assert qsub_main(argv) == 78, argv
        err = capsys.readouterr().err
        assert f"{bad}: " in err and message in err, (argv, err)
    assert not (tmp_path / "out").exists()
