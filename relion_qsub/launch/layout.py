"""Where the MPI ranks of one RELION command go: a pure function of the job's Slurm environment.

Input: the environment of the batch step (a ``Mapping[str, str]``) and a few options. Output: a frozen
``Plan`` saying how many ranks run, on which nodes, the GPUs of a node, which variables the srun step needs set or
unset, the srun argv, and a human-readable reason. Every rank sees all the GPUs Slurm gave its node: the RELION
program maps them itself (``gpumap`` predicts how). Nothing here runs a process or touches a file;
``main`` does that.

Three distribution modes (the Biowulf RELION guide, "Understanding MPI Task Distribution"):
  heterogeneous   plain ``srun``: Slurm places the tasks (the default).
  homogeneous     the same number of ranks on every node (``--ntasks-per-node``).
  homogeneous+1   GPU jobs with an odd number k >= 3 of tasks per node: the leader rank (RELION's rank 0,
                  which does no GPU work) runs alone-extra on the first node and k-1 worker ranks run on every
                  node. That is 1 + N*(k-1) ranks from an allocation of N*k tasks, laid out
                  with an arbitrary-distribution hostfile. Every worker sees all of its node's GPUs, and
                  relion_refine_mpi's automatic mapping gives each its own when a node has k-1 GPUs.

Slurm behaviour relied on (checked on the testbed, Slurm 22.05; srun(1) "SLURM_HOSTFILE", "-m arbitrary"):
  * ``SLURM_HOSTFILE`` + ``SLURM_DISTRIBUTION=arbitrary``: srun lays the tasks out in the order of the file's
    lines; ``-n`` larger than the number of lines fails ("Too few NodeNames in Slurm Hostfile"), smaller uses
    the first lines only. So ranks == hostfile lines, always, and srun gets ``-n <lines>``.
  * ``SLURM_NTASKS_PER_NODE`` is an srun *input* variable (same as ``--ntasks-per-node``); left set beside a
    hostfile srun warns and ignores it, so the step's environment drops it. ``SLURM_TASKS_PER_NODE`` is output
    only (srun(1) "INPUT ENVIRONMENT VARIABLES" does not list it): it stays.
  * ``SLURM_TASKS_PER_NODE`` has the compressed form ``5(x2),4`` and lists the tasks of each node in the order
    of ``SLURM_JOB_NODELIST``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import hostlist

from ..errors import LayoutError
from ..relion.gui import MPINODES


class Mode(enum.StrEnum):
    HETEROGENEOUS = "heterogeneous"
    HOMOGENEOUS = "homogeneous"
    HOMOGENEOUS_PLUS_ONE = "homogeneous+1"
    LOCAL = "local"  # outside any allocation: mpirun (or the plain program) on this node


MODE_CHOICES = ("auto", Mode.HETEROGENEOUS.value, Mode.HOMOGENEOUS.value, Mode.HOMOGENEOUS_PLUS_ONE.value)

# Shown in plans before the launcher has made its private directory (dry runs).
HOSTFILE_PLACEHOLDER = "<job-private dir>/hostfile"

# Where gpu_ids() looks for the GPUs of a node, in this order (the first non-empty one wins): CUDA_VISIBLE_DEVICES
# first, it is what CUDA enumerates in the step (with device cgroups Slurm renumbers it from 0 while SLURM_JOB_GPUS
# keeps the node's ids); NoDevFiles means none; with no id at all, SLURM_GPUS_ON_NODE as a count 0..n-1.
GPU_SOURCES = ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS")


class LayoutOptions(NamedTuple):
    mode: str = "auto"  # one of MODE_CHOICES
    ntasks: int | None = None  # -n given to relion-launch
    srun: str = "srun"
    srun_options: tuple[str, ...] = ()  # passed through, after ours (the user's word wins where it may)
    command: tuple[str, ...] = ()
    hostfile_path: str = HOSTFILE_PLACEHOLDER
    mpirun: tuple[str, ...] = ("mpirun",)  # local mode only


class Plan(NamedTuple):
    mode: Mode
    ranks: int
    nodes: tuple[str, ...]
    tasks_allocated: tuple[int, ...]  # per node, from SLURM_TASKS_PER_NODE
    ranks_per_node: tuple[int, ...]  # per node, what the step runs
    hostfile_lines: tuple[str, ...]  # empty: no hostfile
    gpus: tuple[str, ...]  # the GPU ids of a node (as the batch step sees its own node); every rank sees them all
    leader_node: str | None
    env_set: Mapping[str, str]
    env_unset: tuple[str, ...]
    argv: tuple[str, ...]
    reason: str
    warnings: tuple[str, ...] = ()
    gpu_source: str = ""  # the variable the GPU ids came from (GPU_SOURCES, or SLURM_GPUS_ON_NODE as a count)

    def rank_nodes(self) -> tuple[str, ...] | None:
        """The node of every rank, in rank order; None where Slurm places the ranks (heterogeneous)."""
        if self.hostfile_lines:
            return self.hostfile_lines  # srun's arbitrary distribution follows the file's lines
        if self.mode is Mode.HOMOGENEOUS:  # block distribution: ranks 0..k-1 on the first node, and so on
            return tuple(node for node, k in zip(self.nodes, self.ranks_per_node, strict=True) for _ in range(k))
        if self.mode is Mode.LOCAL:
            return ("(this node)",) * self.ranks
        return None


# ---------------------------------------------------------------------------------------------------- parsing


# Sanity limits: far above any real job (the largest Slurm clusters run a few 10^5 tasks), low enough that a
# hand-made or corrupted variable gives an error at once instead of a plan that takes minutes and gigabytes.
MAX_RANKS = 1_000_000
MAX_TASKS_PER_NODE = 10_000
MAX_GPUS_PER_NODE = 1_024


def _int_var(env: Mapping[str, str], name: str, fix: str, limit: int | None = None) -> int | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise LayoutError(f"{name}={raw!r} is not a whole number; {fix}") from None
    if value < 1:
        raise LayoutError(f"{name}={raw!r} must be at least 1; {fix}")
    if limit is not None and value > limit:
        raise LayoutError(
            f"{name}={raw.strip()} is more than relion-launch's limit of {limit:,}; is the variable hand-made?"
        )
    return value


def job_nodes(env: Mapping[str, str]) -> tuple[str, ...]:
    """The job's nodes in Slurm's order, from SLURM_JOB_NODELIST (SLURM_NODELIST in old Slurm)."""
    name = "SLURM_JOB_NODELIST" if "SLURM_JOB_NODELIST" in env else "SLURM_NODELIST"
    raw = env.get(name, "").strip()
    if not raw:
        raise LayoutError(
            "SLURM_JOB_NODELIST is not set although SLURM_JOB_ID is: run relion-launch inside the job's "
            "batch script (sbatch/salloc), or unset SLURM_JOB_ID to run on this node"
        )
    try:
        # allow_duplicates: python-hostlist drops repeated names by default; a repeat is an error we report.
        nodes = tuple(hostlist.expand_hostlist(raw, allow_duplicates=True, sort=False))
    except hostlist.BadHostlist as exc:
        raise LayoutError(f"{name}={raw!r} is not a valid Slurm host list ({exc})") from exc
    if len(set(nodes)) != len(nodes):
        raise LayoutError(f"{name}={raw!r} names a node twice; Slurm never does: is the variable hand-made?")
    count = _int_var(env, "SLURM_JOB_NUM_NODES", "it is the job's node count") or _int_var(
        env, "SLURM_NNODES", "it is the job's node count"
    )
    if count is not None and count != len(nodes):
        raise LayoutError(
            f"SLURM_JOB_NUM_NODES={count} but SLURM_JOB_NODELIST names {len(nodes)} nodes; the job "
            "environment is inconsistent (was one of them changed in the batch script?)"
        )
    return nodes


def tasks_per_node(env: Mapping[str, str], nnodes: int) -> tuple[int, ...]:
    """How many tasks each node can take: SLURM_TASKS_PER_NODE ('5(x2),4'), else SLURM_NTASKS_PER_NODE.

    Slurm derives SLURM_TASKS_PER_NODE from the CPUs allocated on each node, not from the task count: a job
    with --nodes=2 --ntasks-per-node=5 --ntasks=9 has '5(x2)', and --exclusive without --ntasks has '32(x2)'
    on 32-core nodes (seen on Slurm 22.05). So it is a per-node capacity; SLURM_NTASKS is the task count.
    """
    raw = env.get("SLURM_TASKS_PER_NODE", "").strip()
    if raw:
        return _parse_tasks_per_node(raw, nnodes)
    k = _ntasks_per_node(env)
    if k is not None:
        return (k,) * nnodes
    ntasks = _ntasks(env)
    if ntasks is not None and nnodes == 1:
        return (ntasks,)
    raise LayoutError(
        "SLURM_TASKS_PER_NODE is not set: relion-launch cannot tell how many tasks each node has; run it "
        "inside the batch script of a job submitted with --ntasks (or --nodes with --ntasks-per-node)"
    )


_TASKS_PART = re.compile(r"(\d+)(?:\(x(\d+)\))?")


def _parse_tasks_per_node(raw: str, nnodes: int) -> tuple[int, ...]:
    """Slurm's '5(x2),4' for nnodes nodes, checked part by part before anything is expanded."""
    name = "SLURM_TASKS_PER_NODE"
    parts: list[tuple[int, int]] = []
    for part in raw.split(","):
        m = _TASKS_PART.fullmatch(part.strip())
        if m is None or int(m.group(2) or 1) < 1:
            raise LayoutError(f"{name}={raw!r} is not Slurm's 'count(xrepeat),...' form (bad part {part!r})")
        count = int(m.group(1))
        if count < 1:
            raise LayoutError(f"{name}={raw!r} gives a node no task")
        if count > MAX_TASKS_PER_NODE:
            raise LayoutError(
                f"{name}={raw!r} gives a node {count:,} tasks, more than relion-launch's limit of "
                f"{MAX_TASKS_PER_NODE:,}; is the variable hand-made?"
            )
        parts.append((count, int(m.group(2) or 1)))
    described = sum(repeat for _, repeat in parts)
    if described != nnodes:
        raise LayoutError(
            f"{name}={raw!r} describes {described} nodes but the job has {nnodes}; the job environment is inconsistent"
        )
    return tuple(count for count, repeat in parts for _ in range(repeat))


