"""How a report writes times and sizes: Slurm's clock for what goes back into a GUI box, short forms in tables."""

from __future__ import annotations

GIB = 1024**3


def clock(seconds: float) -> str:
    """Slurm's --time spelling: ``H:MM:SS``, ``D-HH:MM:SS`` from one day on."""
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{hours}:{minutes:02d}:{secs:02d}"


def short(seconds: float | None) -> str:
    """``12s``, ``7m``, ``1h12m``, ``2d4h`` for a table column; ``-`` when unknown."""
    if seconds is None:
        return "-"
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m" + (f"{total % 60:02d}s" if total < 600 and total % 60 else "")
    if total < 86400:
        hours, minutes = divmod(total // 60, 60)
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(total // 3600, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def gb(n_bytes: float | None) -> str:
    """Binary GB as Slurm counts them (``64G`` = 64 x 1024 MB): ``0.30``, ``6.1``, ``61``."""
    if n_bytes is None:
        return "-"
    value = n_bytes / GIB
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"
