"""`relion-qsub templates build`: golden files, RELION's fill of every template passes `relion-qsub check`, the
size templates' Running-tab guard, the scratch monitor, StrictUndefined.

Golden files: ``tests/golden_templates/<profile>/`` hold the whole tree rendered for install dir
``/opt/relion-qsub/templates``. When a change is intended, re-record with
    RELION_QSUB_RERECORD=1 .venv/bin/pytest tests/test_templates.py -k golden
and review ``git diff tests/golden_templates`` before committing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from relion_qsub import profile
from relion_qsub.checks.core import Context
from relion_qsub.checks.engine import normalise
from relion_qsub.errors import InputError, ProfileError
from relion_qsub.profile import recipes
from relion_qsub.script import parse
from relion_qsub.sitetools.templates import SOURCES, plan, write
from tests.templatecases import INSTALL_DIR, cases, fill_case, render, write_project

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden_templates"
QSUB = str(ROOT / "bin" / "relion-qsub")
PROFILES = ("biowulf", "testbed")
SITES = {name: profile.load(name) for name in PROFILES}
RENDERED = {name: render(site) for name, site in SITES.items()}
CASES = [(name, case) for name in PROFILES for case in cases(SITES[name], RENDERED[name])]


@pytest.mark.parametrize("profile", PROFILES)
def test_golden(profile: str) -> None:
    golden = GOLDEN / profile
    rendered = {r.path: r.text for r in RENDERED[profile]}
    rerecord = f"RELION_QSUB_RERECORD=1 .venv/bin/pytest tests/test_templates.py -k 'golden and {profile}'"
    if os.environ.get("RELION_QSUB_RERECORD") == "1":
        shutil.rmtree(golden, ignore_errors=True)
        for path, text in rendered.items():
            (golden / path).parent.mkdir(parents=True, exist_ok=True)
            (golden / path).write_text(text)
        return
    recorded = {str(p.relative_to(golden)): p.read_text() for p in sorted(golden.rglob("*")) if p.is_file()}
    problems = []
    for path in sorted(set(rendered) | set(recorded)):
        if path not in recorded:
            problems.append(f"new file {path} (not in the golden tree)")
        elif path not in rendered:
            problems.append(f"file {path} is no longer generated")
        elif rendered[path] != recorded[path]:
            diff = difflib.unified_diff(
                recorded[path].splitlines(True), rendered[path].splitlines(True), f"golden/{path}", "now"
            )
            problems.append("".join(diff))
    if problems:
        pytest.fail("\n".join(problems) + f"\nIf intended, re-record: {rerecord}", pytrace=False)


def test_output_is_deterministic() -> None:
    again = plan(profile.load("biowulf"), INSTALL_DIR)
    assert [(r.path, r.text) for r in again] == [(r.path, r.text) for r in RENDERED["biowulf"]]


def test_tree_has_the_seeds_shape() -> None:
    paths = {r.path for r in RENDERED["biowulf"]}
    assert {"common.sh", "x2695_exclusive.sh", "x2680_exclusive.sh", "lscratch_mon.sh", "README.md"} <= paths
    for directory in ("Class2D_gpu", "Class3D_cpu", "MotionCor2", "MotCorRel", "Refine3D_cpu", "Polish", "GCTF"):
        assert {f"{directory}/{n:02d}_{s}.sh" for n, s in enumerate(recipes.SIZE_NAMES, 1)} <= paths
    common = next(r.text for r in RENDERED["biowulf"] if r.path == "common.sh")
    # The seed's common.sh directives and launcher line, in that order.
    for line in (
        "#SBATCH --ntasks=XXXmpinodesXXX",
        "#SBATCH --time=XXXextra1XXX",
        "#SBATCH --mem-per-cpu=XXXextra2XXX",
        "#SBATCH --gres=XXXextra3XXX",
        "#SBATCH XXXextra6XXX",
        "${RELION_STD_LAUNCHER} --mem-per-cpu=XXXextra2XXX XXXcommandXXX",
    ):
        assert line + "\n" in common


@pytest.mark.parametrize(("profile", "case"), CASES, ids=[f"{p}:{c.name}" for p, c in CASES])
def test_relion_filled_template_passes_check(profile: str, case: object) -> None:
    from tests.templatecases import Case

    assert isinstance(case, Case)
    script = fill_case(case, RENDERED[profile])
    result = normalise(parse(script, case.name), Context(SITES[profile]))
    assert result.ok, [str(e) for e in result.errors]
    assert not re.search(r"XXX\w+XXX", result.script.render()), "a RELION placeholder is left"


def test_check_cli_accepts_filled_templates(tmp_path: Path) -> None:
    picked = [c for p, c in CASES if p == "testbed"][::9]
    for case in picked:
        path = write_project(case, fill_case(case, RENDERED["testbed"]), tmp_path)
        proc = subprocess.run(
            [QSUB, "check", "--site", "testbed", str(path.relative_to(tmp_path))],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, (case.name, proc.stderr)


def _bash(script: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": os.environ["PATH"], "HOME": str(cwd), **env}
    return subprocess.run(["bash", str(script)], cwd=cwd, env=environ, capture_output=True, text=True, timeout=30)


def test_size_template_refuses_a_different_running_tab(tmp_path: Path) -> None:
    from tests.relionfill import fill

    rendered = RENDERED["testbed"]
    text = next(r.text for r in rendered if r.path == "Class2D_gpu/01_tiny.sh")
    jobdir = "Class2D/job001/"
    (tmp_path / jobdir).mkdir(parents=True)
    command = "`which relion_refine_mpi` --o Class2D/job001/run --pipeline_control Class2D/job001/"
    wrong = tmp_path / "wrong.sh"
    wrong.write_text(fill(text, jobdir=jobdir, commands=[command], mpi=4, threads=2, queue="gpu"))
    proc = _bash(wrong, tmp_path, RELION_STD_LAUNCHER="echo")
    assert proc.returncode == 1
    assert "asks for 5 MPI procs x 2 threads but RELION's Running tab says 4 x 2" in proc.stderr
    assert (tmp_path / jobdir / "RELION_JOB_EXIT_FAILURE").exists()
    (tmp_path / jobdir / "RELION_JOB_EXIT_FAILURE").unlink()
    right = tmp_path / "right.sh"
    right.write_text(fill(text, jobdir=jobdir, commands=[command], mpi=5, threads=2, queue="gpu"))
    proc = _bash(right, tmp_path, RELION_STD_LAUNCHER="echo")
    assert proc.returncode == 0 and "relion_refine_mpi" in proc.stdout
    assert not (tmp_path / jobdir / "RELION_JOB_EXIT_FAILURE").exists()


def test_scratch_monitor_logs_over_time_and_stops_with_its_parent(tmp_path: Path) -> None:
    monitor = tmp_path / "lscratch_mon.sh"
    monitor.write_text(next(r.text for r in RENDERED["testbed"] if r.path == "lscratch_mon.sh"))
    monitor.chmod(0o755)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "particles.mrcs").write_bytes(b"\0" * 200_000)
    log = tmp_path / "usage.log"
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", "-c", f"{monitor} {log} 1 & sleep 2.5"],
        env={"PATH": os.environ["PATH"], "RELION_QSUB_SCRATCH": str(scratch)},
        timeout=30,
        check=True,
    )
    assert proc.returncode == 0
    deadline = started + 10
    while time.monotonic() < deadline and len(log.read_text().splitlines()) < 4:
        time.sleep(0.2)
    lines = log.read_text().splitlines()
    assert lines[0].startswith("# time host used_kib free_kib dir")
    samples = [line.split() for line in lines[1:]]
    assert len(samples) >= 2 and all(int(s[2]) >= 190 and s[4] == str(scratch) for s in samples)
    time.sleep(1.5)  # the parent shell is gone: no more samples
    assert len(log.read_text().splitlines()) <= len(lines) + 1


def test_strict_undefined_refuses_a_missing_value(tmp_path: Path) -> None:
    import jinja2

    sources = tmp_path / "templates"
    shutil.copytree(SOURCES, sources)
    (sources / "common.sh.j2").write_text("#!/bin/bash\n#SBATCH --time={{ site.walltime_typo }}\n")
    with pytest.raises(jinja2.UndefinedError):
        plan(SITES["testbed"], INSTALL_DIR, sources)
    with pytest.raises(InputError, match="template sources not found"):
        plan(SITES["testbed"], INSTALL_DIR, tmp_path / "nowhere")


def test_build_cli_writes_the_tree(tmp_path: Path) -> None:
    out = tmp_path / "tree"
    proc = subprocess.run(
        [QSUB, "templates", "build", "--site", "testbed", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "Class2D_gpu" / "01_tiny.sh").is_file() and os.access(out / "lscratch_mon.sh", os.X_OK)
    assert f"[ -x {out.resolve()}/lscratch_mon.sh ]" in (out / "common.sh").read_text()
    assert len(proc.stdout.splitlines()) == len(RENDERED["testbed"])
    bad = subprocess.run(
        [QSUB, "templates", "build", "--site", "nosuch", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 78 and bad.stderr.count("\n") == 1 and "nosuch" in bad.stderr


# ------------------------------------------------------------------------------------------- the scratch monitor


def _monitors(tree: Path) -> list[psutil.Process]:
    """lscratch_mon.sh processes started from ``tree`` (and only those: other tests' trees are not ours). A
    monitor's own subshells (a command substitution forks bash, with the monitor's command line, for a moment) are
    the monitor at work, not a second one: seen once in a CI rehearsal as a 'terminated' twin."""
    script = str(tree / "lscratch_mon.sh")
    found = [p for p in psutil.process_iter(["cmdline", "ppid"]) if script in (p.info["cmdline"] or [])]
    pids = {p.pid for p in found}
    return [p for p in found if p.info["ppid"] not in pids]


def _gone_within(tree: Path, seconds: float) -> list[psutil.Process]:
    deadline = time.monotonic() + seconds
    while _monitors(tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _monitors(tree)


@pytest.fixture
def job(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A testbed tree rendered into tmp_path/tree and a project dir; monitors left behind are killed afterwards."""
    tree = tmp_path / "tree"
    write(plan(SITES["testbed"], str(tree)), tree)
    project = tmp_path / "project"
    (project / "Class2D" / "job001").mkdir(parents=True)
    (project / "scratch").mkdir()
    yield tree, project
    for p in _monitors(tree):
        with contextlib.suppress(psutil.Error):
            p.kill()


