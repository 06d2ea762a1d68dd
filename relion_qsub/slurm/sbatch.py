"""sbatch's answer: "Submitted batch job N" (without ``--parsable``), read and written in one place.

Apart from :mod:`client` because it is on the submit path's happy path, where every import counts
(tests/test_startup.py): plain ``re`` here, no dataclasses.
"""

from __future__ import annotations

import re

# src/sbatch/sbatch.c, main(): "Submitted batch job %u" (then " on cluster %s" with --clusters).
_SUBMITTED = r"Submitted batch job (\d+)"


def job_id(stdout: str) -> str | None:
    """The job id sbatch printed, or None when it printed none."""
    match = re.search(_SUBMITTED, stdout)
    return match.group(1) if match else None


def answer(job_id: str) -> str:
    """What sbatch would have printed for ``job_id`` (for a job found by its token after sbatch's answer was lost)."""
    return f"Submitted batch job {job_id}\n"
