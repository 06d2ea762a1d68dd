"""The wheel is complete: built from the tree, installed into a fresh venv outside the checkout, it renders templates.

Before, the Jinja sources lived outside the package (found via ``parent.parent``), so `pip install relion-qsub` gave
a `templates build` that worked only from a checkout. Needs PyPI for the build backend and the runtime dependencies,
as `make install` does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def test_wheel_installed_outside_the_checkout_builds_templates(tmp_path: Path) -> None:
    # a copy of the tree, so the build's own build/ and *.egg-info never land in the checkout
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "tests"))
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(src)], tmp_path)
    (wheel,) = dist.glob("relion_qsub-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)], tmp_path)
    # the installed package, not the checkout: cwd is outside it and the venv has no path to it
    where = run([str(py), "-c", "import relion_qsub; print(relion_qsub.__file__)"], tmp_path).stdout
    assert not where.startswith(str(ROOT)), where
    out = tmp_path / "templates"
    run([str(env_dir / "bin" / "relion-qsub"), "templates", "build", "--site", "testbed", "--out", str(out)], tmp_path)
    assert (out / "common.sh").is_file() and (out / "lscratch_mon.sh").is_file()
    assert any(out.glob("*/01_tiny.sh"))
    # Issue 22: the installed package installs a site tree itself (it exited 66, "install from a checkout"), with
    # man pages; relion-launch has --version; a second install of the same version is refused.
    bin_dir = env_dir / "bin"
    assert run([str(bin_dir / "relion-launch"), "--version"], tmp_path).stdout.startswith("relion-launch ")
    apps, modules = tmp_path / "apps", tmp_path / "modules"
    install = [str(bin_dir / "relion-qsub"), "module", "install", "--site", "testbed", "--prefix", str(apps)]
    run([*install, "--moduledir", str(modules)], tmp_path)
    (dest,) = (apps / "relion-qsub").glob("0*")
    assert (dest / "share" / "man" / "man1" / "relion-qsub.1").is_file()
    assert (apps / "relion-qsub" / "templates" / "common.sh").is_file()
    done = subprocess.run(
        [str(dest / "bin" / "relion-qsub"), "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.startswith("relion-qsub "), done.stderr
    again = subprocess.run([*install, "--moduledir", str(modules)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 64 and "installed already" in again.stderr and "--force" in again.stderr
