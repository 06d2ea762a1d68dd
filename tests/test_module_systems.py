"""The modulefiles under the real module systems: Debian's Lmod (installed) and Environment Modules 5.2 (run from
its extracted .deb: the two Debian packages conflict, see the testbed notes), in fresh login shells; then a site
install (`make site-install`) whose module lets relion_pipeliner submit a job with the module's defaults only.

The Environment Modules .deb is fetched once with `apt-get download` into $TMPDIR/relion-qsub-envmodules/. When that
is impossible (offline) the tests skip, and fail when RELION_QSUB_REQUIRE_SLURM=1 (make test, CI).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from relion_qsub import __version__, profile
from relion_qsub.sitetools import module
from tests.slurmtools import wait_for_job

ROOT = Path(__file__).resolve().parent.parent
LMOD_INIT = Path("/usr/share/lmod/lmod/init/bash")
EM_CACHE = Path(tempfile.gettempdir()) / "relion-qsub-envmodules"
# Module-system bookkeeping that legitimately changes on load/unload (and bash's "$_").
BOOKKEEPING = ("_ModuleTable", "__LMOD_", "LMOD_", "_LMFILES_", "LOADEDMODULES", "__MODULES_", "MODULES_")
CLEAN = {"PATH": "/usr/bin:/bin", "TERM": "dumb", "LANG": "C.UTF-8"}


def unavailable(reason: str) -> None:
    if os.environ.get("RELION_QSUB_REQUIRE_SLURM") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def modulecmd() -> Path:
    """Environment Modules 5.2's modulecmd.tcl, extracted from the Debian package (not installed)."""
    found = sorted(EM_CACHE.glob("root/usr/lib/*/modulecmd.tcl"))
    if found:
        return found[0]
    if shutil.which("tclsh") is None:
        unavailable("tclsh is not installed (it comes with Debian's lmod): run `make deps`")
    EM_CACHE.mkdir(parents=True, exist_ok=True)
    debs = sorted(EM_CACHE.glob("environment-modules_*.deb"))
    if not debs:
        download = ["apt-get", "download", "environment-modules"]
        proc = subprocess.run(download, cwd=EM_CACHE, capture_output=True, text=True, timeout=180)
        if proc.returncode != 0 and os.geteuid() == 0:
            # A machine whose package lists were cleaned after the install: refresh them once and try again.
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=300, check=False)
            proc = subprocess.run(download, cwd=EM_CACHE, capture_output=True, text=True, timeout=180)
        debs = sorted(EM_CACHE.glob("environment-modules_*.deb"))
        if not debs:
            unavailable(f"cannot fetch environment-modules with apt-get download (offline?): {proc.stderr.strip()}")
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(EM_CACHE / "root")], check=True, timeout=60)
    found = sorted(EM_CACHE.glob("root/usr/lib/*/modulecmd.tcl"))
    if not found:
        unavailable(f"no modulecmd.tcl in {debs[-1]}")
    return found[0]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, profile.Site]:
    """MODULEDIR with relion-qsub/<version>.lua and relion-qsub/<version> (Tcl) for the Biowulf profile, and an
    older version beside them (to see the conflict)."""
    root = tmp_path_factory.mktemp("modules")
    prefix = str(root / "apps" / "relion-qsub" / __version__)
    biowulf = profile.load("biowulf")
    mods = root / "modulefiles" / "relion-qsub"
    mods.mkdir(parents=True)
    (mods / f"{__version__}.lua").write_text(module.render(biowulf, prefix, "lua"))
    (mods / __version__).write_text(module.render(biowulf, prefix, "tcl"))
    (mods / "0.0.1").write_text(module.render(biowulf, prefix.replace(__version__, "0.0.1"), "tcl"))
    return root / "modulefiles", prefix, biowulf


def read_env(path: Path) -> dict[str, str]:
    items = [item.split("=", 1) for item in path.read_text().split("\0") if "=" in item]
    return {k: v for k, v in items if k != "_" and not k.startswith(BOOKKEEPING)}