def _ntasks_per_node(env: Mapping[str, str]) -> int | None:
    return _int_var(
        env, "SLURM_NTASKS_PER_NODE", "set --ntasks-per-node to a positive number", limit=MAX_TASKS_PER_NODE
    )


def _ntasks_name(env: Mapping[str, str]) -> str:
    return "SLURM_NTASKS" if env.get("SLURM_NTASKS", "").strip() else "SLURM_NPROCS"


def _ntasks(env: Mapping[str, str]) -> int | None:
    return _int_var(env, _ntasks_name(env), "it is the job's --ntasks", limit=MAX_RANKS)


class JobShape(NamedTuple):
    """What the batch step's environment says about the allocation."""

    nodes: tuple[str, ...]
    capacity: tuple[int, ...]  # tasks each node can take (SLURM_TASKS_PER_NODE)
    ntasks: int  # tasks a plain srun starts
    ntasks_given: bool  # the job was submitted with --ntasks (SLURM_NTASKS set)
    k_user: int | None  # --ntasks-per-node (SLURM_NTASKS_PER_NODE)
    k: int | None  # tasks per node if the allocation is uniform, else None
    gpus: tuple[str, ...]
    ntasks_source: str = "SLURM_NTASKS"  # where ntasks came from, for messages
    gpu_source: str = ""  # the variable the GPU ids came from


