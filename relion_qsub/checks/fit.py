"""Fit checks: does the job fit the partition it goes to? Checked before sbatch, from the profile's partition limits.

sbatch answers an impossible request with "Requested node configuration is not available" or "Invalid feature
specification", and accepts a walltime over MaxTime or more nodes than the partition has, which then pend forever
(squeue reasons PartitionTimeLimit, PartitionNodeLimit; checked on the testbed). The limits come from the profile
(``[partitions.*]``, written by ``relion-qsub site init``; cached with it), never from a Slurm call per submission.
Each check serves one policy key and says, in one sentence, which GUI box the value came from and what fits. They
run after the normalisation rules, on the normalised script, and only report: what fits is the user's choice (they
return None).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .. import gpus, units
from ..profile import Partition
from ..relion import gui
from ..script import Script
from .core import Context, Report, as_int, effective, gres_entries, implements

SURELY_GB = 32  # memory_unit: a unit-less memory value up to this many "MB" is almost surely meant as GB
# The size check a fully filled template carries (sitetools/jinja/size.sh.j2), as RELION filled it.
SIZE_GUARD = re.compile(r'\s*if \[ "(\d+)" != "(\d+)" \] \|\| \[ "(\d+)" != "(\d+)" \]; then')
# A --constraint expression's operators and node counts (man sbatch): ``a&b``, ``a|b``, ``[a*2&b]``, ``a,b``, ``(a|b)``.
_FEATURE_SPLIT = re.compile(r"[&|,\[\]()\s]+")
_FEATURE_COUNT = re.compile(r"\*\d+")


# ---------------------------------------------------------------------------------------------- helpers


def size_guard(script: Script) -> tuple[int, int, int, int] | None:
    """(RELION's MPI procs, the template's, RELION's threads, the template's) of a fully filled template."""
    for line in script.lines[script.body_start :]:
        match = SIZE_GUARD.match(line.text)
        if match is not None:
            a, b, c, d = (int(g) for g in match.groups())
            return a, b, c, d
    return None


def _where(script: Script, ctx: Context, name: str) -> str:
    return gui.box(ctx, script, name, size_guard(script) is not None)


def _box(relion_box: str) -> str:
    return gui.label(gui.RELION_BOXES[relion_box])


def _getter(script: Script, ctx: Context) -> Callable[[str], str | None]:
    return lambda name: effective(script, ctx, name)


def target(script: Script, ctx: Context) -> Partition | None:
    """The partition the job goes to: the first of --partition, else the site's default (None if unknown)."""
    name = effective(script, ctx, "partition")
    if name:
        return ctx.site.partitions.get(name.split(",")[0].strip())
    return ctx.site.default_partition()


def cpus_per_node(get: Callable[[str], str | None]) -> tuple[int, int | None, int]:
    """(CPUs the busiest node must give, tasks on it when known, CPUs per task)."""
    per_task = as_int(get("cpus-per-task")) or 1
    tasks = gpus.tasks_per_node(get)
    if tasks is None and as_int(get("nodes")) == 1:
        tasks = as_int(get("ntasks"))
    return (tasks or 1) * per_task, tasks, per_task


def _set(where: str, option: str) -> str:
    """How to change a value: in its box, or in the template (line) when no box filled it."""
    return gui.set_to(where, option)


def _mb(value: float) -> str:
    return f"{int(value)} MB" if value < 10240 else f"{value / 1024:.0f} GB"


# ---------------------------------------------------------------------------------------------- rules


@implements("max_time")
def max_time(script: Script, ctx: Context, report: Report) -> None:
    part, value = target(script, ctx), effective(script, ctx, "time")
    if part is None or not part.max_time or not value:
        return
    asked, limit = units.minutes(value), units.minutes(part.max_time)
    if asked is not None and limit is not None and asked > limit:
        where = _where(script, ctx, "time")
        report.problem(
            0,
            f"--time={value} from {where} is over the MaxTime of partition {part.name!r}, {part.max_time} (the job "
            f"would pend forever): {_set(where, 'time')} {part.max_time} or less",
        )