def login_shell(script: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = ["env", "-i", f"HOME={cwd}", *(f"{k}={v}" for k, v in {**CLEAN, **extra}.items())]
    return subprocess.run([*env, "bash", "-l", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120)


def lmod_script(moduledir: Path) -> str:
    return f"""set -e
type module >/dev/null 2>&1 || source {LMOD_INIT}
module use {moduledir}
env -0 > before
module load relion-qsub
env -0 > loaded
module help relion-qsub 2> help
module whatis relion-qsub 2> whatis
module load relion-qsub/0.0.1 2> swap || true
env -0 > swapped
module unload relion-qsub
env -0 > after
"""


def em_script(moduledir: Path, cmd: Path) -> str:
    return f"""set -e
mc() {{ eval "$(tclsh {cmd} bash "$@")"; }}
export MODULEPATH={moduledir}
env -0 > before
mc load relion-qsub/{__version__}
env -0 > loaded
tclsh {cmd} bash help relion-qsub/{__version__} 2> help >/dev/null
tclsh {cmd} bash whatis relion-qsub/{__version__} 2> whatis >/dev/null
mc load relion-qsub/0.0.1 2> swap || true
env -0 > swapped
mc unload relion-qsub
env -0 > after
"""


def check_session(workdir: Path, prefix: str, biowulf: profile.Site) -> None:
    before, loaded, after = (read_env(workdir / n) for n in ("before", "loaded", "after"))
    expected = dict(module.variables(biowulf, prefix))
    assert {k: loaded.get(k) for k in expected} == expected
    assert loaded["PATH"] == f"{prefix}/bin:{before['PATH']}"
    assert f"{prefix}/share/man" in loaded["MANPATH"].split(":")  # `man relion-qsub` after module load
    # Unload restores the environment exactly; MANPATH up to empty elements (Lmod keeps a trailing "::" where it
    # had ":"; for man both mean "and the default path").
    manpath = [[p for p in env.pop("MANPATH", "").split(":") if p] for env in (before, after)]
    assert after == before and manpath[0] == manpath[1]
    help_text, whatis = (workdir / "help").read_text(), (workdir / "whatis").read_text()
    assert f"relion-qsub {__version__}: RELION's queue submission for Slurm at site biowulf." in help_text
    assert "relion-qsub recommend JOBTYPE --node-type T" in help_text and "$" not in help_text.replace("${", "")
    for line in ("Name: relion-qsub", f"Version: {__version__}", "Description: RELION queue submission for Slurm"):
        assert line in whatis
    # Only one relion-qsub at a time: the older version is refused (Tcl conflict) or swapped in (Lmod family).
    swapped = read_env(workdir / "swapped")
    assert swapped["PATH"].count("/relion-qsub/") == 1


def test_lmod_load_unload_help_whatis(tmp_path: Path, tree: tuple[Path, str, profile.Site]) -> None:
    if not LMOD_INIT.is_file():
        unavailable(f"Lmod is not installed ({LMOD_INIT}): run `make deps`")
    moduledir, prefix, biowulf = tree
    proc = login_shell(lmod_script(moduledir), tmp_path)
    assert proc.returncode == 0, proc.stderr
    check_session(tmp_path, prefix, biowulf)


def test_environment_modules_load_unload_help_whatis(
    tmp_path: Path, tree: tuple[Path, str, profile.Site], modulecmd: Path
) -> None:
    moduledir, prefix, biowulf = tree
    proc = login_shell(em_script(moduledir, modulecmd), tmp_path)
    assert proc.returncode == 0, proc.stderr
    check_session(tmp_path, prefix, biowulf)
    assert "conflict" in (tmp_path / "swap").read_text().lower()


@pytest.mark.slurm
@pytest.mark.relion
def test_site_install_then_module_load_then_relion_pipeliner_runs_a_job(tmp_path: Path) -> None:
    if not LMOD_INIT.is_file() or shutil.which("relion_pipeliner") is None:
        unavailable("Lmod and Debian's relion are needed: run `make deps`")
    home, prefix, moduledir = tmp_path / "home", tmp_path / "apps", tmp_path / "modulefiles"
    home.mkdir()
    proc = subprocess.run(
        # -o: use the developer venv as it is. Remaking it here (pyproject.toml newer than .venv/.installed, e.g. after
        # a pull) would recreate it under the tests that run from it, with the CLEAN environment's python3.
        [
            *("make", "-C", str(ROOT), "-o", ".venv/.installed", "site-install"),
            *(f"PREFIX={prefix}", f"MODULEDIR={moduledir}", "SITE=testbed"),
        ],
        env={**CLEAN, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(os.listdir(home)) == []  # nothing written outside PREFIX and MODULEDIR
    dest = prefix / "relion-qsub" / __version__
    assert (dest / "venv" / "bin" / "python").exists() and (
        prefix / "relion-qsub" / "templates" / "common.sh"
    ).is_file()
    assert (dest / "share" / "man" / "man1" / "relion-qsub.1").is_file()
    project = tmp_path / "project"
    project.mkdir()
    (project / "default_pipeline.star").write_text("data_pipeline_general\n\n_rlnPipeLineJobCounter 1\n")
    (project / "particles.star").write_text("")  # relion_refine starts in the job and fails at once
    script = f"""set -e
type module >/dev/null 2>&1 || source {LMOD_INIT}
module use {moduledir}
module load relion-qsub
command -v relion-qsub
man -w relion-qsub
relion_pipeliner --addJob Class2D --addJobOptions "fn_img == particles.star"
relion_pipeliner --RunJobs Class2D/job001/ --sec_wait_after 0
"""
    proc = login_shell(script, project, SLURM_CONF=os.environ.get("SLURM_CONF", ""))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == f"{dest}/bin/relion-qsub"
    assert proc.stdout.splitlines()[1] == f"{dest}/share/man/man1/relion-qsub.1"  # man relion-qsub works
    job = project / "Class2D" / "job001"
    submitted = (job / "run_submit.script").read_text()
    assert submitted.startswith("#!/bin/bash\n# RELION queue template for site testbed")  # the module's template
    assert "#SBATCH --time=0:10:00\n" in submitted and "#SBATCH --gres=lscratch:5\n" in submitted  # the defaults
    entry = json.loads((job / "relion-qsub.jsonl").read_text().splitlines()[-1])
    assert entry["submitted"] is True, entry
    info = wait_for_job(entry["job_id"], timeout=60)
    assert info["Partition"] == "norm" and info["JobState"] in ("COMPLETED", "FAILED")
    assert (job / "RELION_JOB_EXIT_FAILURE").exists()  # relion_refine ran in the job and told RELION
    assert "relion-launch:" in (job / "run.out").read_text()  # started by the module's RELION_STD_LAUNCHER
    assert (job / "scratch_usage.log").read_text().startswith("# time host")  # the installed monitor ran
