"""``relion-qsub doctor``: find the seed's "Known problems" in a RELION project and say how to fix each.

Checks (each in its own module, judged by small pure functions, with the I/O at the edges):

- ``pipeline``: a ``default_pipeline.star`` RELION cannot read, a stale ``.relion_lock``;
- ``images``: empty, truncated, corrupt or undersized micrographs and movies (MRC headers, TIFF/EER magic);
- ``job``: a job RELION shows as running that Slurm has ended, time-limit and out-of-memory endings and the
  seed's error messages in ``run.err``, scratch use of a running job.

Output: one line per finding ``level: where: what — fix``, then a summary; exit 0 without errors, 65 with.
``--fix`` performs the repairs that are safe (backup first, never delete user data); ``--json`` for machines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..argparser import Parser
from ..errors import EX_DATAERR, EX_OK, InputError
from .finding import LEVELS, Finding

PROG = "relion-qsub doctor"


def apply_repairs(findings: Sequence[Finding]) -> None:
    """Run each offered repair; a repaired finding becomes ``ok`` and says what was done."""
    for finding in findings:
        if finding.repair is None or finding.level == "ok":
            continue
        try:
            done = finding.repair()
        except OSError as exc:
            finding.fix = f"--fix failed: {exc.strerror or exc} ({exc.filename or finding.where})"
            continue
        finding.level, finding.fixed, finding.fix = "ok", True, f"fixed: {done}"


def count(findings: Sequence[Finding]) -> dict[str, int]:
    return {level: sum(1 for f in findings if f.level == level) for level in LEVELS}


def exit_code(findings: Sequence[Finding]) -> int:
    return EX_DATAERR if any(f.level == "error" for f in findings) else EX_OK


def summary_line(findings: Sequence[Finding], project: str, scanned: int, seconds: float) -> str:
    n = count(findings)
    plural = "s" if n["error"] != 1 else ""
    text = f"{PROG}: {n['error']} error{plural}, {n['warning']} warning{'s' if n['warning'] != 1 else ''}"
    text += f", {n['ok']} ok in {project}"
    fixed = sum(1 for f in findings if f.fixed)
    if fixed:
        text += f"; {fixed} fixed"
    if scanned:
        text += f"; {scanned} image file{'s' if scanned != 1 else ''} scanned"
    text += f" ({seconds:.2f} s)"
    return text


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Find the known RELION problems in a project (pipeline file, lock, damaged micrographs, "
        "jobs RELION shows as running that Slurm has ended) and say how to fix each.",
        epilog="exit status: 0 no errors, 65 errors found, 64 usage, 66 no such directory",
    )
    parser.add_argument("project", nargs="?", help="RELION project directory (default: the one holding --job, else .)")
    parser.add_argument(
        "--job", action="append", default=[], metavar="JOBDIR", help="also check this job (e.g. Class2D/job012)"
    )
    parser.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="GLOB",
        help="image files to scan (relative to the project, ** allowed) instead of those in the micrograph/movie "
        "STAR files",
    )
    parser.add_argument("--no-images", action="store_true", help="skip the image scan")
    parser.add_argument(
        "--fix",
        action="store_true",
        help="repair what is safe: restore the pipeline file, remove a stale lock, "
        "mark ended jobs failed (backups first; never deletes data)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of lines")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print ok findings per file; tracebacks")
    return parser


def resolve_dirs(project: str | None, jobs: Sequence[str], cwd: Path) -> tuple[Path, list[Path]]:
    """The project dir and the job dirs; a job is looked up in the project first, then from the cwd.

    A RELION job dir is ``<project>/<Type>/jobNNN``, so without PROJECT_DIR the first job's grandparent is used.
    """
    job_dirs: list[Path] = []
    base = Path(project) if project else None
    for job in jobs:
        candidates = [base / job] if base is not None and not Path(job).is_absolute() else []
        candidates.append(cwd / job)
        found = next((c for c in candidates if c.is_dir()), None)
        if found is None:
            raise InputError(f"{job}: no such job directory; give it as <Type>/jobNNN inside the project")
        job_dirs.append(found.resolve())
    if base is None:
        base = job_dirs[0].parent.parent if job_dirs else cwd
    if not base.is_dir():
        raise InputError(f"{base}: no such project directory; give the directory holding default_pipeline.star")
    return base.resolve(), job_dirs


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    start = time.perf_counter()
    project, job_dirs = resolve_dirs(args.project, args.job, Path.cwd())

    from . import pipeline as doctor_pipeline

    findings: list[Finding] = doctor_pipeline.check(project)
    scanned = 0
    if not args.no_images:
        from . import images as doctor_images

        image_findings, scanned = doctor_images.check(project, args.path, verbose=args.verbose)
        findings += image_findings
    from . import job as doctor_job

    # Without --job: every job the pipeline shows as Running (RELION shows those until an exit file appears).
    for job_dir in job_dirs or doctor_job.running_jobs(project):
        findings += doctor_job.check(project, job_dir)
    if args.fix:
        apply_repairs(findings)
    seconds = time.perf_counter() - start
    code = exit_code(findings)
    if args.json:
        doc = {
            "project": str(project),
            "findings": [f.as_dict() for f in findings],
            "summary": {**count(findings), "files_scanned": scanned, "seconds": round(seconds, 3), "exit": code},
        }
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for finding in findings:
            print(finding)
        print(summary_line(findings, _display(project), scanned, seconds))
    return code


def _display(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel
