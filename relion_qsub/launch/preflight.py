"""Checks before the step starts: local CPUs, threads per rank against the allocation, room for --scratch_dir."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from ..errors import UsageError
from ..relion.gui import THREADS
from .invocation import RelionArgs
from .layout import (
    Plan,
)


def check_local_cpus(plan: Plan, rargs: RelionArgs) -> None:
    """Outside Slurm nobody else stops an oversubscribed node: ranks x threads must fit this node's CPUs."""
    import psutil  # lazy: only local runs pay for it

    try:
        cpus = len(psutil.Process().cpu_affinity() or [])
    except (AttributeError, NotImplementedError, psutil.Error):
        cpus = 0
    cpus = cpus or psutil.cpu_count() or 1
    threads = rargs.threads or 1
    need = plan.ranks * threads
    if need > cpus:
        raise UsageError(
            f"{plan.ranks} ranks × {threads} threads (--j) need {need} CPUs but this node has {cpus} usable; "
            "lower -n or --j, or submit the job to the queue"
        )


def thread_warnings(rargs: RelionArgs, env: Mapping[str, str]) -> list[str]:
    raw = env.get("SLURM_CPUS_PER_TASK", "").strip()
    if rargs.threads and raw.isdigit() and rargs.threads > int(raw):
        return [
            f"--j {rargs.threads} threads but the job has --cpus-per-task={raw}: the threads share {raw} "
            f"CPU(s); set RELION's 'Number of threads' and the template's --cpus-per-task={THREADS} alike"
        ]
    return []


_MRCS = re.compile(rb"@(\S+?\.mrcs)\b")
_STAR_LIMIT = 64 << 20  # read at most this much of --i; beyond it the scan costs more than it tells


def particle_bytes(star: str | None, cwd: Path) -> int | None:
    """Best effort: the size of the image stacks the --i star file references (None when unknown)."""
    if not star or not star.endswith(".star"):
        return None
    path = cwd / star
    try:
        if path.stat().st_size > _STAR_LIMIT:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    total = 0
    for name in {m.group(1) for m in _MRCS.finditer(data)}:
        try:
            total += (cwd / os.fsdecode(name)).stat().st_size
        except OSError:
            continue
    return total or None


def scratch_check(rargs: RelionArgs, cwd: Path) -> tuple[str | None, list[str]]:
    """(summary text, warnings) for --scratch_dir: free space vs the particles. Never an error."""
    if not rargs.scratch_dir:
        return None, []
    import psutil  # lazy

    probe = Path(rargs.scratch_dir)
    if not probe.is_absolute():
        probe = cwd / probe
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = psutil.disk_usage(str(probe)).free
    except OSError:
        return f"{rargs.scratch_dir} (free space unknown)", []
    need = particle_bytes(rargs.input_star, cwd)
    text = f"{rargs.scratch_dir} ({free / 1e9:.1f} GB free"
    text += f", particles {need / 1e9:.1f} GB)" if need else ")"
    keep = int(rargs.keep_free_scratch_gb * 1e9)
    if need and need + keep > free:
        return text, [
            f"--scratch_dir {rargs.scratch_dir} has {free / 1e9:.1f} GB free on this node but the particles "
            f"take {need / 1e9:.1f} GB plus --keep_free_scratch {rargs.keep_free_scratch_gb:g} GB: RELION "
            "will read the rest from the project directory (ask for more lscratch)"
        ]
    return text, []


# --------------------------------------------------------------------------------------------------- running
