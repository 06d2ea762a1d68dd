"""The job's layout: MPI ranks, threads and GPUs per node, and the partitions it asks for."""

from __future__ import annotations

from .. import gpus
from ..relion import gui
from ..script import Script
from .core import Context, Gres, Report, as_int, body_lines, effective, gres_entries, implements, profile_box
from .scratch import REFINE


@implements("ntasks_mismatch")
def layout(script: Script, ctx: Context, report: Report) -> Script:
    ntasks = as_int(effective(script, ctx, "ntasks"))
    nodes = as_int(effective(script, ctx, "nodes"))
    per_node = as_int(effective(script, ctx, "ntasks-per-node"))
    if ntasks is not None and nodes is not None and per_node is not None and ntasks != nodes * per_node:
        report.problem(
            0,
            f"--ntasks={ntasks} but --nodes={nodes} x --ntasks-per-node={per_node} = "
            f"{nodes * per_node}: {_set_mpi(ctx, nodes * per_node)} or change --nodes/--ntasks-per-node "
            f"in {ctx.boxes.for_option('nodes') or profile_box(ctx, '') or ctx.boxes.where()}",
        )
    return script


def _set_mpi(ctx: Context, value: int) -> str:
    """Set RELION's MPI count, in the words of the job's own GUI: a job type without 'Number of MPI procs' (job.star
    has no nr_mpi: ModelAngelo, DynaMight) must not be told to set it."""
    if gui.relion_box(ctx.boxes, "nr_mpi"):
        return f"set 'Number of MPI procs' to {value}"
    return f"change --ntasks in {ctx.boxes.where()} to {value}"


def _set_threads(ctx: Context, value: int) -> str:
    if gui.relion_box(ctx.boxes, "nr_threads"):
        return f"set 'Number of threads' to {value}"
    return f"change --cpus-per-task in {ctx.boxes.where()} to {value}"


def _set_queue(script: Script, ctx: Context) -> str:
    """How to change the job's partition: 'Queue name' when that box filled it; else where it came from (a fixed
    template line: another site's template may have no XXXqueueXXX, and then the box goes nowhere)."""
    if ctx.boxes.template is None and ctx.boxes.values is None:
        return "set 'Queue name' to"  # nothing to ask: RELION's own templates fill --partition from that box
    where = gui.box(ctx, script, "partition")
    if where == gui.label(gui.RELION_BOXES["partition"]):
        return "set 'Queue name' to"
    if where.startswith(("the template", "line ", "the relion-qsub")):
        return gui.set_to(where, "partition")
    return f"change --partition in {where} to"


def _gpu(script: Script, ctx: Context) -> Gres | None:
    found = next((g for g in gres_entries(script, ctx) if g.name == "gpu"), None)
    asked = gpus.per_node(lambda name: effective(script, ctx, name)) if found is None else None
    return Gres("gpu", *asked) if asked is not None else found  # --gpus* count as GPUs in every GPU rule


def _tasks_per_node(script: Script, ctx: Context) -> int | None:
    per_node = as_int(effective(script, ctx, "ntasks-per-node"))
    if per_node is None and as_int(effective(script, ctx, "nodes")) == 1:
        per_node = as_int(effective(script, ctx, "ntasks"))
    return per_node


@implements("tasks_per_gpu")
def gpu_tasks(script: Script, ctx: Context, report: Report) -> Script:
    gpu, per_node = _gpu(script, ctx), _tasks_per_node(script, ctx)
    if gpu and gpu.count and per_node and per_node > gpu.count + 1:
        report.problem(
            0,
            f"{per_node} tasks per node but {gpu.count} GPUs per node: use at most {gpu.count + 1} "
            f"(--ntasks-per-node={gpu.count + 1}"
            + (
                f" with 'Number of MPI procs' = nodes x {gpu.count + 1})"
                if gui.relion_box(ctx.boxes, "nr_mpi")
                else ")"
            ),
        )
    return script


