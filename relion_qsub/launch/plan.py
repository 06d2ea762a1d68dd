"""The plan of a launch and what run.out says about it: ranks, nodes, GPUs, the hostfile, the srun argv."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence

from ..errors import UsageError
from .invocation import FALSE_WORDS, PROG, Invocation, RelionArgs, positive
from .layout import (
    GPU_BIND_SCRIPT,
    MODE_CHOICES,
    LayoutOptions,
    Mode,
    Plan,
    compress_counts,
    plan_layout,
    plan_local,
)


def _gpu_bind_choice(inv: Invocation, env: Mapping[str, str], rargs: RelionArgs) -> tuple[bool, str]:
    if not inv.gpu_bind:
        return False, "--no-gpu-bind"
    setting = env.get("RELION_LAUNCH_GPU_BIND", "").strip().lower()
    if setting in FALSE_WORDS:
        return False, f"RELION_LAUNCH_GPU_BIND={setting}"
    if rargs.gpu and any(c.isdigit() for c in rargs.gpu):
        # Explicit RELION GPU ids index the devices a rank sees; with one GPU per rank only id 0 would exist.
        return False, f"the command names GPU ids: --gpu {rargs.gpu}"
    return True, ""


# -------------------------------------------------------------------------------------------------- planning


def make_plan(inv: Invocation, env: Mapping[str, str], rargs: RelionArgs, hostfile: str) -> Plan:
    bind, off_reason = _gpu_bind_choice(inv, env, rargs)
    mode = inv.mode or env.get("RELION_LAUNCH_MODE", "").strip() or "auto"
    if mode not in MODE_CHOICES:
        raise UsageError(f"--mode {mode!r}: choose one of {', '.join(MODE_CHOICES)}")
    if env.get("SLURM_JOB_ID", "").strip():
        options = LayoutOptions(
            mode=mode,
            gpu_bind=bind,
            ntasks=inv.ntasks,
            srun_options=tuple(inv.srun_options),
            command=tuple(inv.command),
            hostfile_path=hostfile,
            gpu_bind_off_reason=off_reason,
        )
        plan = plan_layout(env, options)
        if plan.mode is Mode.HOMOGENEOUS_PLUS_ONE and plan.gpu_bound and rargs.program != "relion_refine_mpi":
            plan = _with_warning(
                plan,
                f"homogeneous+1 suits relion_refine_mpi, whose rank 0 does no GPU work; rank 0 of "
                f"{rargs.program} gets no GPU here (use --mode homogeneous if it needs one)",
            )
        return plan
    if inv.srun_options:
        inv.warnings.append(f"ignoring srun options outside a Slurm job (no SLURM_JOB_ID): {inv.srun_options}")
    np_raw = env.get("RELION_LAUNCH_NP", "").strip()
    ranks = inv.ntasks or (positive(np_raw, "RELION_LAUNCH_NP") if np_raw else 1)
    mpirun = tuple(shlex.split(env.get("RELION_MPIRUN", "").strip() or "mpirun"))
    return plan_local(env, LayoutOptions(command=tuple(inv.command), mpirun=mpirun), ranks)


def _with_warning(plan: Plan, warning: str) -> Plan:
    from dataclasses import replace

    return replace(plan, warnings=(*plan.warnings, warning))


def _describe_argv(argv: Sequence[str]) -> str:
    """shlex-quoted argv with the GPU-bind wrapper (/bin/sh -c SCRIPT argv0 leader) shown as one token."""
    words = list(argv)
    if GPU_BIND_SCRIPT not in words:
        return shlex.join(words)
    pos = words.index(GPU_BIND_SCRIPT)
    token = f"<gpu-bind wrapper: /bin/sh -c ..., leader={words[pos + 2] or 'none'}>"
    return f"{shlex.join(words[: pos - 2])} {token} {shlex.join(words[pos + 3 :])}"


def _rank_node(plan: Plan, rank: int) -> str | None:
    if plan.mode is Mode.LOCAL:
        return "(this node)"
    if plan.hostfile_lines:
        return plan.hostfile_lines[rank]
    if plan.mode is Mode.HOMOGENEOUS:
        return plan.nodes[rank // plan.ranks_per_node[0]]
    return None


def _rank_row(plan: Plan, rank: int) -> str:
    g = plan.rank_gpus[rank]
    gpu = "all (RELION maps)" if g is None else ("none (leader)" if g == "" else g)
    if not plan.gpus and g is None:
        gpu = "-"
    return f"  rank {rank:<6} {_rank_node(plan, rank) or '(Slurm decides)':<16} GPU {gpu}"


def format_plan(plan: Plan, rargs: RelionArgs, limit: int = 64) -> str:
    """The plan as text; long rank and hostfile lists are clipped, and only the rows shown are formatted."""
    out = [
        f"mode:      {plan.mode}",
        f"reason:    {plan.reason}",
        f"ranks:     {plan.ranks}",
        f"argv:      {_describe_argv(plan.argv)}",
    ]
    if plan.env_set:
        out.append("env set:   " + " ".join(f"{k}={v}" for k, v in plan.env_set.items()))
    if plan.env_unset:
        out.append("env unset: " + " ".join(plan.env_unset))
    if plan.nodes:
        out.append(f"nodes:     {len(plan.nodes)} ({compress_counts(plan.tasks_allocated)} tasks of room)")
    if plan.gpus:
        source = f" (from {plan.gpu_source}, as each rank's GPU binder reads it)" if plan.gpu_source else ""
        out.append(f"node GPUs: {','.join(plan.gpus)}{source}")
    out.append(f"summary:   {summary_line(plan, rargs, None)}")
    for w in plan.warnings:
        out.append(f"warning:   {w}")
    if plan.hostfile_lines:
        lines = plan.hostfile_lines
        out.append(f"hostfile ({len(lines)} lines):")
        out.extend(_clipped(len(lines), limit, lambda i: f"  {lines[i]}"))
    out.append("rank -> node, GPU:")
    out.extend(_clipped(plan.ranks, limit, lambda r: _rank_row(plan, r)))
    return "\n".join(out)


def _clipped(count: int, limit: int, row: Callable[[int], str]) -> list[str]:
    """Rows 0..count-1, or the first limit-8, a '... (N more)' line and the last 4 when there are more than limit."""
    if count <= limit:
        return [row(i) for i in range(count)]
    head, tail = range(limit - 8), range(count - 4, count)
    return [*map(row, head), f"  ... ({count - len(head) - len(tail)} more)", *map(row, tail)]


def summary_line(plan: Plan, rargs: RelionArgs, scratch: str | None) -> str:
    if plan.mode is Mode.HOMOGENEOUS_PLUS_ONE:
        per_node = compress_counts(plan.ranks_per_node)
    elif plan.ranks_per_node:
        per_node = compress_counts(plan.ranks_per_node)
    else:
        per_node = "Slurm decides"
    if plan.gpu_bound:
        gpus = "1 (leader none)" if plan.leader_node else "1"
    elif plan.gpus:
        gpus = f"RELION maps {len(plan.gpus)} per node"
    else:
        gpus = "none"
    threads = str(rargs.threads) if rargs.threads is not None else "1 (no --j)"
    parts = [
        f"{PROG}: {plan.mode}",
        f"ranks {plan.ranks}",
        f"ranks/node {per_node}",
        f"GPUs/rank {gpus}",
        f"threads {threads}",
        f"scratch {scratch or rargs.scratch_dir or 'none'}",
    ]
    return " | ".join(parts)


# ------------------------------------------------------------------------------------------------- preflight
