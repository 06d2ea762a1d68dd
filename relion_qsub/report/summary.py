"""The project summary: node hours by job type, failed node hours by reason, the jobs that wasted most. Pure.

Waste, in node hours: all of a failed job's; for a job that did not fail, the share of its node hours its CPUs
were idle (1 - CPU efficiency). Earlier submissions of a job dir (Continue, reruns) count in the job type's total.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .figures import Usage
from .verdict import Verdict

TOP = 3


@dataclass
class Summary:
    jobs: int = 0
    failed: int = 0
    node_hours: float = 0.0
    by_type: dict[str, tuple[int, float]] = field(default_factory=dict)  # type -> (jobs, node hours)
    failed_hours: float = 0.0
    failed_by_reason: dict[str, float] = field(default_factory=dict)
    waste: list[tuple[str, float, str]] = field(default_factory=list)  # (job, node hours, why), largest first


def waste(usage: Usage) -> tuple[float, str]:
    if usage.failed:
        return usage.node_hours, reason_kind(usage.failure)
    if usage.cpu_eff is not None and usage.node_hours:
        return usage.node_hours * (1 - usage.cpu_eff), f"CPU efficiency {usage.cpu_eff:.0%}"
    return 0.0, ""


def reason_kind(failure: str) -> str:
    """OUT_OF_MEMORY, TIMEOUT, rank crash, not submitted, ...: the words before any detail."""
    return failure.split("(")[0].split(":")[0].strip()


def summarise(rows: list[tuple[Usage, Verdict]]) -> Summary:
    out = Summary(jobs=len(rows))
    wasted = []
    for usage, _ in rows:
        hours = usage.node_hours + usage.earlier_node_hours
        count, total = out.by_type.get(usage.job.type, (0, 0.0))
        out.by_type[usage.job.type] = (count + 1, total + hours)
        out.node_hours += hours
        if usage.failed:
            out.failed += 1
            out.failed_hours += usage.node_hours
            kind = reason_kind(usage.failure)
            out.failed_by_reason[kind] = out.failed_by_reason.get(kind, 0.0) + usage.node_hours
        amount, why = waste(usage)
        if amount > 0:
            wasted.append((usage.job.name, amount, why))
    out.waste = sorted(wasted, key=lambda w: -w[1])[:TOP]
    return out


def as_dict(summary: Summary) -> dict[str, object]:
    return {
        "jobs": summary.jobs,
        "failed": summary.failed,
        "node_hours": round(summary.node_hours, 4),
        "node_hours_by_type": {k: {"jobs": n, "node_hours": round(h, 4)} for k, (n, h) in summary.by_type.items()},
        "failed_node_hours": round(summary.failed_hours, 4),
        "failed_node_hours_by_reason": {k: round(v, 4) for k, v in summary.failed_by_reason.items()},
        "largest_waste": [{"job": j, "node_hours": round(h, 4), "why": w} for j, h, w in summary.waste],
    }
