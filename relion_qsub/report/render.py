"""The report for a terminal (aligned columns within 100 characters, colour only on a TTY) and as JSON. Pure.

Colour follows no-color.org: none when NO_COLOR is set to anything non-empty, none when the output is not a
terminal, never in JSON.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

from ..slurm.states import OUT_OF_MEMORY
from .figures import Usage
from .summary import Summary, as_dict
from .units import GIB, clock, gb, short
from .verdict import ERROR, INFO, OK, WARNING, WASTE, Verdict

WIDTH = 100
GAP = " "
COLOURS = {ERROR: "31", WARNING: "33", WASTE: "33", OK: "32", INFO: ""}
HEADERS = ("JOB", "JOBID", "RELION", "SLURM", "WAIT", "TIME", "CPU", "MEM GB", "GPU", "SCRATCH GB", "NODE-H")
RIGHT = frozenset({"WAIT", "TIME", "CPU", "MEM GB", "GPU", "SCRATCH GB", "NODE-H"})


def use_colour(is_tty: bool, environ: Mapping[str, str]) -> bool:
    return is_tty and not environ.get("NO_COLOR")


def paint(text: str, level: str, colour: bool) -> str:
    code = COLOURS.get(level, "")
    return f"\033[{code}m{text}\033[0m" if colour and code else text


def pair(used: str, asked: str) -> str:
    return "-" if used == "-" and asked == "-" else f"{used}/{asked}"


def cells(usage: Usage) -> list[str]:
    scratch_used = gb(usage.scratch_used_kib * 1024) if usage.scratch_used_kib is not None else "-"
    scratch_asked = str(usage.scratch_req_gb) if usage.scratch_req_gb is not None else "-"
    # Slurm's job line says FAILED for an srun step's OOM and for a crashed rank: the column shows which.
    slurm = usage.failure if usage.failure == OUT_OF_MEMORY else usage.slurm
    if usage.failure.startswith("rank crash"):
        slurm = "rank crash"
    return [
        usage.job.name,
        usage.job_id or "-",
        usage.job.relion,
        slurm,
        short(usage.wait),
        pair(short(usage.elapsed), short(usage.limit)),
        f"{usage.cpu_eff:.0%}" if usage.cpu_eff is not None else "-",
        pair(gb(usage.mem_peak), gb(usage.mem_alloc)),
        str(usage.gpus) if usage.gpus else "-",
        pair(scratch_used, scratch_asked),
        f"{usage.node_hours:.2f}" if usage.job_id else "-",
    ]


def widths(table: Sequence[Sequence[str]]) -> list[int]:
    """Each column as wide as its widest cell; the JOB column gives way (down to 8) to keep within WIDTH."""
    sizes = [max(len(row[i]) for row in table) for i in range(len(HEADERS))]
    over = sum(sizes) + len(GAP) * (len(sizes) - 1) - WIDTH
    if over > 0:
        sizes[0] = max(8, sizes[0] - over)
    return sizes


def fit(text: str, width: int, right: bool) -> str:
    if len(text) > width:
        text = "…" + text[-(width - 1) :]
    return text.rjust(width) if right else text.ljust(width)


def wrap(sentence: str) -> list[str]:
    if len(sentence) <= WIDTH - 4:  # most verdicts: textwrap costs ~0.1 ms a line
        return [f"  > {sentence}"]
    return textwrap.wrap(sentence, WIDTH - 4, initial_indent="  > ", subsequent_indent="    ")


def table(rows: Sequence[tuple[Usage, Verdict]], colour: bool) -> list[str]:
    body = [cells(u) for u, _ in rows]
    sizes = widths([list(HEADERS), *body])
    lines = [GAP.join(fit(h, w, h in RIGHT) for h, w in zip(HEADERS, sizes, strict=True)).rstrip()]
    for (_, verdict), row in zip(rows, body, strict=True):
        text = [fit(c, w, h in RIGHT) for c, w, h in zip(row, sizes, HEADERS, strict=True)]
        text[3] = paint(text[3], verdict.level if verdict.level == ERROR else "", colour)
        lines.append(GAP.join(text).rstrip())
        wrapped = wrap(verdict.text)
        lines += [paint(line, verdict.level, colour) for line in wrapped]
    return lines


def summary_lines(summary: Summary, where: str) -> list[str]:
    s = summary
    types = ", ".join(f"{t} {h:.2f} ({n} job{'s' if n != 1 else ''})" for t, (n, h) in sorted(s.by_type.items()))
    lines = [
        f"{s.jobs} job{'s' if s.jobs != 1 else ''} in {where}, {s.failed} failed; {s.node_hours:.2f} node hours"
        + (f": {types}" if types else ""),
    ]
    if s.failed:
        why = ", ".join(f"{k} {v:.2f}" for k, v in sorted(s.failed_by_reason.items(), key=lambda kv: -kv[1]))
        lines.append(f"failed: {s.failed_hours:.2f} node hours ({why})")
    if s.waste:
        lines.append("largest waste: " + "; ".join(f"{j} {h:.2f} node h ({w})" for j, h, w in s.waste))
    return [line for text in lines for line in textwrap.wrap(text, WIDTH, subsequent_indent="  ")]


def text(rows: Sequence[tuple[Usage, Verdict]], summary: Summary, where: str, colour: bool, footer: str) -> str:
    lines = table(rows, colour) if rows else ["no job in it went through relion-qsub (no relion-qsub.jsonl)"]
    return "\n".join([*lines, "", *summary_lines(summary, where), footer]) + "\n"


def job_dict(usage: Usage, verdict: Verdict) -> dict[str, object]:
    def rounded(value: float | None, digits: int = 3) -> float | None:
        return round(value, digits) if value is not None else None

    return {
        "job": usage.job.name,
        "type": usage.job.type,
        "job_id": usage.job_id or None,
        "submissions": len(usage.job.submissions),
        "relion": usage.job.relion,
        "slurm": usage.slurm,
        "exit_code": usage.exit_code or None,
        "partition": usage.partition or None,
        "nodelist": usage.nodelist or None,
        "wait_s": rounded(usage.wait, 1),
        "elapsed_s": usage.elapsed,
        "limit_s": usage.limit,
        "limit": clock(usage.limit) if usage.limit else None,
        "nodes": usage.nodes,
        "cpus": usage.cpus,
        "cpu_efficiency": rounded(usage.cpu_eff),
        "mem_peak_per_node_gb": rounded(usage.mem_peak / GIB if usage.mem_peak is not None else None),
        "mem_per_node_gb": rounded(usage.mem_alloc / GIB if usage.mem_alloc is not None else None),
        "gpus": usage.gpus,
        "ranks_per_node": usage.ranks_per_node,
        "scratch_gb": usage.scratch_req_gb,
        "scratch_used_gb": rounded(usage.scratch_used_kib / 1024**2 if usage.scratch_used_kib is not None else None),
        "node_hours": round(usage.node_hours, 4),
        "earlier_node_hours": round(usage.earlier_node_hours, 4),
        "failure": usage.failure or None,
        "verdict": {"level": verdict.level, "text": verdict.text},
    }


def document(
    rows: Sequence[tuple[Usage, Verdict]], summary: Summary, project: str, sacct: Mapping[str, object]
) -> dict[str, object]:
    return {
        "project": project,
        "jobs": [job_dict(u, v) for u, v in rows],
        "summary": as_dict(summary),
        "sacct": dict(sacct),
    }
