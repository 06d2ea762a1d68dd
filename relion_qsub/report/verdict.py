"""One sentence per job: what to ask next time. Pure; every number comes from the site profile or a rule below.

The site profile gives the limits (a node type's memory, CPUs, GPUs and local scratch, the scratch minimum, the
"whole node" memory value, the GUI's labels) and recommend's rules give the shapes (homogeneous+1: GPUs + 1 MPI
ranks per node, more overload the GPUs; a GPU request needs ``--gpu`` on RELION's command). The margins are fixed
here and documented in docs/report.md:

- OUT_OF_MEMORY: 1.5 x the memory per node it had, within the node type's memory, else the whole node or fewer
  threads; a peak within 10% of the limit: 1.25 x, as Memory Per Thread;
- TIMEOUT: twice the time limit, continuing from the last iteration;
- a job that used less than half its walltime: 1.5 x what it used, rounded up to 5 minutes (whole hours from one
  hour on). A shorter time limit lets Slurm's backfill scheduler start it in gaps a long limit does not fit;
- scratch: 1.5 x the peak the monitor logged (at least the site minimum), or more when it was 90% full;
- memory: a peak under a quarter of what it asked (not a whole-node job): 1.5 x the peak as Memory Per Thread;
- CPU efficiency under 50%: fewer threads or MPI procs. These two only after MEASURED seconds of run time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import sizing
from ..doctor.job import PATTERNS
from ..profile import Site
from ..profile.recipes import NodeType
from ..slurm.states import ENDINGS, OUT_OF_MEMORY, RUNNING, TIMEOUT, WAITING, base
from .figures import Usage
from .units import GIB, clock, gb

OK, WASTE, WARNING, ERROR, INFO = "ok", "waste", "warning", "error", "info"
MB = 1024**2
# Seconds a job must run before its CPU efficiency and a low memory peak say anything: start-up (reading the
# particles) dominates a shorter job, and MaxRSS is sampled (JobAcctGatherFrequency, 30 s by default).
MEASURED = 300


@dataclass(frozen=True)
class Verdict:
    level: str
    text: str


def node_type(site: Site, usage: Usage) -> NodeType | None:
    """The site's node type the job ran on: its partition, GPU type and constraint; None when that is not one."""
    types = [t for t in site.profile.node_types.values() if t.partition == usage.partition]
    if usage.gpu_type:
        types = [t for t in types if t.gpu_type == usage.gpu_type] or types
    constraint = usage.job.requested.constraint
    if constraint:
        types = [t for t in types if t.constraint and t.constraint in constraint] or types
    if len({(t.memory_mb, t.cpus, t.scratch_gb) for t in types}) == 1:
        return types[0]
    return None


def label(site: Site, option: str) -> str:
    """The Running-tab box the value goes into ("Memory Per Thread"), else the sbatch option."""
    gui = site.profile.field_for(option)
    return gui.label if gui is not None else f"--{option}"


def per_cpu(bytes_per_node: float, cpus_per_node: int) -> str:
    """A Memory Per Thread value (``--mem-per-cpu``), rounded up to whole GB (to 100 MB under 1 GB)."""
    mb = bytes_per_node / max(1, cpus_per_node) / MB
    return f"{math.ceil(mb / 1024)}g" if mb >= 1024 else f"{max(100, math.ceil(mb / 100) * 100)}m"


def walltime_hint(used: float) -> int:
    """1.5 x the time used, rounded up to 5 minutes, to whole hours from one hour on."""
    want = used * 1.5
    step = 3600 if want > 3600 else 300
    return max(step, math.ceil(want / step) * step)


