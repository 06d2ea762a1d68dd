"""An installed bin/relion-qsub run without the module uses the site it was installed for (issue 14), not the
bundled default; --site errors list every profile the user could mean."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _prefix(tmp_path: Path) -> Path:
    """A prefix laid out as `module install` lays it out: bin/, relion_qsub/, etc/<site>.toml."""
    prefix = tmp_path / "relion-qsub" / "0.1"
    shutil.copytree(ROOT / "bin", prefix / "bin", symlinks=True)
    shutil.copytree(ROOT / "relion_qsub", prefix / "relion_qsub", ignore=shutil.ignore_patterns("__pycache__"))
    (prefix / "etc").mkdir()
    (prefix / "etc" / "mysite.toml").write_text(
        "[partitions.batch]\ndefault = true\n[policy]\nunknown_partition = 'error'\n"
    )
    return prefix


def _run(prefix: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": os.environ["PATH"], "RELION_QSUB_PYTHON": sys.executable, "RELION_QSUB_NO_CACHE": "1", **env}
    return subprocess.run(
        [str(prefix / "bin" / "relion-qsub"), *args], capture_output=True, text=True, env=environ, check=False
    )


def test_installed_site_is_the_default_without_the_module(tmp_path: Path) -> None:
    prefix = _prefix(tmp_path)
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH --partition=gpu\nhostname\n")
    installed = _run(prefix, "check", str(script))
    assert installed.returncode == 65 and "set 'Queue name' to one of batch" in installed.stderr, installed.stderr
    assert _run(prefix, "check", "--site", "biowulf", str(script)).returncode == 0  # --site still wins
    assert _run(prefix, "check", str(script), RELION_QSUB_SITE="testbed").returncode == 0  # and the module's variable
    missing = _run(prefix, "check", "--site", "nosuch", str(script))
    assert missing.returncode == 78
    assert f"use a path or one of: {prefix / 'etc' / 'mysite.toml'}, biowulf, testbed" in missing.stderr, missing.stderr