def job_shape(env: Mapping[str, str]) -> JobShape:
    nodes = job_nodes(env)
    n = len(nodes)
    capacity = tasks_per_node(env, n)
    k_user = _ntasks_per_node(env)
    given = _ntasks(env)
    # Inside an allocation a plain srun starts SLURM_NTASKS tasks; without it, --ntasks-per-node per node;
    # with neither, one task per node (a --exclusive job without --ntasks, seen on 22.05).
    if given is not None:
        ntasks, source = given, f"{_ntasks_name(env)}={given}"
    elif k_user is not None:
        ntasks, source = k_user * n, f"SLURM_NTASKS_PER_NODE={k_user} on {n} node{'s' if n > 1 else ''}"
    else:
        ntasks, source = n, f"one task on each of the {n} node{'s' if n > 1 else ''} (no SLURM_NTASKS)"
    _check_rank_limit(ntasks, source)
    k: int | None = k_user
    if k is None and given is not None and len(set(capacity)) == 1 and capacity[0] * n == given:
        k = capacity[0]  # --ntasks=10 --nodes=2 landed as 5(x2): uniform although not asked for
    gpus, gpu_source = gpu_ids(env)
    return JobShape(nodes, capacity, ntasks, given is not None, k_user, k, gpus, source, gpu_source)