@implements("partition_nodes")
def partition_nodes(script: Script, ctx: Context, report: Report) -> None:
    part, nodes = target(script, ctx), as_int(effective(script, ctx, "nodes"))
    ntasks = as_int(effective(script, ctx, "ntasks"))
    if ntasks is not None and nodes is not None:
        nodes = min(nodes, ntasks)  # sbatch: "can't run 2 processes on 3 nodes, setting nnodes to 2"
    if part is None or nodes is None:
        return
    limits = [n for n in (part.max_nodes, part.nodes) if n]
    if limits and nodes > min(limits):
        where = _where(script, ctx, "nodes")
        report.problem(
            0,
            f"--nodes={nodes} from {where} is more than partition {part.name!r} allows ({min(limits)}): ask for "
            f"--nodes={min(limits)} or fewer",
        )


@implements("node_cpus")
def node_cpus(script: Script, ctx: Context, report: Report) -> None:
    part = target(script, ctx)
    if part is None or not part.cpus:
        return
    need, tasks, per_task = cpus_per_node(_getter(script, ctx))
    if need <= part.cpus:
        return
    threads = _where(script, ctx, "cpus-per-task")
    if tasks is None or tasks == 1:
        report.problem(
            0,
            f"--cpus-per-task={per_task} from {threads} is more than the {part.cpus} CPUs of a partition "
            f"{part.name!r} node: {_set(threads, 'cpus-per-task')} {part.cpus} or fewer",
        )
        return
    ranks = _where(script, ctx, "ntasks-per-node" if script.has("ntasks-per-node") else "ntasks")
    report.problem(
        0,
        f"{tasks} tasks per node (from {ranks}) x {per_task} CPUs (from {threads}) = {need} CPUs, but a partition "
        f"{part.name!r} node has {part.cpus}: {_set(threads, 'cpus-per-task')} {max(1, part.cpus // tasks)} or fewer, "
        "or put "
        f"at most {max(1, part.cpus // per_task)} tasks on a node",
    )


def memory_request(script: Script, ctx: Context) -> tuple[str, str, float, int] | None:
    """(option, value, MB per node, how many units it was multiplied by) of the job's memory option."""
    get = _getter(script, ctx)
    for name in ("mem", "mem-per-cpu", "mem-per-gpu"):
        value = get(name)
        mb = units.memory_mb(value) if value else None
        if value is None or mb is None or mb == 0:  # 0: all of the node's memory (man sbatch)
            continue
        if name == "mem":
            return name, value, mb, 1
        if name == "mem-per-cpu":
            factor = cpus_per_node(get)[0]
        else:
            asked = gpus.per_node(get)
            gres = next((g for g in gres_entries(script, ctx) if g.name == "gpu"), None)
            factor = (gres.count if gres and gres.count else None) or (asked[1] if asked else 1)
        return name, value, mb * factor, factor
    return None


@implements("node_memory")
def node_memory(script: Script, ctx: Context, report: Report) -> None:
    part = target(script, ctx)
    has = units.memory_mb(part.memory) if part is not None and part.memory else None
    asked = memory_request(script, ctx)
    if part is None or not has or asked is None or asked[2] <= has:
        return
    name, value, need, factor = asked
    where = _where(script, ctx, name)
    per = f" x {factor} {'CPUs' if name == 'mem-per-cpu' else 'GPUs'} per node = {_mb(need)}" if factor > 1 else ""
    report.problem(
        0,
        f"--{name}={value} from {where}{per} is more than the {_mb(has)} of a partition {part.name!r} node: "
        f"{_set(where, name)} {has // factor}m or less (0 with --exclusive gives the job all of each node's memory)",
    )


@implements("memory_unit")
def memory_unit(script: Script, ctx: Context, report: Report) -> None:
    for name in ("mem-per-cpu", "mem-per-gpu", "mem"):
        value = effective(script, ctx, name)
        # 1..32 without a unit is GB meant (2, 4, 8, 16, 20, 32 per thread are the usual values); 100 MB for a
        # small test job is plausible, so larger numbers are left alone.
        if value and value.strip().isdigit() and 0 < int(value) <= SURELY_GB:
            where = _where(script, ctx, name)
            report.problem(
                0,
                f"--{name}={value} from {where} is {value} MB (a value without a unit is MB), too little for RELION: "
                f"write {value}g for {value} GB",
            )
            return


