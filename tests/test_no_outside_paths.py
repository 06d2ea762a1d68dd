"""Nothing in the repository cites a file outside it: comments, docs and scripts name Slurm or RELION sources, man
pages or files of this repository, never a machine path (issue 19: notes were cited as /work/shared/...)."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import ROOT

OUTSIDE = re.compile(r"/work/|\.\./shared/|shared/notes/|shared/seed/")
# Test data that IS another site's file, quoted verbatim (a site template's own PATH line).
VERBATIM = ("tests/corpus/sites/", "tests/golden/sites/")


def test_no_file_cites_a_path_outside_the_repository() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in files:
        if name.startswith(VERBATIM) or name == "tests/test_no_outside_paths.py":
            continue
        try:
            text = (ROOT / name).read_text()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        offenders += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    assert not offenders, "paths outside the repository cited at: " + ", ".join(offenders)