def _check_rank_limit(ranks: int, source: str) -> None:
    if ranks > MAX_RANKS:
        raise LayoutError(
            f"{source} gives {ranks:,} ranks, more than relion-launch's limit of {MAX_RANKS:,}; is the job "
            "environment hand-made?"
        )


def gpu_ids(env: Mapping[str, str]) -> tuple[tuple[str, ...], str]:
    """(GPU ids of this node, where they came from), by the order of GPU_SOURCES."""
    name = next((n for n in GPU_SOURCES if env.get(n)), "")
    raw = env.get(name, "") if name else ""
    if raw != "NoDevFiles":
        ids = tuple(g for g in re.split(r"[, ]", raw) if g)
        if ids:
            return ids, name
    count_raw = env.get("SLURM_GPUS_ON_NODE", "")
    if re.fullmatch(r"\s*\+?\d+\s*", count_raw):
        count = int(count_raw)
        if count > MAX_GPUS_PER_NODE:
            raise LayoutError(
                f"SLURM_GPUS_ON_NODE={count_raw.strip()} is more than relion-launch's limit of "
                f"{MAX_GPUS_PER_NODE:,}; is the variable hand-made?"
            )
        if count > 0:
            return tuple(str(i) for i in range(count)), "SLURM_GPUS_ON_NODE"
    return (), ""


def compress_counts(counts: Sequence[int]) -> str:
    """Slurm's compressed count list: [5, 5, 4] -> '5(x2),4'."""
    parts: list[str] = []
    i = 0
    while i < len(counts):
        j = i
        while j + 1 < len(counts) and counts[j + 1] == counts[i]:
            j += 1
        run = j - i + 1
        parts.append(f"{counts[i]}(x{run})" if run > 1 else str(counts[i]))
        i = j + 1
    return ",".join(parts)


# ---------------------------------------------------------------------------------------------------- layouts


def plus_one_lines(nodes: Sequence[str], k: int) -> list[str]:
    """Homogeneous+1 hostfile: the leader alone-extra on the first node, then k-1 workers on every node.

    The leader's line comes first, so it is rank 0 (srun follows the file's order under arbitrary
    distribution). 1 + N*(k-1) lines for N nodes, the same as Biowulf's add_extra_MPI_task.sh.
    """
    lines = [nodes[0]] * k
    workers = k - 1
    for node in nodes[1:]:
        lines.extend([node] * workers)
    return lines


def _gpu_note(shape: JobShape) -> str:
    n = len(shape.gpus)
    return f"; every rank sees the {n} GPU{'s' if n > 1 else ''} Slurm gave its node and RELION maps them" if n else ""


def plan_layout(env: Mapping[str, str], options: LayoutOptions) -> Plan:
    """The layout for the current Slurm job (SLURM_JOB_ID set), or a LayoutError naming what to fix."""
    if options.mode not in MODE_CHOICES:
        raise LayoutError(f"unknown mode {options.mode!r}; choose one of {', '.join(MODE_CHOICES)}")
    if not options.command:
        raise LayoutError("no command to launch")
    shape = job_shape(env)
    mode = choose_mode(options.mode, shape)
    if mode is Mode.HOMOGENEOUS_PLUS_ONE:
        return _plan_plus_one(env, options, shape)
    if mode is Mode.HOMOGENEOUS:
        return _plan_homogeneous(env, options, shape)
    return _plan_heterogeneous(env, options, shape)


def choose_mode(requested: str, shape: JobShape) -> Mode:
    if requested != "auto":
        return Mode(requested)
    k = shape.k
    # Biowulf's rule (add_extra_MPI_task.sh): GPUs allocated and an odd number of tasks per node > 2. The seed
    # script applies it to one node too (k lines of that node): the same placement as plain srun, but the
    # leader then gets no GPU of its own.
    if shape.gpus and k is not None and k >= 3 and k % 2 == 1 and _plus_one_fits(shape, k):
        return Mode.HOMOGENEOUS_PLUS_ONE
    if k is not None and shape.k_user is not None and _homogeneous_fits(shape, k):
        return Mode.HOMOGENEOUS
    return Mode.HETEROGENEOUS


