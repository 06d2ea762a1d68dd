"""Per-job figures: what one RELION job used against what it asked, from its sacct lines and its job dir. Pure.

- queue wait: Start - Submit (still pending: now - Submit);
- CPU efficiency: TotalCPU / (Elapsed x NCPUS) of the job line (TotalCPU sums every step; Slurm adds a step's
  CPU time when the step ends, so a running job has none yet);
- peak memory per node: the largest over the steps of MaxRSS (one task) or, for a step of several tasks, the
  step's summed task peaks (TRESUsageInTot mem) over its nodes, which is what the node's cgroup limit
  (AllocTRES mem / NNodes) is held against; 0 everywhere means the sampler saw nothing (a short step);
- GPUs: AllocTRES gres/gpu (the whole job), ranks per node: the busiest node of the largest srun step;
- node hours: NNodes x Elapsed; those of a job's earlier submissions (Continue, reruns) are kept apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..relion.record import Record
from ..slurm.client import size_bytes
from ..slurm.states import ENDED_BADLY, FAILED, OUT_OF_MEMORY, RUNNING, STEP_FINE, TIMEOUT, WAITING
from .jobs import JobDir, local_time
from .sacct import Job, Line

SIGNAL_NAMES = {6: "SIGABRT", 9: "SIGKILL", 11: "SIGSEGV", 15: "SIGTERM"}
# doctor's run.err kinds that name a failure (doctor/job.py PATTERNS), in the order they explain one best.
ERR_KINDS = ("oom", "timeout", "rank-died", "scratch-full", "gpu-threads", "gpu-memory", "bad-image", "bad-alloc")


@dataclass
class Usage:
    job: JobDir
    job_id: str = ""
    slurm: str = ""  # Slurm's state, or "not submitted" / "no record" / "not asked"
    exit_code: str = ""
    partition: str = ""
    nodelist: str = ""
    wait: float | None = None  # seconds
    elapsed: int | None = None
    limit: int | None = None
    nodes: int = 0
    cpus: int = 0
    cpu_eff: float | None = None  # 0..1
    mem_peak: int | None = None  # bytes per node
    mem_alloc: int | None = None  # bytes per node
    gpus: int = 0
    gpu_type: str = ""
    ranks_per_node: int | None = None
    scratch_req_gb: int | None = None
    scratch_used_kib: int | None = None
    node_hours: float = 0.0
    earlier_node_hours: float = 0.0
    failure: str = ""  # "" when it did not fail: OUT_OF_MEMORY, TIMEOUT, rank crash ..., RELION failure
    never: str = ""  # a pending job that can never start: "PENDING (reason): the fix" (main.never_starting)

    @property
    def failed(self) -> bool:
        return bool(self.failure)


def exit_parts(code: str) -> tuple[int, int]:
    """Slurm's ``exit:signal`` (``1:0``, ``0:9``)."""
    status, _, signal = code.partition(":")
    return (int(status) if status.isdigit() else 0, int(signal) if signal.isdigit() else 0)


