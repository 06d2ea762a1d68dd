"""``relion-qsub report``: what each RELION job that went through relion-qsub used, against what it asked.

The job ids come from each job dir's ``relion-qsub.jsonl``; Slurm's figures from ONE ``sacct`` call for the whole
report (accounting keeps a job long after ``squeue`` and ``scontrol`` forgot it, MinJobAge); the verdicts from the
site profile (``--site``, as every relion-qsub command). Output: a table with one sentence per job and a project
summary, or ``--json``. Exit 0; 69 when sacct could not be asked (the table then has RELION's side only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from .. import proc, profile
from ..argparser import Parser
from ..errors import EX_OK, EX_UNAVAILABLE, CommandError, UsageError
from . import figures as figures_mod
from . import jobs as jobs_mod
from . import render, sacct, summary, verdict

PROG = "relion-qsub report"
Runner = Callable[..., proc.Result]


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="What each RELION job run through relion-qsub used against what it asked (queue wait, time, "
        "CPU efficiency, memory per node, GPUs, scratch, node hours), why the failed ones failed, and what to ask "
        "next time; then node hours by job type and the largest waste. One sacct call per report.",
        epilog="exit status: 0 reported, 69 sacct could not be asked, 64 usage, 66 no such directory",
    )
    parser.add_argument("paths", nargs="*", metavar="PROJECT_DIR | JOBDIR", help="default: the current directory")
    parser.add_argument("--json", action="store_true", help="one JSON document (no colour)")
    parser.add_argument(
        "--since", metavar="DATE", help="only submissions from DATE on (2026-12-01 or 2026-12-01T09:30)"
    )
    profile.add_site_option(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    return parser


def parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text!r}: not a date; give YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None


def ask_sacct(job_ids: Sequence[str], timeout: float, runner: Runner = proc.run) -> tuple[dict[str, sacct.Job], str]:
    """sacct's records by job id and "" , or ({}, why sacct could not answer)."""
    if not job_ids:
        return {}, ""
    try:
        result = runner(sacct.argv(job_ids), timeout=timeout)
    except CommandError as exc:
        return {}, str(exc)
    if result.returncode != 0:
        said = (result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}").splitlines()
        return {}, f"sacct: {said[-1][:200]}"
    return sacct.parse(result.stdout), ""


def build(
    job_dirs: Sequence[jobs_mod.JobDir],
    records: Mapping[str, sacct.Job],
    site: profile.Site,
    asked: bool,
    runner: Runner = proc.run,
) -> tuple[list[tuple[figures_mod.Usage, verdict.Verdict]], int]:
    """The rows, and how many controller calls the pending jobs took (never_starting)."""
    now = datetime.now()
    rows, calls = [], 0
    for job in job_dirs:
        last = job.last
        figures = figures_mod.measure(
            job, records.get(last.job_id or "") if last else None, now, site.scratch.gres, asked
        )
        figures.earlier_node_hours = figures_mod.earlier_hours(job, dict(records))
        calls += never_starting(figures, runner, site.submit.timeout)
        rows.append((figures, verdict.judge(site, figures)))
    return rows, calls


def never_starting(usage: figures_mod.Usage, runner: Runner, timeout: float) -> int:
    """Whether a job sacct shows pending can ever start: sacct has no pending reason, so the controller is asked
    (scontrol, which holds every pending job), and for an association or QOS limit its limits, as doctor does
    (doctor.job.limit_fix). Sets ``usage.never``; returns the controller calls it made (0 for any other job)."""
    from ..doctor.job import limit_fix
    from ..slurm import client
    from ..slurm.states import NEVER_STARTS, PENDING

    if usage.slurm != PENDING or not usage.job_id:
        return 0
    calls = [0]

    def counted(argv: list[str], **kw: object) -> proc.Result:
        calls[0] += 1
        return runner(argv, **kw)

    view = client.show_job(usage.job_id, counted, timeout).view
    if view is not None and view.state == PENDING:
        fix = limit_fix(view, counted) or NEVER_STARTS.get(view.reason, "")
        usage.never = f"PENDING ({view.reason}): {fix}" if fix else ""
    return calls[0]


def report(
    args: argparse.Namespace, environ: Mapping[str, str], is_tty: bool = False, runner: Runner = proc.run
) -> tuple[str, int]:
    """The report's text (or JSON) and the exit status."""
    start = time.perf_counter()
    site = profile.load(args.site)
    project, dirs = jobs_mod.resolve(args.paths, Path.cwd())
    job_dirs = jobs_mod.read_all(dirs, project, parse_since(args.since))
    ids = list(dict.fromkeys(s.job_id for j in job_dirs for s in j.submissions if s.job_id))
    t0 = time.perf_counter()
    records, problem = ask_sacct(ids, site.submit.timeout, runner)
    sacct_seconds = time.perf_counter() - t0
    rows, pending_calls = build(job_dirs, records, site, not problem, runner)
    total = summary.summarise(rows)
    seconds = time.perf_counter() - start
    calls = (1 if ids else 0) + pending_calls
    meta: dict[str, object] = {
        "calls": calls,
        "job_ids": len(ids),
        "records": len(records),
        "seconds": round(sacct_seconds, 3),
    }
    if problem:
        meta["error"] = problem
    code = EX_UNAVAILABLE if problem else EX_OK
    if args.json:
        doc = render.document(rows, total, str(project), meta)
        doc["seconds"] = round(seconds, 3)
        return json.dumps(doc, indent=1) + "\n", code
    asked = (
        f"1 sacct call for {len(ids)} Slurm job(s), {len(records)} recorded"
        if ids
        else "no Slurm job id, no sacct call"
    )
    if pending_calls:
        asked += f", {pending_calls} controller call(s) for pending jobs"
    footer = f"{PROG}: {asked} ({seconds:.2f} s)"
    if problem:
        footer += f"; Slurm's figures are missing: {problem}"
    colour = render.use_colour(is_tty, environ)
    return render.text(rows, total, _display(project), colour, footer), code


def _display(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    out, code = report(args, os.environ, sys.stdout.isatty())
    sys.stdout.write(out)
    return code
