"""Slurm's units, parsed as Slurm parses them: memory sizes (MB by default) and times (minutes by default).

Import-light (nothing at all): the submit path's fit rules (``relion_qsub.checks.fit``) and the profile read them.
"""

from __future__ import annotations

# No regular expressions: compiling them at import would cost the submit path more than all its parsing here.
_MEMORY_FACTOR = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}
UNLIMITED = ("unlimited", "infinite")


def memory_mb(text: str) -> int | None:
    """A Slurm memory size (``20g``, ``4200m``, ``500`` = MB, ``0``) in MiB; None when it is not one."""
    value = text.strip()
    factor: float = 1
    if value and value[-1].lower() in _MEMORY_FACTOR:
        factor, value = _MEMORY_FACTOR[value[-1].lower()], value[:-1]
    if not (value.isascii() and value.isdigit()):
        return None
    return int(int(value) * factor)


def _numbers(text: str, most: int) -> list[int] | None:
    parts = text.split(":")
    if not 1 <= len(parts) <= most or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return [int(p) for p in parts]


def minutes(text: str) -> float | None:
    """A Slurm time limit in minutes (seconds as fractions); ``inf`` for UNLIMITED; None when it is not one.

    sbatch --time: "minutes", "minutes:seconds", "hours:minutes:seconds", "days-hours", "days-hours:minutes",
    "days-hours:minutes:seconds" (man sbatch)."""
    value = text.strip()
    if value.lower() in UNLIMITED:
        return float("inf")
    days, dash, rest = value.partition("-")
    if dash:
        clock = _numbers(rest, 3)
        if clock is None or not (days.isascii() and days.isdigit()):
            return None
        hours, mins, secs = [*clock, 0, 0][:3]
        return int(days) * 1440 + hours * 60 + mins + secs / 60
    parts = _numbers(value, 3)
    if parts is None:
        return None
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