def plus_one_ranks(nnodes: int, k: int) -> int:
    return 1 + nnodes * (k - 1)


def _plus_one_fits(shape: JobShape, k: int) -> bool:
    cap = shape.capacity
    return cap[0] >= k and all(c >= k - 1 for c in cap[1:]) and shape.ntasks >= plus_one_ranks(len(shape.nodes), k)


def _homogeneous_fits(shape: JobShape, k: int) -> bool:
    return all(c >= k for c in shape.capacity) and shape.ntasks == k * len(shape.nodes)


# srun options that would fight the hostfile's placement.
_PLACEMENT_OPTIONS = (
    "-N",
    "--nodes",
    "-m",
    "--distribution",
    "--ntasks-per-node",
    "-w",
    "--nodelist",
    "-r",
    "--relative",
)


def _layout_option(srun_options: Sequence[str]) -> str | None:
    for word in srun_options:
        for opt in _PLACEMENT_OPTIONS:
            if word == opt or word.startswith(opt + "=") or (len(opt) == 2 and word.startswith(opt)):
                return opt
    return None


def _check_ntasks(options: LayoutOptions, ranks: int, what: str) -> None:
    if options.ntasks is not None and options.ntasks != ranks:
        raise LayoutError(
            f"-n {options.ntasks} conflicts with the {what} layout of {ranks} ranks; drop -n (relion-launch "
            "sets it) or choose --mode heterogeneous"
        )


def _plus_one_tasks(options: LayoutOptions, shape: JobShape) -> int:
    """k, the tasks per node homogeneous+1 lays out, or the LayoutError that says why the job cannot have it."""
    k = shape.k
    if k is None:
        raise LayoutError(
            f"homogeneous+1 needs the same number of tasks on every node, but SLURM_TASKS_PER_NODE="
            f"{compress_counts(shape.capacity)} and SLURM_NTASKS_PER_NODE is not set; submit with --nodes=N "
            "--ntasks-per-node=<GPUs per node + 1>"
        )
    if k < 2:
        raise LayoutError(
            f"homogeneous+1 needs at least 2 tasks per node (1 leader + workers), but there are {k}; submit "
            "with --ntasks-per-node=<GPUs per node + 1>"
        )
    if not _plus_one_fits(shape, k):
        raise LayoutError(
            f"homogeneous+1 with {k} tasks per node needs {k} tasks on the first node, {k - 1} on the "
            f"others and {plus_one_ranks(len(shape.nodes), k)} in all, but SLURM_TASKS_PER_NODE="
            f"{compress_counts(shape.capacity)} and SLURM_NTASKS={shape.ntasks}; submit with --nodes=N "
            f"--ntasks-per-node={k}"
        )
    clash = _layout_option(options.srun_options)
    if clash:
        raise LayoutError(
            f"srun option {clash} conflicts with the homogeneous+1 hostfile; drop it or use --mode homogeneous"
        )
    return k


def _plus_one_reason(shape: JobShape, ranks: int, workers: int) -> str:
    """The line run.out shows first: how many ranks run, why, and where the leader is."""
    n = len(shape.nodes)
    node_word = "node" if n == 1 else "nodes"
    reason = (
        f"homogeneous+1: running {ranks} ranks (1 leader + {n} {node_word} × {workers} workers) of the "
        f"{shape.ntasks} tasks allocated"
    )
    if shape.ntasks > ranks:
        idle = shape.ntasks - ranks
        reason += f"; {idle} task slot{'s stay' if idle > 1 else ' stays'} idle by design"
    reason += f"; the leader (rank 0) runs alone-extra on {shape.nodes[0]}"
    return reason + _gpu_note(shape)


