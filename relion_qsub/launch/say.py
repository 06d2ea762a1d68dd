"""relion-launch's own lines on stderr, which the job template sends to run.err (what RELION's GUI shows)."""

from __future__ import annotations

import sys

from .invocation import PROG


def warn(message: str) -> None:
    stderr_text(f"{PROG}: warning: {message}\n")


def stderr_text(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
