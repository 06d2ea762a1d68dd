"""A prefix laid out as sites run relion-qsub: ``relion-qsub module install`` into a temporary directory (bin/, the
package compiled, venv/ with the runtime dependencies). Start-up figures are measured there, not in the editable
developer venv, whose import hook (``__editable__...finder``) alone costs ~10 ms on every interpreter start."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def site_install(tmp: Path, site: str) -> Path:
    """PREFIX/relion-qsub/<version>/ as `make site-install` makes it (the module install subcommand)."""
    argv = [str(ROOT / "bin" / "relion-qsub"), "module", "install", "--site", site]
    argv += ["--prefix", str(tmp / "prefix"), "--moduledir", str(tmp / "modules")]
    env = {k: v for k, v in os.environ.items() if k != "RELION_QSUB_PYTHON"}
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    # PREFIX/relion-qsub/ holds the version's tree and templates/ (shared by every version: RELION's Continue)
    (dest,) = (p for p in (tmp / "prefix" / "relion-qsub").iterdir() if (p / "bin").is_dir())
    return dest
