"""The forms a profile's text values must have, as Slurm takes them (issue 22).

A value Slurm would read differently, or not at all, must not pass ``site validate``: ``max_time = "10 days"`` or
``memory = "64 GB"`` parsed to nothing, and the checks that compare a job with the partition (walltime over MaxTime,
memory over the node) were silently switched off. Each key that holds a time or a memory size declares its form
(``declare.key(..., form="time")``, or :func:`check` where the key is read by hand); a value not in its form is an
error naming the file, the key, the value and the forms Slurm accepts.

On the submit path (the partitions are read there): nothing heavier than ``units``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..units import memory_mb, minutes

if TYPE_CHECKING:
    from ..errors import ProfileError
    from .reader import Reader

TIME = (
    "a Slurm time: minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes, "
    "days-hours:minutes:seconds or UNLIMITED (e.g. 600, 8:00:00, 2-00:00:00)"
)
MEMORY = "a Slurm memory size: a whole number, MB unless it ends in K, M, G or T (e.g. 64000, 4200m, 240g)"
EXPECTED = {"time": TIME, "memory": MEMORY}

# sbatch options whose value has a form (the extra GUI boxes' defaults are typed into them).
OPTION_FORMS = {"time": "time", "time-min": "time", "mem-per-cpu": "memory", "mem": "memory", "mem-per-gpu": "memory"}


def valid(form: str, value: str) -> bool:
    if form == "time":
        return minutes(value) is not None
    if form == "memory":
        return memory_mb(value) is not None
    raise AssertionError(f"no form {form!r}")


def problem(r: Reader, key: str, value: str, form: str) -> ProfileError | None:
    """The error for ``value`` at ``key`` when it is not in ``form`` (an empty value means "not given": fine)."""
    if not value or valid(form, value):
        return None
    return r.fail(key, EXPECTED[form], value)


def check(r: Reader, key: str, value: str, form: str) -> str:
    error = problem(r, key, value, form)
    if error is not None:
        raise error
    return value
