"""Local scratch: relion_refine's --scratch_dir against the node-local scratch the job allocates (the profile's
[scratch])."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..script import Line, Script
from .core import Context, Gres, Report, body_lines, gres_entries, implements, set_body_line, set_gres

# relion_refine(_mpi) is the only RELION program that takes --scratch_dir (RELION 3.1-5.0).
REFINE = re.compile(r"(?:(?<=^)|(?<=[\s`/]))relion_refine(?:_mpi)?(?=[\s`;]|$)`?")


_SCRATCH_ARG = re.compile(r"(?<!\S)--scratch_dir(?:=|\s+)(\"[^\"]*\"|'[^']*'|\S+)")


# Lines that only show a command (an echo of XXXcommandXXX into the log) run nothing: no scratch finding there.
_SHOWS = ("echo", "printf", ":", "logger")


@dataclass(frozen=True, slots=True)
class Refine:
    """One command line that runs relion_refine(_mpi), and what it says about scratch."""

    index: int
    line: Line
    match: re.Match[str]
    path: str | None  # its --scratch_dir
    preread: bool  # --preread_images


def refines(script: Script) -> list[Refine]:
    found = []
    for index, line in body_lines(script):
        match = REFINE.search(line.text)
        words = line.text.split()
        if match is None or not words or words[0] in _SHOWS:
            continue
        arg = _SCRATCH_ARG.search(line.text)
        found.append(
            Refine(index, line, match, arg.group(1).strip("\"'") if arg else None, "--preread_images" in words)
        )
    return found


def _has_scratch_gres(script: Script, ctx: Context) -> bool:
    return any(g.name == ctx.site.scratch.gres for g in gres_entries(script, ctx))


@implements("scratch_gres")
def scratch_gres(script: Script, ctx: Context, report: Report) -> Script:
    site = ctx.site.scratch
    if _has_scratch_gres(script, ctx):
        return script
    for r in refines(script):
        under_root = r.path is not None and (r.path == site.root or r.path.startswith(site.root.rstrip("/") + "/"))
        if under_root and not r.preread:
            entry = Gres(site.gres, None, site.min_gb, f"{site.gres}:{site.min_gb}")
            report.fixed(
                r.line.number,
                f"--scratch_dir is under {site.root} but no {site.gres} was allocated: added --gres "
                f"{site.gres}:{site.min_gb} (the site minimum; allocate more for large data sets)",
                f"--scratch_dir is under {site.root} but no {site.gres} is allocated: add {site.gres}:N (GB) "
                "to the Gres box",
            )
            return set_gres(script, [*gres_entries(script, ctx), entry])
    return script


@implements("scratch_inject")
def scratch_inject(script: Script, ctx: Context, report: Report) -> Script:
    site = ctx.site.scratch
    if not _has_scratch_gres(script, ctx):
        return script
    for r in refines(script):
        if r.path is not None or r.preread:
            continue
        text = r.line.text[: r.match.end()] + f" --scratch_dir {site.job_dir}" + r.line.text[r.match.end() :]
        script = set_body_line(script, r.index, text)
        report.fixed(
            r.line.number,
            f"added --scratch_dir {site.job_dir} to {r.match.group().strip('`')}: the job allocates {site.gres}",
            f"the job allocates {site.gres} but {r.match.group().strip('`')} has no --scratch_dir: set 'Copy "
            f"particles to scratch directory' to {site.job_dir}",
        )
    return script


@implements("scratch_job_id")
def scratch_job_id(script: Script, ctx: Context, report: Report) -> Script:
    for r in refines(script):
        if r.path is not None and not r.preread and "SLURM_JOB_ID" not in r.path:
            report.problem(
                r.line.number,
                f"--scratch_dir {r.path} has no $SLURM_JOB_ID: two jobs on one node would wipe each other's copy; "
                f"use {ctx.site.scratch.job_dir}",
            )
    return script


@implements("scratch_missing")
def scratch_missing(script: Script, ctx: Context, report: Report) -> Script:
    site = ctx.site.scratch
    if _has_scratch_gres(script, ctx):
        return script
    bare = [r for r in refines(script) if r.path is None and not r.preread]
    if bare:  # once per script: every command of the job reads the same particles
        report.problem(
            bare[0].line.number,
            f"no local scratch: add {site.gres}:N (GB, at least the particle data) to Gres and "
            f"{site.job_dir} to 'Copy particles to scratch directory'",
        )
    return script


@implements("scratch_preread")
def scratch_preread(script: Script, ctx: Context, report: Report) -> Script:
    for r in refines(script):
        if r.path is not None and r.preread:
            report.problem(
                r.line.number,
                "--scratch_dir is ignored with --preread_images (RELION reads the particles into memory instead)",
            )
    return script
