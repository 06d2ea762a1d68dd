"""The documentation site builds with MkDocs in strict mode: a broken link, a missing anchor or a page left out of
the navigation is an error (mkdocs.yml). Built into a tmp dir; nothing outside the repository is read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_docs_site_builds_strict(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "--site-dir", str(tmp_path / "site")]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "site" / "user-guide" / "index.html").is_file()