def step_peak(step: Line) -> int:
    rss = step.max_rss or 0
    if step.tasks > 1 and step.nodes > 0:
        total = size_bytes(step.usage.get("mem", ""))
        if total:
            return max(rss, total // step.nodes)
    return rss


def mem_peak(steps: list[Line]) -> int | None:
    peak = max((step_peak(s) for s in steps), default=0)
    return peak or None


def main_step(steps: list[Line]) -> Line | None:
    """The srun step with the most tasks: RELION's MPI program under relion-launch."""
    numbered = [s for s in steps if s.step.isdigit()]
    return max(numbered, key=lambda s: (s.tasks, s.elapsed), default=None)


def gpu_type(alloc: dict[str, str], gres: str) -> str:
    """``gres/gpu:p100=8`` in AllocTRES (when the site accounts typed GPUs), else the script's ``gpu:p100:4``."""
    for key in alloc:
        if key.startswith("gres/gpu:"):
            return key.split(":", 1)[1]
    match = re.search(r"(?:^|,)gpu:([A-Za-z][\w.-]*):\d+", gres)
    return match.group(1) if match else ""


def scratch_gb(gres: str, name: str) -> int | None:
    """The scratch gres per node the script asked for (``--gres=<name>:N``; a count-only gres in GB)."""
    match = re.search(rf"(?:^|,){re.escape(name)}:(\d+)", gres)
    return int(match.group(1)) if match else None


def rank_crash(steps: list[Line]) -> str:
    """A srun step that failed on its own: relion-launch runs ``srun -K1``, so one dead rank ends the step."""
    for step in steps:
        if not step.step.isdigit() or step.state in STEP_FINE:
            continue
        status, signal = exit_parts(step.exit_code)
        if step.state == OUT_OF_MEMORY:
            continue
        if (signal and signal != 15) or status:
            how = f"exit code {status}" if status else f"signal {SIGNAL_NAMES.get(signal, signal)}"
            return f"rank crash (step {step.job_id}.{step.step}: {how})"
    return ""


def failure(line: Line, steps: list[Line], job: JobDir) -> str:
    """Why the job failed, Slurm's word first (OUT_OF_MEMORY, TIMEOUT ...), then the rank, then run.err's. A job
    RELION shows aborted ended as the user asked (the GUI's Abort): no failure, whatever Slurm's state."""
    if job.relion == "aborted":
        return ""
    state = line.state
    if state == OUT_OF_MEMORY or any(s.state == OUT_OF_MEMORY for s in steps):
        return OUT_OF_MEMORY
    if state == TIMEOUT:
        return TIMEOUT
    if state in ENDED_BADLY:
        return line.state_text.strip() or state
    crash = rank_crash(steps)
    if crash and state not in (RUNNING, *WAITING):
        return crash
    if state == FAILED:
        return f"{FAILED} (exit code {exit_parts(line.exit_code)[0]})"
    if job.relion == "failure" and state not in (RUNNING, *WAITING):
        kinds = dict(job.err_reasons)
        kind = next((k for k in ERR_KINDS if k in kinds), "")
        return f"RELION {job.relion}" + (f" ({kind}: {kinds[kind][:60]})" if kind else "")
    return ""


# relion-qsub.jsonl is written after sbatch answered: a job submitted later than that is not ours. Slurm reuses job
# ids when its state is reset (a new cluster, FirstJobId), and sacct then answers for the newer job.
LATE = timedelta(minutes=2)
EARLY = timedelta(hours=1)  # sbatch's retries (timeout x attempts + backoff) fit well within this


def same_job(sub: Record, line: Line) -> bool:
    """Whether sacct's record is the job relion-qsub submitted: its token (where the comment is stored, with
    AccountingStoreFlags=job_comment) and its submit time against the log's."""
    if sub.token and "relion-qsub:" in line.comment and sub.token not in line.comment:
        return False
    if sub.when is None or line.submit is None:
        return True
    logged = local_time(sub.when)
    return logged - EARLY <= line.submit <= logged + LATE


def measure(job: JobDir, acct: Job | None, now: datetime, scratch_gres: str = "lscratch", asked: bool = True) -> Usage:
    """The figures of a job's last submission; ``acct`` is its sacct record (None: sacct has none, or ``asked``
    is False: sacct could not be asked)."""
    last = job.last
    usage = Usage(job, scratch_used_kib=job.scratch_used_kib)
    usage.scratch_req_gb = scratch_gb(job.requested.gres, scratch_gres)
    if last is None or not last.job_id:
        usage.slurm = "not submitted"
        usage.failure = f"not submitted: {last.failure}" if last is not None else "not submitted"
        return usage
    usage.job_id = last.job_id
    if acct is None:
        usage.slurm = "no record" if asked else "not asked"
        return usage
    if not same_job(last, acct.line):
        usage.slurm = "id reused"
        return usage
    fill(usage, acct, now, scratch_gres)
    return usage


def fill(usage: Usage, acct: Job, now: datetime, scratch_gres: str = "lscratch") -> None:
    line, steps, job = acct.line, acct.steps, usage.job
    usage.slurm, usage.exit_code = line.state, line.exit_code
    usage.partition, usage.nodelist = line.partition, line.nodelist
    if line.submit is not None and (line.start is not None or line.state in WAITING):
        usage.wait = ((line.start or now) - line.submit).total_seconds()
    started = line.start is not None
    usage.elapsed, usage.limit = (line.elapsed if started else None), line.limit
    usage.nodes, usage.cpus = line.nodes, line.cpus
    if started and line.elapsed > 0 and line.cpus > 0 and line.total_cpu is not None and line.state != RUNNING:
        usage.cpu_eff = min(1.0, line.total_cpu / (line.elapsed * line.cpus))
    usage.mem_peak = mem_peak(steps)
    alloc_mem = size_bytes(line.alloc.get("mem", ""), "M")
    usage.mem_alloc = alloc_mem // line.nodes if alloc_mem and line.nodes else None
    gpus = line.alloc.get("gres/gpu", "")
    usage.gpus = int(gpus) if gpus.isdigit() else 0
    usage.gpu_type = gpu_type(line.alloc, job.requested.gres) if usage.gpus else ""
    step = main_step(steps)
    if step is not None and step.nodes:
        usage.ranks_per_node = -(-step.tasks // step.nodes)
    scratch = line.alloc.get(f"gres/{scratch_gres}", "")  # where the site accounts it (AccountingStorageTRES)
    if scratch.isdigit() and line.nodes:
        usage.scratch_req_gb = int(scratch) // line.nodes
    usage.node_hours = line.nodes * line.elapsed / 3600 if started else 0.0
    usage.failure = failure(line, steps, job)


def earlier_hours(job: JobDir, records: dict[str, Job]) -> float:
    """Node hours of the job dir's submissions before the last one."""
    total = 0.0
    for sub in job.submissions[:-1]:
        acct = records.get(sub.job_id or "")
        if acct is not None and acct.line.start is not None and same_job(sub, acct.line):
            total += acct.line.nodes * acct.line.elapsed / 3600
    return total
