"""Slurm's units, parsed as Slurm parses them: memory sizes (MB by default) and times (minutes by default).

Import-light (only ``re``): the submit path's fit rules (``relion_qsub.fit``) and the profile read them.
"""

from __future__ import annotations

import re

_MEMORY = re.compile(r"^(\d+)([KkMmGgTt]?)$")
_MEMORY_FACTOR = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024, "": 1}
# sbatch --time: "minutes", "minutes:seconds", "hours:minutes:seconds", "days-hours", "days-hours:minutes",
# "days-hours:minutes:seconds" (man sbatch); UNLIMITED/INFINITE for none.
_DAYS = re.compile(r"^(\d+)-(\d+)(?::(\d+))?(?::(\d+))?$")
_CLOCK = re.compile(r"^(\d+)(?::(\d+))?(?::(\d+))?$")
UNLIMITED = ("unlimited", "infinite")


def memory_mb(text: str) -> int | None:
    """A Slurm memory size (``20g``, ``4200m``, ``500`` = MB, ``0``) in MiB; None when it is not one."""
    match = _MEMORY.match(text.strip())
    if match is None:
        return None
    return int(int(match.group(1)) * _MEMORY_FACTOR[match.group(2).lower()])


def minutes(text: str) -> float | None:
    """A Slurm time limit in minutes (seconds as fractions); ``inf`` for UNLIMITED; None when it is not one."""
    value = text.strip()
    if value.lower() in UNLIMITED:
        return float("inf")
    match = _DAYS.match(value)
    if match is not None:
        days, hours, mins, secs = (int(g) if g else 0 for g in match.groups())
        return days * 1440 + hours * 60 + mins + secs / 60
    match = _CLOCK.match(value)
    if match is None:
        return None
    parts = [int(g) for g in match.groups() if g is not None]
    if len(parts) == 1:
        return float(parts[0])
    if len(parts) == 2:
        return parts[0] + parts[1] / 60
    return parts[0] * 60 + parts[1] + parts[2] / 60


def show_minutes(value: float) -> str:
    """Minutes as Slurm writes a time limit: D-HH:MM:SS."""
    total = round(value * 60)
    days, rest = divmod(total, 86400)
    return f"{days}-{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