def _plan_plus_one(env: Mapping[str, str], options: LayoutOptions, shape: JobShape) -> Plan:
    nodes, gpus = shape.nodes, shape.gpus
    k = _plus_one_tasks(options, shape)
    lines = plus_one_lines(nodes, k)
    ranks = len(lines)
    _check_ntasks(options, ranks, "homogeneous+1")
    n, workers = len(nodes), k - 1
    per_node = (k,) + (workers,) * (n - 1)
    leader = nodes[0]
    reason = _plus_one_reason(shape, ranks, workers)
    env_set = {"SLURM_HOSTFILE": options.hostfile_path, "SLURM_DISTRIBUTION": "arbitrary"}
    env_set.update(_cpus_per_task(env, options))
    # An srun input variable (same as --ntasks-per-node): beside a hostfile srun warns and ignores it.
    unset = tuple(v for v in ("SLURM_NTASKS_PER_NODE",) if v in env)
    argv = [options.srun, "-K1", *options.srun_options, "-n", str(ranks), *options.command]
    return Plan(
        mode=Mode.HOMOGENEOUS_PLUS_ONE,
        ranks=ranks,
        nodes=nodes,
        tasks_allocated=shape.capacity,
        ranks_per_node=per_node,
        hostfile_lines=tuple(lines),
        gpus=gpus,
        leader_node=leader,
        env_set=env_set,
        env_unset=unset,
        argv=tuple(argv),
        reason=reason,
        gpu_source=shape.gpu_source,
    )


def _plan_homogeneous(env: Mapping[str, str], options: LayoutOptions, shape: JobShape) -> Plan:
    nodes, gpus, k = shape.nodes, shape.gpus, shape.k
    if k is None or not all(c >= k for c in shape.capacity):
        raise LayoutError(
            f"homogeneous mode needs the same number of tasks on every node, but SLURM_TASKS_PER_NODE="
            f"{compress_counts(shape.capacity)} and SLURM_NTASKS_PER_NODE is "
            f"{'not set' if shape.k_user is None else shape.k_user}; submit with --nodes and "
            "--ntasks-per-node (ntasks = nodes × tasks per node)"
        )
    n = len(nodes)
    ranks = n * k
    _check_rank_limit(ranks, f"homogeneous mode with {k} ranks on each of {n} nodes")
    _check_ntasks(options, ranks, "homogeneous")
    reason = f"homogeneous: {ranks} ranks = {n} node{'s' if n > 1 else ''} × {k} ranks per node" + _gpu_note(shape)
    warnings: list[str] = []
    unset = _clear_stale_hostfile(env, warnings)
    argv = [options.srun, "-K1", "-N", str(n), f"--ntasks-per-node={k}", "-n", str(ranks)]
    argv += [*options.srun_options, *options.command]
    return Plan(
        mode=Mode.HOMOGENEOUS,
        ranks=ranks,
        nodes=nodes,
        tasks_allocated=shape.capacity,
        ranks_per_node=(k,) * n,
        hostfile_lines=(),
        gpus=gpus,
        leader_node=None,
        env_set=_cpus_per_task(env, options),
        env_unset=unset,
        argv=tuple(argv),
        reason=reason,
        warnings=tuple(warnings),
        gpu_source=shape.gpu_source,
    )


def _plan_heterogeneous(env: Mapping[str, str], options: LayoutOptions, shape: JobShape) -> Plan:
    nodes, total = shape.nodes, shape.ntasks
    ranks = options.ntasks if options.ntasks is not None else total
    room = sum(shape.capacity)
    if ranks > room:
        if options.ntasks is not None:
            raise LayoutError(
                f"-n {ranks} asks for more ranks than the {room} tasks the job has room for "
                f"(SLURM_TASKS_PER_NODE={compress_counts(shape.capacity)}); drop -n or submit with --ntasks={ranks}"
            )
        raise LayoutError(
            f"{shape.ntasks_source} asks for {ranks} ranks but SLURM_TASKS_PER_NODE="
            f"{compress_counts(shape.capacity)} has room for {room}; the job environment is inconsistent (was "
            "one of them changed in the batch script?)"
        )
    _check_rank_limit(ranks, f"-n {ranks}")
    n = len(nodes)
    reason = f"heterogeneous: {ranks} ranks placed by Slurm over {n} node{'s' if n > 1 else ''}"
    reason += f" (room for {compress_counts(shape.capacity)} tasks per node)"
    warnings: list[str] = []
    if not shape.ntasks_given and shape.k_user is None and options.ntasks is None:
        warnings.append(
            f"the job was submitted without --ntasks: srun starts one rank per node ({n}); submit with "
            f"--ntasks=<MPI procs> (RELION's template line --ntasks={MPINODES})"
        )
    if shape.k_user is not None and shape.k is not None and not _homogeneous_fits(shape, shape.k):
        reason += f"; --ntasks-per-node={shape.k_user} but {total} tasks do not fill every node evenly"
    reason += _gpu_note(shape)
    unset = _clear_stale_hostfile(env, warnings)
    argv = [options.srun, "-K1"]
    if options.ntasks is not None:
        argv += ["-n", str(options.ntasks)]
    argv += [*options.srun_options, *options.command]
    return Plan(
        mode=Mode.HETEROGENEOUS,
        ranks=ranks,
        nodes=nodes,
        tasks_allocated=shape.capacity,
        ranks_per_node=(),  # Slurm decides
        hostfile_lines=(),
        gpus=shape.gpus,
        leader_node=None,
        env_set=_cpus_per_task(env, options),
        env_unset=unset,
        argv=tuple(argv),
        reason=reason,
        warnings=tuple(warnings),
        gpu_source=shape.gpu_source,
    )


