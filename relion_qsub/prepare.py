"""Preparing a script: read it, normalise and check it, add the report to its output, decide where it goes.

What ``relion-qsub check`` does in full and ``relion-qsub SCRIPT`` does first (``submit.run`` calls ``prepare`` and
``write_output``); kept apart from the submission so that ``check`` imports nothing of sbatch, the record or the
end-watcher. RELION's own ``run_submit.script`` is only read: the normalised script goes beside it
(``output_path``).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from .checks import core as checks
from .checks.engine import check_fit, normalise, parse_cli_options
from .errors import InputError, ScriptError
from .profile import Site
from .relion import gui, runs
from .relion import jobdir as jobdir_mod
from .script import Script, parse


class Prepared(NamedTuple):
    """A script read and normalised, and where its normalised form goes."""

    source: Path
    original: str
    result: checks.Result
    output: Path
    jobdir: Path | None
    cli_args: tuple[str, ...]
    context: checks.Context  # the site and the command line's sbatch options, parsed once (in `prepare`)
    text: str  # what is written and submitted: the normalised script, with the report echoed into run.out
    stamp: runs.Stamp | None = None  # which run of the job dir this is (relion/runs.py): the script RELION wrote
    guard: str | None = None  # the token whose kept-job file the job reads first (jobend.guard); None: no guard

    def option(self, name: str) -> str | None:
        """The value sbatch uses for ``name``: the command line's, else the script's last."""
        return checks.effective(self.result.script, self.context, name)


REPORT_MARK = "RELION_QSUB_REPORT"


# A RELION job's run.out names its Slurm job id in its first lines (after the report): the id must not be lost when
# relion-qsub could not write its record (a full disk), and the GUI shows run.out, not relion-qsub's stdout.
JOB_LINE = 'echo "relion-qsub: this is Slurm job $SLURM_JOB_ID"'


# The shells whose EXIT trap and function syntax the job preamble uses (POSIX sh and its supersets); a csh template
# gets the job line only.
POSIX_SHELLS = ("sh", "bash", "dash", "ksh", "mksh", "zsh")


def shell_of(script: Script) -> str:
    """The interpreter's name from the script's ``#!`` line (through ``/usr/bin/env``); "" without one."""
    first = script.lines[0].text if script.lines else ""
    words = first[2:].split() if first.startswith("#!") else []
    name = os.path.basename(words[0]) if words else ""
    return os.path.basename(words[1]) if name == "env" and len(words) > 1 else name


def job_preamble(
    script: Script, job_dir: Path, stamp: runs.Stamp | None, watched: bool, token: str | None = None
) -> list[str]:
    """What a RELION job runs first: the job id line, then (POSIX shells) the guard of submission ``token``, the
    run's stamp and the EXIT trap that reports a program that ended without an exit file (jobend.py)."""
    if not guarded(script):
        return [JOB_LINE]
    from . import jobend

    return [JOB_LINE, *jobend.preamble(job_dir, stamp, watched, token)]


def guarded(script: Script) -> bool:
    """Whether the job's own first lines can run the preamble (a POSIX shell; csh gets the job id line only)."""
    return shell_of(script) in POSIX_SHELLS


def with_report(script: Script, changes: Sequence[checks.Change], job_line: list[str] | None = None) -> str:
    """The rendered script plus, when relion-qsub changed or warned about something, a first command that prints
    the report into the job's output (run.out). Users who clicked "Run" in RELION's GUI never see the terminal
    relion-qsub printed to; run.out is what the GUI shows them. A quoted here-document prints it verbatim.
    ``job_line`` (RELION jobs): the lines the job runs first (job_preamble)."""
    text = script.render()
    shown = [change for change in changes if change.action != checks.Outcome.ERROR and not gui.harmless(change)]
    if not shown and not job_line:
        return text
    at = sum(len(line.text) + len(line.end) for line in script.lines[: script.body_start])
    end = "\r\n" if script.lines and script.lines[0].end == "\r\n" else "\n"
    block = [f"cat <<'{REPORT_MARK}'", *(f"relion-qsub: {change}" for change in shown), REPORT_MARK] if shown else []
    block += job_line or []
    head = text[:at] if not text[:at] or text[:at].endswith("\n") else text[:at] + end  # a last line without "\n"
    return head + end.join(block) + end + text[at:]


def output_path(source: Path) -> Path:
    """Where the normalised script goes: ``run_submit.script`` -> ``run_submit.slurm``, else ``<name>.slurm``."""
    if source.suffix == ".script":
        return source.with_suffix(".slurm")
    return source.with_name(source.name + ".slurm")


def read_script(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file; give the path of the batch script to submit") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a directory; give the path of the batch script to submit") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror})") from exc
    if b"\0" in data:
        raise ScriptError(f"{path}: is a binary file, not a batch script")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScriptError(f"{path}: is not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc


def prepare(source: Path, cli_args: Sequence[str], site: Site, token: str | None = None) -> Prepared:
    """Read, normalise and check ``source``. ``token`` (the submission's, submit.run): a RELION job in a POSIX shell
    gets the guard for it (``Prepared.guard``), so its first sbatch may go in un-held; ``check`` passes none."""
    original = read_script(source)
    jobdir = jobdir_mod.of_script(source)
    # The job dir's job.star (RELION's record of the boxes), read only when a check asks where a value came from.
    ctx = checks.Context(site, parse_cli_options(cli_args, site.typo_distance, site.site_options), jobdir=jobdir)
    bad = [p for p in ctx.cli_options if p.problem]
    if bad:
        from .errors import UsageError

        raise UsageError(f"sbatch option on the command line: {bad[0].problem}")
    text, filled = original, tuple[checks.Change, ...]()
    if site.placeholders and "XXX" in original:
        from .checks.patched import fill  # only for a template written for a patched RELION

        text, filled = fill(original, site, source)
    result = check_fit(normalise(parse(text, str(source), site.typo_distance, site.site_options), ctx), ctx)
    if filled:
        result = checks.Result(result.script, filled + result.changes)
    stamp = runs.Stamp.of(source) if jobdir is not None else None
    job = job_preamble(result.script, jobdir, stamp, site.submit.watch, token) if jobdir is not None else None
    text = with_report(result.script, result.changes, job_line=job)
    guard = token if jobdir is not None and guarded(result.script) else None
    return Prepared(source, original, result, output_path(source), jobdir, tuple(cli_args), ctx, text, stamp, guard)


def write_output(prepared: Prepared) -> None:
    """Write the normalised script atomically (a reader never sees half a script; a failed write leaves nothing)."""
    from .fsio import atomic_write

    try:
        atomic_write(prepared.output, prepared.text)
    except OSError as exc:
        raise write_error(prepared.output, "cannot write the normalised script", exc) from exc


def write_error(path: Path, what: str, exc: OSError) -> ScriptError:
    """One line naming the path; sysexits 74 (I/O: full disk, quota) or 73 (cannot create: read-only, no access)."""
    from .errors import EX_CANTCREAT, EX_IOERR

    error = ScriptError(f"{path}: {what} ({exc.strerror or exc})")
    error.exit_code = EX_IOERR if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG) else EX_CANTCREAT
    return error
