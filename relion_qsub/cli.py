"""Command-line edges of relion-qsub and relion-launch.

Only argument handling and error reporting live here; each subcommand imports its module lazily so that the
submit path pays for nothing it does not use. Errors print as one line (``relion-qsub: error: ...``) and exit with
the sysexits code of their class; ``-v`` adds the traceback with the chained causes.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, NoReturn

from .argparser import FixedWidth, Parser
from .errors import EX_DATAERR, EX_OK, EX_USAGE, UsageError, guarded
from .profile.files import add_site_option

if TYPE_CHECKING:
    from .checks.core import Change
    from .prepare import Prepared
    from .submit import Outcome

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


class Args(NamedTuple):
    """The command line of `relion-qsub [check] ... SCRIPT [SBATCH_OPTION ...]`, parsed once."""

    command: str  # "submit" or "check"
    script: str
    sbatch_args: tuple[str, ...] = ()
    site: str | None = None
    diff: bool = False
    quiet: bool = False
    verbose: bool = False


def _parser(command: str) -> Parser:
    """Options before SCRIPT are ours; every word after SCRIPT is sbatch's, as sbatch treats its script's arguments
    (REMAINDER: an option after SCRIPT is never taken for ours, `-v` there is sbatch's). -h and --version are ours
    so that --help prints this tool's help (with the profiles), not argparse's."""
    p = Parser(prog=PROG, add_help=False, allow_abbrev=False, formatter_class=FixedWidth)  # no --ver for --version
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("--version", action="store_true")
    add_site_option(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    if command == "check":
        p.add_argument("--diff", action="store_true")
    p.add_argument("script", nargs="?", metavar="SCRIPT")
    p.add_argument("sbatch_args", nargs=argparse.REMAINDER, metavar="SBATCH_OPTION")
    return p


def parse_qsub_args(argv: Sequence[str]) -> Args | int:
    """The submit path's command line as Args, or the exit status when there is nothing to run (help, version,
    a usage error: printed here)."""
    words = list(argv)
    command = "check" if words[:1] == ["check"] else "submit"
    if command == "check":
        words.pop(0)
    try:
        ns, unknown = _parser(command).parse_known_args(words)
    except UsageError as exc:
        return _usage(str(exc))
    if ns.help:
        print(help_text())
        return EX_OK
    if ns.version:
        from . import __version__

        print(f"{PROG} {__version__}")
        return EX_OK
    if unknown:
        return _usage(f"unknown option {unknown[0]!r} before SCRIPT (sbatch options go after SCRIPT)")
    if ns.script is None:
        return _usage("no SCRIPT given")
    sbatch_args = words[len(words) - len(ns.sbatch_args) :]
    if words[-len(sbatch_args) - 2 :][:2] == [ns.script, "--"]:  # argparse took that "--" as its own: it is sbatch's
        sbatch_args.insert(0, "--")
    diff = bool(getattr(ns, "diff", False))
    return Args(command, ns.script, tuple(sbatch_args), ns.site, diff, ns.quiet, ns.verbose)


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


def _check(args: Args) -> int:
    from .prepare import prepare
    from .profile import load

    prepared = prepare(Path(args.script), args.sbatch_args, load(args.site))
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


def _submit(args: Args) -> int:
    from .submit import Hooks, run

    def job(stdout: str) -> None:
        sys.stdout.write(stdout)  # first: the job id must reach the caller whatever fails next
        sys.stdout.flush()

    hooks = Hooks(
        report=lambda prepared: print_report(prepared.result.changes, args.quiet, args.verbose),
        job=job,
        said=sys.stderr.write,
    )
    return _said(run(Path(args.script), args.sbatch_args, args.site, hooks), args.verbose)


def _said(outcome: Outcome, verbose: bool) -> int:
    """Print the outcome's line (and with -v the traceback of the failure behind it); its exit status."""
    if verbose and outcome.error is not None:
        import traceback

        traceback.print_exception(outcome.error)
    if outcome.message:
        print(f"{PROG}: {outcome.message}", file=sys.stderr)
    return outcome.exit_code


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


# The programs (bin/ wrapper, console scripts, python -m): the process-wide choices live here, not in the *_main
# functions that tests call in-process.


def qsub_program() -> NoReturn:
    """relion-qsub as a process. Submit and check run with the cyclic garbage collector off (bin/relion-qsub turns
    it off before the first import): they live for well under a second, allocate little and make no reference
    cycles worth collecting, and their imports (the rules, the parser tables, the profile) would otherwise trigger
    collections that walk every object made so far (measured: 2-3 ms of a ~55 ms check, benchmarks/bench_check.py).
    The subcommands (doctor, report, site, ...) read whole projects and get the collector back."""
    words = sys.argv[1:]
    if words and words[0] in SUBCOMMANDS:
        gc.enable()
    else:
        gc.disable()  # already off when started by bin/relion-qsub; a console script imported us with it on
    _end(qsub_main(words))


def launch_program() -> NoReturn:
    """relion-launch as a process; it supervises a job for hours, so the collector is on."""
    gc.enable()
    _end(launch_main(sys.argv[1:]))


def _end(status: int) -> NoReturn:
    """Exit with ``status``. What is alive now is frozen first: CPython's finalization runs the cyclic collector
    over every object left (each imported class, function and table) while it clears the modules, and frozen
    objects are skipped (gc.freeze). That is ~5 ms of a ~55 ms check; the memory goes back with the process."""
    gc.freeze()
    sys.exit(status)