# A RELION MPI program (``relion_refine_mpi``, ``relion_run_motioncorr_mpi``): RELION writes one only for MPI procs > 1
# (RelionJob::prepareFinalCommand, pipeline_jobs.cpp).
_RELION_MPI = re.compile(r"\brelion_\w+_mpi\b")
# The least memory a rank of a RELION MPI program can run in: the MPI runtime itself takes a few hundred MB, and
# every rank reads the whole particles STAR file (MpiNode / MlOptimiserMpi::initialise): a unit-less value that
# gives a rank less than this many MB was meant as GB.
RANK_MIN_MB = 512


def _mb_per_rank(script: Script, ctx: Context, name: str, mb: float) -> float:
    get = _getter(script, ctx)
    if name == "mem-per-cpu":
        return mb * (as_int(get("cpus-per-task")) or 1)
    if name == "mem-per-gpu":
        return mb
    tasks = cpus_per_node(get)[1] or as_int(get("ntasks")) or 1  # several ranks may share a node's --mem
    return mb / tasks


@implements("memory_unit_mpi")
def memory_unit_mpi(script: Script, ctx: Context, report: Report) -> None:
    program = next((m.group() for line in script.body() for m in [_RELION_MPI.search(line)] if m), None)
    if program is None:
        return
    for name in ("mem-per-cpu", "mem-per-gpu", "mem"):
        value = effective(script, ctx, name)
        if not value or not value.strip().isdigit() or int(value) <= SURELY_GB:
            continue  # a unit, or 0 (all of a node's memory), or memory_unit's 1..32
        per_rank = _mb_per_rank(script, ctx, name, float(value))
        if per_rank < RANK_MIN_MB:
            where = _where(script, ctx, name)
            report.problem(
                0,
                f"--{name}={value} from {where} is {value} MB (a value without a unit is MB), {per_rank:.0f} MB for "
                f"each rank of {program}, far less than a RELION rank needs: did you mean {value}G? "
                f"write --{name}={value}G in {where}",
            )
            return


@implements("node_scratch")
def node_scratch(script: Script, ctx: Context, report: Report) -> None:
    part = target(script, ctx)
    if part is None or not part.scratch_gb:
        return
    gres = ctx.site.scratch.gres
    for entry in gres_entries(script, ctx):
        if entry.name == gres and entry.count is not None and entry.count > part.scratch_gb:
            where = _where(script, ctx, "gres")
            report.problem(
                0,
                f"--gres={entry.text} from {where} is more than the {gres}:{part.scratch_gb} of a partition "
                f"{part.name!r} node: {_set(where, 'gres')} {gres}:{part.scratch_gb} or less",
            )


def _feature_names(expression: str) -> list[str]:
    """The feature names of a --constraint expression as Slurm splits it (man sbatch --constraint): ``&`` and ``,``
    are AND, ``|`` is OR, ``[...]`` a matching OR, ``(...)`` groups, ``*N`` a node count after a name."""
    return [name for name in _FEATURE_SPLIT.split(_FEATURE_COUNT.sub("", expression)) if name.strip()]