def _job_script(tree: Path, project: Path, command: str) -> Path:
    from tests.relionfill import fill

    script = project / "Class2D" / "job001" / "run_submit.script"
    script.write_text(fill((tree / "common.sh").read_text(), jobdir="Class2D/job001/", commands=[command]))
    return script


def _job_env(project: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "RELION_QSUB_SCRATCH": str(project / "scratch"), "RELION_STD_LAUNCHER": ""}


def test_monitor_stops_when_the_job_script_ends(job: tuple[Path, Path]) -> None:
    """The review's leak: started as `[ -x S ] && S ... &`, the monitor watched a subshell that waited for it."""
    tree, project = job
    script = _job_script(tree, project, "sleep 1.5")
    started = time.monotonic()
    # No pipes: a leaked monitor would hold them open and hang subprocess.run instead of failing the assertion.
    proc = subprocess.run(
        ["bash", str(script)],
        cwd=project,
        env=_job_env(project),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0 and time.monotonic() - started < 10
    assert not _gone_within(tree, 3), "lscratch_mon.sh outlived the job script"
    log = (project / "Class2D" / "job001" / "scratch_usage.log").read_text().splitlines()
    assert log[0].startswith("# time host") and len(log) >= 2, log  # it did run and sample


def test_monitor_stops_when_the_job_shell_is_killed(job: tuple[Path, Path]) -> None:
    """SIGKILL: no EXIT trap runs; the monitor polls the job shell's pid ($$) and stops within a second or two."""
    tree, project = job
    script = _job_script(tree, project, "sleep 30")
    shell = subprocess.Popen(
        ["bash", str(script)],
        cwd=project,
        env=_job_env(project),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not _monitors(tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        monitors = _monitors(tree)
        assert len(monitors) == 1 and monitors[0].cmdline()[-1] == str(shell.pid)  # it watches the job shell
        assert monitors[0].ppid() == shell.pid  # a direct child, not a subshell's
        shell.kill()
        shell.wait(timeout=10)
        assert not _gone_within(tree, 4), "lscratch_mon.sh outlived its killed job shell"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)  # the orphaned `sleep 30`


def test_monitor_accepts_the_braced_job_id(tmp_path: Path) -> None:
    site = dataclasses.replace(
        SITES["testbed"], scratch=dataclasses.replace(SITES["testbed"].scratch, job_dir="/lscratch/${SLURM_JOB_ID}/x")
    )
    mon = next(r.text for r in plan(site, INSTALL_DIR) if r.path == "lscratch_mon.sh")
    assert "dir=${RELION_QSUB_SCRATCH:-/lscratch/${SLURM_JOB_ID}/x}\n" in mon
    proc = subprocess.run(
        ["bash", "-c", mon, "lscratch_mon.sh", str(tmp_path / "log"), "1", "999999999"],
        env={"PATH": os.environ["PATH"], "SLURM_JOB_ID": "42"},
        timeout=30,
        check=True,
    )
    assert proc.returncode == 0 and (tmp_path / "log").read_text().splitlines()[-1].endswith(" /lscratch/42/x")


# ------------------------------------------------------------------------ what the profile may put into the files

TESTBED_TOML = (profile.PROFILE_DIR / "testbed.toml").read_text()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[job_templates."../../escaped"]\n', "job_templates.../../escaped: expected a plain name"),
        ('[job_templates."a/b"]\n', "job_templates.a/b: expected a plain name"),
        ('[partitions.gpu]\n[node_types."x\\ny"]\n', "node_types.'x\\ny': expected a plain name"),
        ('name = "../x"\n', "name: expected a plain name"),
        ('[scratch]\njob_dir = "/l/x}; touch X #"\n', "scratch.job_dir: expected an absolute path"),
        ('[scratch]\njob_dir = "/l/$(id)"\n', "scratch.job_dir: expected an absolute path"),
        ('[scratch]\njob_dir = "/l/$SLURM_JOB_IDX"\n', "scratch.job_dir: expected an absolute path"),
        ('[scratch]\njob_dir = "l/$SLURM_JOB_ID"\n', "scratch.job_dir: expected an absolute path"),
        ('[scratch]\ngres = "lscratch x"\n', "scratch.gres: expected a gres name"),
        ('[[fields]]\nlabel = "Wall\\n/bin/rm x"\n', "fields[1].label: expected one line"),
        ('[[fields]]\nlabel = "W"\noption = "time=1"\n', "fields[1].option: expected an sbatch long option"),
        (
            "[recipes.x.rows.any]\nqueue = 'q'\ndirectives = \"--exclusive\\n--nodes=2\"\n",
            "recipes.x.rows.any.directives: expected sbatch options for one #SBATCH line",
        ),
        (
            "[recipes.x.rows.any]\nqueue = 'q'\ndirectives = '--exlusive'\n",
            "(sbatch: unrecognized option '--exlusive')",
        ),
        (
            "[recipes.x.defaults]\ndirectives = 'x2695'\n[recipes.x.rows.any]\nqueue = 'q'\n",
            "recipes.x.defaults.directives: expected sbatch options",
        ),
        ("[recipes.x.rows.any]\nqueue = 'q'\ndirectives = '--nodes=2 # c'\n", "without '#'"),
        ("[recipes.x.rows.any]\nqueue = 'q'\ndirectives = '--comment=\"a'\n", "unterminated"),
        ("[recipes.x.rows.any]\nqueue = 'gpu norm'\n", "recipes.x.rows.any.queue: expected one word"),
        ('[recipes.x.rows.any]\nqueue = "q"\ngres = "gpu:1\\n"\n', "recipes.x.rows.any.gres: expected one word"),
        ('[recipes.x]\ntitle = "T\\nrm"\n[recipes.x.rows.any]\nqueue = "q"\n', "recipes.x.title: expected one line"),
    ],
)
def test_profile_values_that_would_break_the_generated_files_are_refused(
    tmp_path: Path, toml: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ProfileError) as info:
        profile.load(str(path), full=True)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value), str(info.value)
    assert "\n" not in str(info.value)  # errors are one line


