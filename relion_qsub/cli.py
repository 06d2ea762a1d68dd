"""Command-line edges of relion-qsub and relion-launch.

Only argument handling and error reporting live here; each subcommand imports its module lazily so that the
submit path pays for nothing it does not use. Errors print as one line (``relion-qsub: error: ...``) and exit with
the sysexits code of their class; ``-v`` adds the traceback with the chained causes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import EX_DATAERR, EX_OK, EX_USAGE, CommandError, RelionQsubError, TransientError, guarded

# Not `from typing import TYPE_CHECKING`: importing typing alone costs the submit path ~2 ms (mypy knows this idiom).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .checks.core import Change
    from .submit import Prepared, Submission

PROG = "relion-qsub"

USAGE = f"""\
usage: {PROG} [--site PROFILE] [-q] [-v] SCRIPT [SBATCH_OPTION ...]
       {PROG} check [--diff] [--site PROFILE] [-v] SCRIPT [SBATCH_OPTION ...]
       {PROG} --version | --help"""

HELP = """{usage}

Normalise a RELION-filled batch script and submit it with sbatch, exactly once.

RELION runs "<Queue submit command> <jobdir>/run_submit.script"; set the Queue submit command (or
RELION_QSUB_COMMAND) to {prog}. The script is parsed as sbatch parses it, repaired where the repair is certain
(empty GUI fields, --exlusive, --mem next to --mem-per-cpu, several --gres, missing --scratch_dir), checked
(MPI layout, threads per GPU, partitions) and written to <jobdir>/run_submit.slurm; RELION's own script is never
changed. Every submission appends a JSON line to <jobdir>/relion-qsub.jsonl. If the job cannot be submitted, the
reason goes to <jobdir>/run.err and RELION_JOB_EXIT_FAILURE is created, so the GUI does not show "Running" forever.

commands:
  SCRIPT [SBATCH_OPTION ...]   submit; options after SCRIPT go to sbatch and win over the script's directives
  check SCRIPT                 print the normalised script on stdout, the report on stderr; submit nothing;
                               exit 0 when it would submit, 65 when it would not
  templates | recommend | module  site tools (build templates, recommended GUI values, modulefiles): see --help
  doctor [PROJECT_DIR]         find RELION's known problems (damaged images, pipeline, lock, ended jobs); --help
  report [PROJECT_DIR|JOBDIR]  what each job used against what it asked (sacct), and what to ask next; --help
  site init|validate|reference  a starting profile from the live cluster, its checks (--live), every key; --help

options:
  --site PROFILE   {site_help}
  --diff           (check) also print a unified diff of the changes on stderr
  -q, --quiet      do not print fixes and warnings (errors are always printed)
  -v, --verbose    also the repairs of empty GUI boxes (kept in relion-qsub.jsonl); tracebacks on errors
  --version        print the version
  -h, --help       this help

examples:
  {prog} Class2D/job012/run_submit.script          what RELION runs
  {prog} check --diff Class2D/job012/run_submit.script
  {prog} myjob.sh --partition=quick                  standalone, like sbatch, the extra option wins
  RELION_QSUB_SITE=/etc/relion-qsub/site.toml {prog} check job.sh