def _constraint_problem(value: str, part: Partition | None, cluster: list[str]) -> str | None:
    """What sbatch says of the expression ``value``, or None when it may be met.

    slurmctld checks every name alone against all of the cluster's node features ("Invalid feature specification"),
    then whether the partition's nodes can meet the expression ("Requested node configuration is not available");
    checked on the testbed: ``gpup100|x2695`` in a partition with only gpup100 is accepted, ``gpup100&x2695`` and
    ``gpup100,x2695`` are not. The profile knows a partition's features only as a set, so an OR is judged met when any
    of its names is there, and a bracketed (matching) expression only by its names.
    """
    names = _feature_names(value)
    unknown = [name for name in names if name not in cluster]
    if unknown:
        return (
            f"names feature {unknown[0]!r}, which no node has (this site's nodes have {', '.join(cluster)}); sbatch "
            "refuses it ('Invalid feature specification'): use one of those"
        )
    if part is None or not part.features or "[" in value:
        return None
    missing = [name for name in names if name not in part.features]
    has = ", ".join(part.features)
    if "|" not in value and missing:
        return (
            f"asks for nodes with {' and '.join(missing)}, which partition {part.name!r} nodes do not have (they have "
            f"{has}); sbatch refuses it ('Requested node configuration is not available'): drop "
            f"{' and '.join(missing)} or choose the partition that has {'them' if len(missing) > 1 else 'it'}"
        )
    if "|" in value and len(missing) == len(names):
        return (
            f"asks for {' or '.join(names)}, none of which partition {part.name!r} nodes have (they have {has}); "
            "sbatch refuses it ('Requested node configuration is not available'): name one of those"
        )
    return None


@implements("unknown_feature")
def unknown_feature(script: Script, ctx: Context, report: Report) -> None:
    value = effective(script, ctx, "constraint")
    if not value:
        return
    cluster = sorted({f for p in ctx.site.partitions.values() for f in p.features})
    if not cluster:
        return
    found = _constraint_problem(value, target(script, ctx), cluster)
    if found is not None:
        report.problem(0, f"--constraint={value} from {_where(script, ctx, 'constraint')} {found}")


def _gpu_asked(script: Script, ctx: Context) -> str | None:
    """How the job asks for GPUs (the option as written), or None."""
    entry = next((g for g in gres_entries(script, ctx) if g.name == "gpu"), None)
    if entry is not None:
        return f"--gres={entry.text}"
    asked = gpus.per_node(_getter(script, ctx))
    return asked[2] if asked else None


@implements("gpu_default_partition")
def gpu_default_partition(script: Script, ctx: Context, report: Report) -> None:
    if effective(script, ctx, "partition"):
        return
    part, asked = ctx.site.default_partition(), _gpu_asked(script, ctx)
    if part is None or part.gpu_types or asked is None:
        return
    choices = " or ".join(ctx.site.gpu_partitions()) or "a GPU partition"
    if ctx.boxes.uses("queue") is False:  # the Queue name box goes nowhere: the template has no XXXqueueXXX
        where = ctx.boxes.where()
        report.problem(
            0,
            f"{asked} asks for GPUs but {where} has no --partition (and no {gui.QUEUE}: the 'Queue name' box "
            f"goes nowhere), so the job would land in the default partition {part.name!r}, which has none: add "
            f"'#SBATCH --partition={gui.QUEUE}' to it and set 'Queue name' to {choices}",
        )
        return
    report.problem(
        0,
        f"{asked} asks for GPUs but {_box('partition')} is empty, so the job would land in the "
        f"default partition {part.name!r}, which has none: set {_box('partition')} to {choices}",
    )


@implements("template_size")
def template_size(script: Script, ctx: Context, report: Report) -> None:
    guard = size_guard(script)
    if guard is None:
        return
    relion_mpi, mpi, relion_threads, threads = guard
    if (relion_mpi, relion_threads) == (mpi, threads):
        return
    # Only a box the job's Running tab has (job.star: ModelAngelo and DynaMight have no 'Number of MPI procs', and
    # RELION then fills XXXmpinodesXXX with 1), and only one whose value is not the template's.
    boxes = [
        f"{box} to {want}"
        for variable, have, want in (("nr_mpi", relion_mpi, mpi), ("nr_threads", relion_threads, threads))
        if have != want and (box := gui.relion_box(ctx.boxes, variable))
    ]
    choose = f"choose the template for {relion_mpi} x {relion_threads}"
    fix = f"set {' and '.join(boxes)}, or {choose}" if boxes else choose
    report.problem(
        0,
        f"this template is for {mpi} MPI procs x {threads} threads but RELION's Running tab says "
        f"{relion_mpi} x {relion_threads}: {fix}",
    )