def test_size_directives_are_checked_too(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    bad = 'tiny = { mpi = 1, directives = "--ntasks-per-node=1\\n#SBATCH --partition=other" }'
    assert "tiny = { mpi = 1 }" in TESTBED_TOML
    path.write_text(TESTBED_TOML.replace("tiny = { mpi = 1 }", bad, 1))
    with pytest.raises(ProfileError, match=r"job_templates\.\w+\.sizes\.tiny\.directives: expected sbatch options"):
        profile.load(str(path), full=True)


# -------------------------------------------------------------------------------------------- writing the tree


def _build(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [QSUB, "templates", "build", "--site", "testbed", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_build_replaces_a_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("keep me\n")
    secret.chmod(0o600)
    out = tmp_path / "tree"
    out.mkdir()
    (out / "common.sh").symlink_to(secret)
    proc = _build(out)
    assert proc.returncode == 0, proc.stderr
    assert secret.read_text() == "keep me\n" and stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert not (out / "common.sh").is_symlink() and (out / "common.sh").read_text().startswith("#!/bin/bash")
    assert stat.S_IMODE((out / "common.sh").stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "lscratch_mon.sh").stat().st_mode) == 0o755
    assert not [p for p in out.rglob(".*tmp*")]  # no temporary files left
    again = _build(out)  # rebuilding in place: nothing stale, same files
    assert again.returncode == 0 and again.stderr == "", again.stderr


def test_build_refuses_a_symlinked_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "tree"
    out.mkdir()
    (out / "Class2D_gpu").symlink_to(elsewhere)
    proc = _build(out, "--force")
    assert proc.returncode == 66 and proc.stderr.count("\n") == 1 and "Class2D_gpu is a symlink" in proc.stderr
    assert list(elsewhere.iterdir()) == []


def test_build_says_when_out_holds_files_it_would_not_write(tmp_path: Path) -> None:
    out = tmp_path / "tree"
    assert _build(out).returncode == 0
    (out / "Gone_gpu").mkdir()
    (out / "Gone_gpu" / "01_tiny.sh").write_text("#!/bin/bash\n")
    (out / "notes.txt").write_text("mine\n")
    (out / ".marker").write_text("")  # hidden: a tool's own (the demo marks the directories it may clear)
    (out / ".git").mkdir()
    (out / ".git" / "HEAD").write_text("")
    refused = _build(out)
    assert refused.returncode == 64 and refused.stderr.count("\n") == 1, refused.stderr
    assert "holds 2 file(s) this build would not write (Gone_gpu/01_tiny.sh, notes.txt)" in refused.stderr
    assert "--force" in refused.stderr
    forced = _build(out, "--force")
    assert forced.returncode == 0 and "kept 2 file(s) this build did not write: Gone_gpu/01_tiny.sh" in forced.stderr
    assert (out / "notes.txt").read_text() == "mine\n"


def test_write_refuses_a_path_outside_out(tmp_path: Path) -> None:
    from relion_qsub.sitetools.templates import Rendered

    for bad in ("../escaped.sh", "/etc/x.sh", "a/../../b.sh"):
        with pytest.raises(InputError, match="not a plain path inside --out"):
            write([Rendered(bad, "x", "size")], tmp_path / "out")
    assert not (tmp_path / "escaped.sh").exists()