exit status: sbatch's own when sbatch ran; otherwise 64 usage, 65 the script cannot be submitted as it is,
66 no such script, 69 sbatch unavailable, 75 temporary failure (retries exhausted), 78 bad site profile."""


def help_text() -> str:
    import textwrap

    from .profile import SITE_HELP, known_profiles

    indent = " " * len("  --site PROFILE   ")
    text = f"{SITE_HELP} (known: {', '.join(known_profiles())})"
    site_help = textwrap.fill(text, 118, initial_indent=indent, subsequent_indent=indent)[len(indent) :]
    return HELP.format(usage=USAGE, prog=PROG, site_help=site_help)


class _Args:
    command: str = "submit"
    script: str | None = None
    sbatch_args: list[str]
    site: str | None = None
    diff: bool = False
    quiet: bool = False
    verbose: bool = False

    def __init__(self) -> None:
        self.sbatch_args = []


def parse_qsub_args(argv: Sequence[str]) -> _Args | int:
    """Options before SCRIPT are ours; everything after SCRIPT is sbatch's (like sbatch's own script arguments).

    Hand-rolled rather than argparse: argparse would try to interpret the sbatch options after SCRIPT, and its
    import alone costs more than the whole submit path.
    """
    args = _Args()
    rest = list(argv)
    if rest and rest[0] == "check":
        args.command = "check"
        rest.pop(0)
    while rest:
        word = rest.pop(0)
        if word in ("-h", "--help"):
            print(help_text())
            return EX_OK
        if word == "--version":
            from . import __version__

            print(f"{PROG} {__version__}")
            return EX_OK
        if word in ("-v", "--verbose"):
            args.verbose = True
        elif word in ("-q", "--quiet"):
            args.quiet = True
        elif word == "--diff" and args.command == "check":
            args.diff = True
        elif word == "--site" or word.startswith("--site="):
            if "=" in word:
                args.site = word.split("=", 1)[1]
            elif rest:
                args.site = rest.pop(0)
            else:
                return _usage("--site needs a profile name or path")
        elif word == "--":
            if not rest:
                return _usage("no SCRIPT given")
            args.script = rest.pop(0)
            break
        elif word.startswith("-") and word != "-":
            return _usage(f"unknown option {word!r} before SCRIPT (sbatch options go after SCRIPT)")
        else:
            args.script = word
            break
    if args.script is None:
        return _usage("no SCRIPT given")
    args.sbatch_args = rest
    return args


def _usage(message: str) -> int:
    print(f"{USAGE}\n{PROG}: error: {message}", file=sys.stderr)
    return EX_USAGE


def print_report(changes: Sequence[Change], quiet: bool, verbose: bool = False) -> None:
    from .relion.gui import harmless

    for change in changes:
        if (quiet and change.action != "error") or (harmless(change) and not verbose):
            continue
        print(f"{PROG}: {change}", file=sys.stderr)


def _diff(prepared: Prepared) -> str:
    import difflib

    return "".join(
        difflib.unified_diff(
            prepared.original.splitlines(keepends=True),
            prepared.text.splitlines(keepends=True),
            fromfile=str(prepared.source),
            tofile=str(prepared.output),
        )
    )


def _check(args: _Args) -> int:
    from . import profile as site_mod
    from .submit import prepare

    assert args.script is not None
    site = site_mod.load(args.site)
    prepared = prepare(Path(args.script), args.sbatch_args, site)
    sys.stdout.write(prepared.text)
    sys.stdout.flush()
    print_report(prepared.result.changes, args.quiet, args.verbose)
    if args.diff:
        sys.stderr.write(_diff(prepared))
    if not prepared.result.ok:
        n = len(prepared.result.errors)
        print(f"{PROG}: {n} error{'s' if n > 1 else ''}: this script would not be submitted", file=sys.stderr)
        return EX_DATAERR
    return EX_OK


def _submission_failed(prepared: Prepared, reason: str, **extra: object) -> None:
    """Record the refusal and tell RELION the job failed (run.err line + RELION_JOB_EXIT_FAILURE)."""
    from . import submit as sub

    sub.record(prepared, {"submitted": False, "error": reason, **extra})
    if prepared.jobdir is not None:
        sub.mark_failed(prepared.jobdir, reason)


def _submit(args: _Args) -> int:
    from . import profile as site_mod
    from . import submit as sub
    from .relion.jobdir import of_script

    assert args.script is not None
    source = Path(args.script)
    site = site_mod.load(args.site)
    jobdir = of_script(source)
    try:
        prepared = sub.prepare(source, args.sbatch_args, site)
    except RelionQsubError as exc:
        if jobdir is not None and jobdir.is_dir():
            sub.mark_failed(jobdir, str(exc))
        raise
    print_report(prepared.result.changes, args.quiet, args.verbose)
    errors = prepared.result.errors
    if errors:
        first = errors[0]
        where = f"{source} line {first.line}" if first.line else str(source)
        more = f" (and {len(errors) - 1} more: run `relion-qsub check {source}`)" if len(errors) > 1 else ""
        return _not_submitted(prepared, f"{where}: {first.message}{more}")
    try:
        sub.write_output(prepared)
    except RelionQsubError as exc:
        _not_submitted(prepared, str(exc), quiet=True)
        raise
    token = sub.new_token()
    try:
        submission = sub.submit(site, prepared, token=token)
    except CommandError as exc:
        return _sbatch_failed(prepared, exc, token)
    sys.stdout.write(submission.stdout)  # first: the job id must reach the caller whatever fails next
    sys.stdout.flush()
    try:
        sub.start(site, prepared, submission)
    except TransientError as exc:  # not released: the job stays held and never runs, so FAILURE is true
        return _held_for_good(prepared, submission, exc)
    finally:
        sys.stderr.write(submission.stderr)
    sub.record(prepared, _submitted_entry(submission))
    return submission.returncode


def _submitted_entry(submission: Submission) -> dict[str, object]:
    return {
        "submitted": True,
        "job_id": submission.job_id,
        "sbatch_argv": submission.argv,
        "token": submission.token,
        "attempts": submission.attempts,
        "watcher": submission.watcher,
        "released": submission.released,
    }


def _not_submitted(prepared: Prepared, reason: str, quiet: bool = False) -> int:
    _submission_failed(prepared, reason)
    if not quiet:
        print(f"{PROG}: not submitted; fix the errors above and run the job again", file=sys.stderr)
    return EX_DATAERR


def _sbatch_failed(prepared: Prepared, exc: CommandError, token: str) -> int:
    """sbatch refused the job, or the controller did not answer within the retry budget."""
    if exc.stderr:
        sys.stderr.write(exc.stderr if exc.stderr.endswith("\n") else exc.stderr + "\n")
    reason = str(exc)
    if isinstance(exc, TransientError):
        # Every request went out held (submit.HOLD): one the controller still processes later creates a held job, which
        # never runs (doctor finds it by the token and --fix cancels it). So "failed" stays true.
        reason += "; a job a lost request still creates stays held and never runs: relion-qsub doctor --fix "
        reason += f"cancels it (token {token})"
    _submission_failed(prepared, reason, token=token, held=True)
    if exc.returncode:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return int(exc.returncode)
    raise exc


def _held_for_good(prepared: Prepared, submission: Submission, exc: TransientError) -> int:
    from . import submit as sub

    job = submission.job_id
    reason = f"{exc}; it never runs while held: scancel {job} and run the job again"
    sub.record(prepared, {**_submitted_entry(submission), "error": reason})
    if prepared.jobdir is not None:
        sub.mark_failed(prepared.jobdir, reason, lead=f"job {job} not started")
    print(f"{PROG}: error: {reason}", file=sys.stderr)
    return exc.exit_code


# Subcommands beyond submit/check, each in its own module with its own argparse (off the submit path):
# ``main(argv: list[str]) -> int``, imported only when called.
SUBCOMMANDS = {
    "templates": "relion_qsub.sitetools.templates",
    "recommend": "relion_qsub.sitetools.recommend",
    "module": "relion_qsub.sitetools.module",
    "doctor": "relion_qsub.doctor.main",
    "report": "relion_qsub.report.main",
    "site": "relion_qsub.sitetools.siteinit",
}


def _subcommand(name: str, argv: list[str]) -> int:
    import importlib

    verbose = "-v" in argv or "--verbose" in argv
    try:
        module = importlib.import_module(SUBCOMMANDS[name])
    except ModuleNotFoundError as exc:
        if exc.name != SUBCOMMANDS[name]:
            raise
        return _usage(f"'{name}' is not available in this version")
    return guarded(f"{PROG} {name}", verbose, lambda: int(module.main(argv)))


def qsub_main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in SUBCOMMANDS:
        return _subcommand(words[0], words[1:])
    parsed = parse_qsub_args(words)
    if isinstance(parsed, int):
        return parsed
    args = parsed
    return guarded(PROG, args.verbose, lambda: _check(args) if args.command == "check" else _submit(args))


def launch_main(argv: Sequence[str] | None = None) -> int:
    from .launch.main import main

    return main(list(sys.argv[1:] if argv is None else argv))