@implements("threads_per_gpu")
def gpu_threads(script: Script, ctx: Context, report: Report) -> Script:
    gpu = _gpu(script, ctx)
    threads = as_int(effective(script, ctx, "cpus-per-task"))
    ranks = as_int(effective(script, ctx, "ntasks")) or 1
    if gpu is None or gpu.type is None or not gpu.count or threads is None or ranks < 2:
        # A single process (VDAM, InitialModel, subtomogram de novo) spreads its threads over every GPU of the
        # node; the seed recommends 16-64 threads there. The per-GPU limit is about MPI ranks, one GPU each.
        return script
    limit = ctx.site.gpu_safe_threads.get(gpu.type)
    workers = _tasks_per_node(script, ctx) or ranks
    if workers > gpu.count:
        workers -= 1  # the leader rank of a homogeneous+1 layout gets no GPU
    per_gpu = -(-threads // max(1, gpu.count // max(1, workers)))
    if limit is not None and per_gpu > limit:
        report.problem(
            0,
            f"{threads} threads per MPI rank put {per_gpu} threads on each {gpu.type} GPU; the safe "
            f"limit is {limit}: {_set_threads(ctx, limit * max(1, gpu.count // max(1, workers)))} or fewer",
        )
    return script


@implements("plus_one_launcher")
def plus_one(script: Script, ctx: Context, report: Report) -> Script:
    per_node, nodes = as_int(effective(script, ctx, "ntasks-per-node")), as_int(effective(script, ctx, "nodes"))
    if (
        _gpu(script, ctx) is None
        or per_node is None
        or nodes is None
        or nodes < 2
        or per_node <= 2
        or per_node % 2 == 0
    ):
        return script
    body = "\n".join(script.body())
    if any(word in body for word in (*ctx.site.launchers, "add_extra_MPI_task")):
        return script
    for _, line in body_lines(script):
        if REFINE.search(line.text) or "_mpi" in line.text:
            report.problem(
                line.number,
                "this MPI command is not started through ${RELION_STD_LAUNCHER}: the leader "
                "rank will take a GPU slot; start it with ${RELION_STD_LAUNCHER}",
            )
            break
    return script


def _partitions(script: Script, ctx: Context) -> list[str]:
    """The partitions the job asks for (a comma list: Slurm takes the first that can run it)."""
    name = effective(script, ctx, "partition")
    return [p.strip() for p in (name or "").split(",") if p.strip()] if ctx.site.partitions else []


@implements("unknown_partition")
def unknown_partition(script: Script, ctx: Context, report: Report) -> Script:
    site = ctx.site
    unknown = [p for p in _partitions(script, ctx) if p not in site.partitions]
    if unknown:
        report.problem(
            0,
            f"partition {unknown[0]!r} is not one of this site's: {_set_queue(script, ctx)} one of "
            f"{', '.join(sorted(site.partitions))}",
        )
    return script


@implements("gpu_partition")
def gpu_partition(script: Script, ctx: Context, report: Report) -> Script:
    site = ctx.site
    gpu = _gpu(script, ctx)
    if gpu is None:
        return script
    for part_name in _partitions(script, ctx):
        part = site.partitions.get(part_name)
        if part is None:
            continue  # unknown_partition's finding
        if not part.gpu_types:
            report.problem(
                0,
                f"--gres={gpu.text} asks for GPUs but partition {part_name!r} has none: {_set_queue(script, ctx)} "
                f"{' or '.join(site.gpu_partitions()) or 'a GPU partition'}",
            )
        elif gpu.type and gpu.type not in part.gpu_types:
            report.problem(0, f"partition {part_name!r} has no {gpu.type} GPUs: use one of {', '.join(part.gpu_types)}")
        elif gpu.count and part.gpus_per_node and gpu.count > part.gpus_per_node:
            report.problem(
                0,
                f"--gres={gpu.text} asks for {gpu.count} GPUs per node; partition {part_name!r} nodes "
                f"have {part.gpus_per_node}",
            )
    return script