def cpus_per_node(usage: Usage) -> int:
    return max(1, usage.cpus // max(1, usage.nodes))


def oom(site: Site, usage: Usage) -> str:
    alloc = usage.mem_alloc
    box = label(site, "mem-per-cpu")
    if alloc is None:
        return f"{OUT_OF_MEMORY}: ask more {box} or fewer threads"
    node = node_type(site, usage)
    want = math.ceil(alloc * 1.5 / GIB) * GIB
    at = f"{OUT_OF_MEMORY} at {gb(alloc)} GB"
    if node is not None and want > node.memory_mb * MB:
        if alloc >= node.memory_mb * MB * 0.95:
            return f"{at}, all of a {node.name} node: fewer MPI ranks per node or fewer threads"
        whole = site.profile.memory.whole_node
        return f"{at}: ask the whole {node.name} node ({box} {whole} with --exclusive) or fewer threads"
    return f"{at}: ask {gb(want)} GB ({box} {per_cpu(want, cpus_per_node(usage))}) or fewer threads"


def failed(site: Site, usage: Usage) -> str:
    """The sentence for a job that failed: its reason and the fix."""
    reason = usage.failure
    if reason == OUT_OF_MEMORY:
        return oom(site, usage)
    if reason == TIMEOUT:
        limit = usage.limit or usage.elapsed or 0
        return (
            f"{TIMEOUT} at {clock(limit)}: ask {clock(2 * limit)} ({label(site, 'time')}) and continue from the last "
            "iteration"
        )
    if reason.startswith("rank crash"):
        where = f" on {usage.nodelist}" if usage.nodelist else ""
        return f"{reason}{where}: see run.err, fix the cause, then continue from the last iteration"
    if reason.startswith("not submitted"):
        return reason
    state = base(reason)
    if state in ENDINGS:
        return f"{reason}: {ENDINGS[state][1]}"
    kinds = dict(usage.job.err_reasons)
    fixes = {p.kind: p.fix for p in PATTERNS}
    kind = next((k for k in kinds if k in fixes and k in reason), "")
    return f"{reason}: {fixes[kind]}" if kind else f"{reason}: see run.err and run.out for the cause"


def memory_clauses(site: Site, usage: Usage) -> list[tuple[str, str]]:
    peak, alloc = usage.mem_peak, usage.mem_alloc
    if peak is None or not alloc:
        return []
    box, cpus = label(site, "mem-per-cpu"), cpus_per_node(usage)
    said = f"peak {gb(peak)} GB of {gb(alloc)} GB per node"
    if peak >= 0.9 * alloc:
        return [(WARNING, f"{said}: close to the limit, next time {box} {per_cpu(alloc * 1.25, cpus)}")]
    whole = usage.job.requested.exclusive and usage.job.requested.mem_per_cpu == site.profile.memory.whole_node
    if peak < 0.25 * alloc and not whole and alloc > GIB and (usage.elapsed or 0) >= MEASURED:
        return [(WASTE, f"{said}: {box} {per_cpu(peak * 1.5, cpus)} would do")]
    return []


def time_clauses(site: Site, usage: Usage) -> list[tuple[str, str]]:
    if usage.elapsed is None or not usage.limit:
        return []
    hint = walltime_hint(usage.elapsed)
    if usage.limit < 2 * hint:
        return []
    return [
        (WASTE, f"asked {clock(usage.limit)}, used {clock(usage.elapsed)}: {clock(hint)} would have started sooner")
    ]


def data_bytes(usage: Usage) -> int | None:
    data = usage.job.data
    return data.particles.scratch_bytes() if data is not None and data.particles is not None else None


def scratch_full_clauses(site: Site, usage: Usage) -> list[tuple[str, str]]:
    """RELION said the scratch was full (its own warning in run.err): what it read from where, and what to ask."""
    data, full = usage.job.data, usage.job.scratch_full
    if data is None or data.particles is None or full is None:
        return []
    host, left = full
    gres, parts = site.scratch.gres, data.particles
    need = sizing.scratch_needed_gb(parts, data.refine.keep_free_gb)
    asked = f"{gres}:{usage.scratch_req_gb}" if usage.scratch_req_gb else "the scratch asked"
    return [
        (
            WARNING,
            f"scratch too small: on {host} RELION read {left:,} of {parts.count:,} particles from where they were "
            f"(data {gb(parts.scratch_bytes())} GB + --keep_free_scratch {sizing.figure(data.refine.keep_free_gb)} GB "
            f"> {asked}); "
            f"ask {gres}:{need}",
        )
    ]


def scratch_clauses(site: Site, usage: Usage) -> list[tuple[str, str]]:
    asked, used_kib = usage.scratch_req_gb, usage.scratch_used_kib
    if not asked or used_kib is None or usage.job.scratch_full is not None:
        return []
    used = used_kib * 1024
    gres = site.scratch.gres
    size = data_bytes(usage)
    said = f"scratch {gb(used)} GB of {gres}:{asked} used" + (f" (data {gb(size)} GB)" if size else "")
    if used >= 0.9 * asked * GIB:
        node = node_type(site, usage)
        more = math.ceil(asked * 1.5)
        cap = f" (a {node.name} node has {node.scratch_gb})" if node is not None and node.scratch_gb else ""
        if node is not None and node.scratch_gb:
            more = min(more, node.scratch_gb)
        return [(WARNING, f"{said}: nearly full, ask {gres}:{more}{cap}")]
    want = max(site.scratch.min_gb, math.ceil(used * 1.5 / GIB))
    data = usage.job.data
    if data is not None and data.particles is not None:  # RELION copies only when data + keep-free fits
        want = max(want, sizing.scratch_needed_gb(data.particles, data.refine.keep_free_gb))
    if asked >= 2 * want and asked > site.scratch.min_gb:
        return [(WASTE, f"{said}: {gres}:{want} would do")]
    return []


def gpu_clauses(site: Site, usage: Usage) -> list[tuple[str, str]]:
    if not usage.gpus:
        return []
    if usage.job.requested.gpu_flag is False:
        gpus = f"{usage.gpus} GPU{'s' if usage.gpus != 1 else ''}"
        return [(WASTE, f"{gpus} allocated but RELION ran without --gpu: leave GPUs out of the Gres box")]
    ranks, per_node = usage.ranks_per_node, usage.gpus // max(1, usage.nodes)
    if ranks is None or not per_node:
        return []
    said = f"{per_node} GPUs and {ranks} MPI ranks per node"
    if ranks > per_node + 1:
        return [(WARNING, f"{said}: more than GPUs + 1 overload the GPUs; ask {per_node + 1} per node")]
    if ranks == per_node + 1:
        return [(OK, f"{said}: homogeneous+1 as recommended")]
    return [(OK, f"{said}: one rank per GPU")]


def cpu_clauses(site: Site, usage: Usage) -> list[tuple[str, str]]:
    if usage.cpu_eff is None or usage.elapsed is None or usage.elapsed < MEASURED or usage.cpu_eff >= 0.5:
        return []
    idle = round(usage.cpus * (1 - usage.cpu_eff))
    return [
        (WASTE, f"CPU efficiency {usage.cpu_eff:.0%}: {idle} of {usage.cpus} CPUs idle; ask fewer threads or MPI procs")
    ]


PRIORITY = {WARNING: 0, WASTE: 1, OK: 2}


def judge(site: Site, usage: Usage) -> Verdict:
    if usage.job.relion == "aborted":  # its time and memory say nothing about what the next run needs
        return Verdict(INFO, "aborted from RELION; continue it from its last iteration when it should go on")
    if usage.failed:
        text = failed(site, usage)
        if usage.job.relion == "running" and usage.job_id:  # nothing wrote RELION_JOB_EXIT_*: the GUI waits forever
            text += f"; RELION still shows it running (relion-qsub doctor --job {usage.job.name} --fix)"
        return Verdict(ERROR, text)
    if usage.slurm == "not asked":
        return Verdict(INFO, f"RELION: {usage.job.relion}; sacct could not be asked about job {usage.job_id}")
    if usage.slurm == "id reused":
        return Verdict(INFO, f"job id {usage.job_id} now names a later job (Slurm's ids restarted): no record left")
    if usage.slurm == "no record":
        return Verdict(INFO, f"sacct has no record of job {usage.job_id} (accounting off then, or purged)")
    if usage.never:  # nothing changes by waiting: the GUI would show it Running for ever
        return Verdict(
            ERROR,
            f"can never start: {usage.never}; relion-qsub doctor --job {usage.job.name} --fix marks it failed and "
            "cancels it",
        )
    if usage.slurm in WAITING:
        return Verdict(INFO, f"{usage.slurm.lower()} for {clock(usage.wait or 0)}")
    if usage.slurm == RUNNING:
        limit = f" of {clock(usage.limit)}" if usage.limit else ""
        return Verdict(INFO, f"running for {clock(usage.elapsed or 0)}{limit} on {usage.nodelist}")
    # Within a level the order says what costs most: GPUs idle, a queue wait, scratch, memory, CPUs.
    clauses = [
        *gpu_clauses(site, usage),
        *time_clauses(site, usage),
        *scratch_full_clauses(site, usage),
        *scratch_clauses(site, usage),
        *memory_clauses(site, usage),
        *cpu_clauses(site, usage),
    ]
    clauses.sort(key=lambda c: PRIORITY[c[0]])  # stable: the order above within a level
    if not clauses:
        used = f"used {clock(usage.elapsed or 0)}" + (f" of {clock(usage.limit)}" if usage.limit else "")
        clauses = [(OK, f"{used}: fits")]
    level = clauses[0][0]
    return Verdict(level, "; ".join(text for _, text in clauses[:2]))