def _cpus_per_task(env: Mapping[str, str], options: LayoutOptions) -> dict[str, str]:
    """Carry the job's --cpus-per-task into the step (RELION's --j threads need those CPUs).

    Slurm 22.05's srun no longer reads SLURM_CPUS_PER_TASK (22.05 release notes; SRUN_CPUS_PER_TASK is the new
    input variable), so on a site that binds tasks to CPUs each rank would get one CPU. On the testbed
    (task/none) the step holds the same CPUs with or without it: setting it is harmless where not needed.
    """
    cpt = env.get("SLURM_CPUS_PER_TASK", "").strip()
    if not cpt.isdigit() or env.get("SRUN_CPUS_PER_TASK", "").strip():
        return {}
    if any(o == "-c" or o.startswith(("-c", "--cpus-per-task")) for o in options.srun_options):
        return {}
    return {"SRUN_CPUS_PER_TASK": cpt}


def _clear_stale_hostfile(env: Mapping[str, str], warnings: list[str]) -> tuple[str, ...]:
    """A template that still sources add_extra_MPI_task.sh leaves its hostfile behind: not ours, drop it."""
    unset: list[str] = []
    if env.get("SLURM_HOSTFILE"):
        unset.append("SLURM_HOSTFILE")
        warnings.append(
            f"ignoring SLURM_HOSTFILE={env['SLURM_HOSTFILE']} from the batch script (relion-launch lays out "
            "the ranks itself; remove `source add_extra_MPI_task.sh` from the template)"
        )
    if env.get("SLURM_DISTRIBUTION", "").startswith("arbitrary"):
        unset.append("SLURM_DISTRIBUTION")
    return tuple(unset)


def plan_local(env: Mapping[str, str], options: LayoutOptions, ranks: int) -> Plan:
    """Outside an allocation: ``$RELION_MPIRUN -n N cmd`` for an MPI program with N > 1, else the program."""
    if not options.command:
        raise LayoutError("no command to launch")
    _check_rank_limit(ranks, f"-n {ranks}")
    program = options.command[0].rsplit("/", 1)[-1]
    warnings: list[str] = []
    if program.endswith("_mpi") and ranks > 1:
        argv = (*options.mpirun, "-n", str(ranks), *options.command)
        reason = f"local: {ranks} ranks on this node with {options.mpirun[0]} (no Slurm allocation)"
    else:
        if ranks > 1:
            raise LayoutError(
                f"-n {ranks} asks for several ranks but {program} is not an MPI program (*_mpi); use the "
                "_mpi version or drop -n"
            )
        if program.endswith("_mpi"):
            warnings.append(f"{program} runs as 1 rank; pass -n N (or set RELION_LAUNCH_NP) for more")
        argv = tuple(options.command)
        reason = "local: 1 rank on this node (no Slurm allocation)"
    return Plan(
        mode=Mode.LOCAL,
        ranks=ranks,
        nodes=(),
        tasks_allocated=(),
        ranks_per_node=(ranks,),
        hostfile_lines=(),
        gpus=(),
        leader_node=None,
        env_set={},
        env_unset=(),
        argv=argv,
        reason=reason,
        warnings=tuple(warnings),
    )


def step_environment(plan: Plan, base: Mapping[str, str]) -> dict[str, str]:
    """The environment of the srun step: ``base`` with the plan's variables set and unset."""
    env = {k: v for k, v in base.items() if k not in plan.env_unset}
    env.update(plan.env_set)
    return env


def hostfile_text(plan: Plan) -> str:
    return "".join(line + "\n" for line in plan.hostfile_lines)
