"""The plan of a launch and what run.out says about it: ranks, nodes, RELION's GPU mapping, the hostfile, srun argv."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence

from ..errors import UsageError
from .gpumap import GpuUse, gpu_use, node_devices_used
from .invocation import FALSE_WORDS, PROG, Invocation, RelionArgs, positive
from .layout import (
    MODE_CHOICES,
    LayoutOptions,
    Mode,
    Plan,
    compress_counts,
    plan_layout,
    plan_local,
)


def _old_gpu_bind_setting(env: Mapping[str, str]) -> str | None:
    """RELION_LAUNCH_GPU_BIND asked for the one-GPU-per-rank binding that relion-launch no longer does."""
    setting = env.get("RELION_LAUNCH_GPU_BIND", "").strip()
    if not setting or setting.lower() in FALSE_WORDS:
        return None
    return (
        f"RELION_LAUNCH_GPU_BIND={setting} has no effect: every rank sees all the GPUs Slurm gave its node and "
        "RELION maps them (one GPU per rank made relion_refine_mpi count one GPU shared by all workers of a node "
        "and give each 1/K of its memory); unset it"
    )


# -------------------------------------------------------------------------------------------------- planning


def make_plan(inv: Invocation, env: Mapping[str, str], rargs: RelionArgs, hostfile: str) -> Plan:
    old = _old_gpu_bind_setting(env)
    if old:
        inv.warnings.append(old)
    mode = inv.mode or env.get("RELION_LAUNCH_MODE", "").strip() or "auto"
    if mode not in MODE_CHOICES:
        raise UsageError(f"--mode {mode!r}: choose one of {', '.join(MODE_CHOICES)}")
    if env.get("SLURM_JOB_ID", "").strip():
        options = LayoutOptions(
            mode=mode,
            ntasks=inv.ntasks,
            srun_options=tuple(inv.srun_options),
            command=tuple(inv.command),
            hostfile_path=hostfile,
        )
        return plan_layout(env, options)
    if inv.srun_options:
        inv.warnings.append(f"ignoring srun options outside a Slurm job (no SLURM_JOB_ID): {inv.srun_options}")
    np_raw = env.get("RELION_LAUNCH_NP", "").strip()
    ranks = inv.ntasks or (positive(np_raw, "RELION_LAUNCH_NP") if np_raw else 1)
    mpirun = tuple(shlex.split(env.get("RELION_MPIRUN", "").strip() or "mpirun"))
    return plan_local(env, LayoutOptions(command=tuple(inv.command), mpirun=mpirun), ranks)


def plan_gpus(plan: Plan, rargs: RelionArgs) -> GpuUse:
    """RELION's own GPU mapping for this plan (outside Slurm the node's GPUs are unknown: nothing to predict)."""
    if plan.mode is Mode.LOCAL:
        return GpuUse("", None)
    return gpu_use(rargs, plan.rank_nodes(), plan.gpus, plan.ranks)


def _rank_gpu(plan: Plan, use: GpuUse, rank: int) -> str:
    """What the plan shows for one rank: the GPU ids (as CUDA_VISIBLE_DEVICES lists them) RELION will use."""
    if not plan.gpus:
        return "-"
    if use.rank_devices is None:
        return "all visible (unused: CPU run)" if use.unused else "all visible (RELION maps)"
    devices = use.rank_devices[rank]
    if not devices:
        return "none (leader)"
    n = len(plan.gpus)
    return ",".join(plan.gpus[d] if d < n else f"<device {d}: not on the node>" for d in devices)


def _rank_row(plan: Plan, use: GpuUse, nodes: Sequence[str] | None, rank: int) -> str:
    node = nodes[rank] if nodes is not None else "(Slurm decides)"
    return f"  rank {rank:<6} {node:<16} GPU {_rank_gpu(plan, use, rank)}"


def format_plan(plan: Plan, rargs: RelionArgs, use: GpuUse, limit: int = 64) -> str:
    """The plan as text; long rank and hostfile lists are clipped, and only the rows shown are formatted."""
    out = [
        f"mode:      {plan.mode}",
        f"reason:    {plan.reason}",
        f"ranks:     {plan.ranks}",
        f"argv:      {shlex.join(plan.argv)}",
    ]
    if plan.env_set:
        out.append("env set:   " + " ".join(f"{k}={v}" for k, v in plan.env_set.items()))
    if plan.env_unset:
        out.append("env unset: " + " ".join(plan.env_unset))
    if plan.nodes:
        out.append(f"nodes:     {len(plan.nodes)} ({compress_counts(plan.tasks_allocated)} tasks of room)")
    if plan.gpus:
        source = f" (from {plan.gpu_source}; every rank sees all of them)" if plan.gpu_source else ""
        out.append(f"node GPUs: {','.join(plan.gpus)}{source}")
    if use.rule:
        out.append(f"GPU map:   {use.rule}")
    out.append(f"summary:   {summary_line(plan, rargs, None, use)}")
    for w in (*plan.warnings, *use.warnings):
        out.append(f"warning:   {w}")
    if plan.hostfile_lines:
        lines = plan.hostfile_lines
        out.append(f"hostfile ({len(lines)} lines):")
        out.extend(_clipped(len(lines), limit, lambda i: f"  {lines[i]}"))
    out.append("rank -> node, GPU:")
    nodes = plan.rank_nodes()
    out.extend(_clipped(plan.ranks, limit, lambda r: _rank_row(plan, use, nodes, r)))
    return "\n".join(out)


def _clipped(count: int, limit: int, row: Callable[[int], str]) -> list[str]:
    """Rows 0..count-1, or the first limit-8, a '... (N more)' line and the last 4 when there are more than limit."""
    if count <= limit:
        return [row(i) for i in range(count)]
    head, tail = range(limit - 8), range(count - 4, count)
    return [*map(row, head), f"  ... ({count - len(head) - len(tail)} more)", *map(row, tail)]


def _gpu_summary(plan: Plan, use: GpuUse) -> str:
    """GPUs/rank: what RELION will use of the node's GPUs that every rank sees."""
    n = len(plan.gpus)
    if not n:
        return "none"
    if use.rank_devices is None:
        return f"all {n} visible " + ("(unused: CPU run)" if use.unused else "(RELION maps)")
    counts = sorted({len(d) for d in use.rank_devices if d})
    if not counts:
        return f"none of {n}"
    text = (str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}") + f" of {n} visible"
    notes = ["leader none"] if not use.rank_devices[0] else []
    nodes = plan.rank_nodes()
    if nodes is not None:
        idle = max(n - len([d for d in used if d < n]) for used in node_devices_used(use, nodes).values())
        if idle:
            notes.append(f"{idle} idle per node")
    if use.shared:
        notes.append(f"{use.shared} shared")
    return text + (f" ({', '.join(notes)})" if notes else "")


def summary_line(plan: Plan, rargs: RelionArgs, scratch: str | None, use: GpuUse) -> str:
    if plan.mode is Mode.HOMOGENEOUS_PLUS_ONE:
        per_node = compress_counts(plan.ranks_per_node)
    elif plan.ranks_per_node:
        per_node = compress_counts(plan.ranks_per_node)
    else:
        per_node = "Slurm decides"
    gpus = _gpu_summary(plan, use)
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
