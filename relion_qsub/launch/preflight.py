"""Checks before the step starts: local CPUs, threads per rank against the allocation, room for --scratch_dir, and
the relion_python_* programs the command needs."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import CommandError, UsageError
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


# RELION 5 runs these from RELION's conda environment, by name from PATH (src/pipeline_jobs.cpp): ModelAngelo's and
# DynaMight's jobs start relion_python_modelangelo / relion_python_dynamight themselves (the job's command), and
# relion_refine --blush popen()s "relion_python_blush <star> ..." at every reconstruction (src/backprojector.cpp
# BackProjector::externalReconstruct; the arguments from src/ml_optimiser.cpp MlOptimiser::initialiseGeneral).
# Blush fails only when the first reconstruction ends (hours in); users meet it when the conda environment is not
# on the compute nodes' PATH (3dem/relion issues 1214, 910).
PYTHON_PREFIX = "relion_python_"
BLUSH = ("--blush", "relion_python_blush", ("relion_refine", "relion_refine_mpi"))


def _found(program: str, path: str | None) -> bool:
    if "/" in program:
        return os.path.isfile(program) and os.access(program, os.X_OK)
    return shutil.which(program, path=path) is not None


def python_programs(command: Sequence[str], rargs: RelionArgs) -> list[tuple[str, str]]:
    """(program, why the job needs it) for each relion_python_* program the command will run."""
    needed: list[tuple[str, str]] = []
    if command and rargs.program.startswith(PYTHON_PREFIX):
        needed.append((command[0], "the job's command"))
    flag, blush, runners = BLUSH
    if rargs.program in runners and flag in rargs.flags:
        needed.append((blush, f"{rargs.program} {flag} runs it for every reconstruction"))
    return needed


def check_python_programs(command: Sequence[str], rargs: RelionArgs, env: Mapping[str, str]) -> None:
    """A CommandError (exit 69; relion-launch then writes RELION_JOB_EXIT_FAILURE) for the first one missing.

    The PATH checked is the batch step's, which srun passes on to every rank (its default --export=ALL).
    """
    for program, why in python_programs(command, rargs):
        if "/" in program and not _found(program, None):
            raise CommandError(
                f"{program} ({why}) is not an executable file on this compute node; fix the job's executable box, "
                "or leave it as RELION's default name and put RELION's conda environment on PATH"
            )
        if not _found(program, env.get("PATH")):
            raise CommandError(
                f"{program} ({why}) is not on PATH inside the job: it must be on PATH on the compute nodes "
                "(load RELION's module or conda environment in the queue template before the launcher line, "
                "or give its full path in the job's executable box)"
            )
