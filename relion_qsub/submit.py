"""Submission: write the normalised script beside RELION's, run sbatch exactly once, record what happened.

Split as submitit does: ``prepare`` (read, normalise, decide where the result goes), ``sbatch_argv`` (build the
command), ``parse_job_id`` (read its answer), ``submit`` (run it with retries), ``record``/``mark_failed`` (tell the
job dir). RELION's own ``run_submit.script`` is never modified.

Exactly once: sbatch does not retry "Socket timed out on send/recv operation", and after such a timeout the job may
exist nevertheless (the controller got the request, the answer was lost). Each submission therefore carries a unique
token in ``--comment``; before any retry we ask squeue whether a job with that token exists, and only resubmit when
squeue answers that it does not.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import fit, proc, rules
from . import jobdir as jobdir_mod
from .errors import CommandError, CommandTimeout, InputError, ScriptError, TransientError
from .script import Script, parse
from .site import Site

_SUBMITTED = re.compile(r"Submitted batch job (\d+)")


class Prepared:
    """A script read and normalised, and where its normalised form goes."""

    __slots__ = ("_text", "cli_args", "jobdir", "original", "output", "result", "source")

    def __init__(
        self,
        source: Path,
        original: str,
        result: rules.Result,
        output: Path,
        jobdir: Path | None,
        cli_args: tuple[str, ...],
    ) -> None:
        self.source, self.original, self.result = source, original, result
        self.output, self.jobdir, self.cli_args = output, jobdir, cli_args
        self._text: str | None = None

    @property
    def text(self) -> str:
        """The script that is written and submitted: the normalised script, with the report echoed into run.out."""
        if self._text is None:  # written, hashed for the log, printed or diffed: render it once
            self._text = with_report(self.result.script, self.result.changes)
        return self._text


REPORT_MARK = "RELION_QSUB_REPORT"


def with_report(script: Script, changes: Sequence[rules.Change]) -> str:
    """The rendered script plus, when relion-qsub changed or warned about something, a first command that prints
    the report into the job's output (run.out). Users who clicked "Run" in RELION's GUI never see the terminal
    relion-qsub printed to; run.out is what the GUI shows them. A quoted here-document prints it verbatim."""
    text = script.render()
    shown = [change for change in changes if change.action != rules.ERROR]
    if not shown:
        return text
    at = sum(len(line.text) + len(line.end) for line in script.lines[: script.body_start])
    end = "\r\n" if script.lines and script.lines[0].end == "\r\n" else "\n"
    block = [f"cat <<'{REPORT_MARK}'", *(f"relion-qsub: {change}" for change in shown), REPORT_MARK]
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


def prepare(source: Path, cli_args: Sequence[str], site: Site) -> Prepared:
    original = read_script(source)
    ctx = rules.Context(site, rules.parse_cli_options(cli_args, site.typo_distance, site.site_options))
    bad = [p for p in ctx.cli_options if p.problem]
    if bad:
        from .errors import UsageError

        raise UsageError(f"sbatch option on the command line: {bad[0].problem}")
    result = fit.check(rules.normalise(parse(original, str(source), site.typo_distance, site.site_options), ctx), ctx)
    return Prepared(source, original, result, output_path(source), jobdir_mod.of_script(source), tuple(cli_args))


def write_output(prepared: Prepared) -> None:
    """Write the normalised script atomically (a reader never sees half a script)."""
    from .fsio import atomic_write

    try:
        atomic_write(prepared.output, prepared.text)
    except OSError as exc:
        from .errors import EX_CANTCREAT

        error = ScriptError(f"{prepared.output}: cannot write the normalised script ({exc.strerror})")
        error.exit_code = EX_CANTCREAT
        raise error from exc


def new_token() -> str:
    return f"relion-qsub:{os.getpid():x}{os.urandom(6).hex()}"


def comment_with_token(user_comment: str | None, token: str) -> str:
    return f"{user_comment} [{token}]" if user_comment else token


def sbatch_argv(site: Site, prepared: Prepared, token: str) -> list[str]:
    """sbatch [user's extra options] --comment=TOKEN SCRIPT.

    The command line wins over the script's directives and, for a repeated option, the last one wins: the tagged
    ``--comment`` goes last and carries the user's own comment (from the command line or the script) along.
    """
    cli = rules.Context(site, rules.parse_cli_options(prepared.cli_args, site_options=site.site_options))
    user_comment = cli.cli_value("comment") if cli.cli_has("comment") else prepared.result.script.last("comment")
    tag = f"--comment={comment_with_token(user_comment, token)}"
    return [site.submit.sbatch, *prepared.cli_args, tag, str(prepared.output)]


def parse_job_id(stdout: str) -> str | None:
    match = _SUBMITTED.search(stdout)
    return match.group(1) if match else None


def find_by_token(site: Site, token: str, runner: Callable[..., proc.Result] = proc.run) -> str | None:
    """The id of the (first) job carrying ``token``, or None if squeue says there is none. Raises if squeue fails."""
    found = jobs_with_token(site, token, runner)
    return found[0] if found else None


def jobs_with_token(site: Site, token: str, runner: Callable[..., proc.Result] = proc.run) -> list[str]:
    """The ids of every job carrying ``token``, oldest first. Raises TransientError if squeue fails."""
    result = runner(
        [site.submit.squeue, "--noheader", "--states=all", f"--user={os.getuid()}", "--format=%i|%k"],
        timeout=site.submit.timeout,
    )
    if result.returncode != 0:
        raise TransientError(
            f"squeue failed: {_last_line(result.stderr)}", returncode=result.returncode, stderr=result.stderr
        )
    ids = [row.partition("|")[0].strip() for row in result.stdout.splitlines() if token in row.partition("|")[2]]
    return sorted(ids, key=lambda i: (len(i), i))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no message)"


class Submission:
    """What happened to one submission: the argv, the token, sbatch's answer and every attempt."""

    def __init__(self, argv: list[str], token: str) -> None:
        self.argv, self.token = argv, token
        self.job_id: str | None = None
        self.returncode = 0
        self.stdout = ""
        self.stderr = ""
        self.attempts: list[dict[str, object]] = []


def _backoff(site: Site, attempt: int) -> float:
    schedule = site.submit.backoff
    return schedule[min(attempt, len(schedule)) - 1] if schedule else 0.0


def lookup_patiently(
    site: Site, token: str, runner: Callable[..., proc.Result], sleep: Callable[[float], None], why: str
) -> str | None:
    """Whether a job carries ``token``: squeue's answer, asked again (with backoff) while squeue itself fails.

    A controller that stalled long enough for sbatch to time out often answers again seconds later, and then holds
    the job sbatch's lost request created. Without an answer we cannot rule that job out: resubmitting could make
    two, so we stop and say which token to look for.
    """
    error: CommandError | None = None
    for attempt in range(1, site.submit.attempts + 1):
        try:
            return find_by_token(site, token, runner)
        except CommandError as exc:
            error = exc
            if attempt < site.submit.attempts:
                sleep(_backoff(site, attempt))
    raise TransientError(
        f"sbatch failed ({why}) and squeue could not say whether the job exists ({error}); look for comment "
        f"{token} in `squeue --me --format=%i,%k` before submitting again"
    ) from error


def submit(
    site: Site,
    prepared: Prepared,
    *,
    runner: Callable[..., proc.Result] = proc.run,
    sleep: Callable[[float], None] = time.sleep,
    token: str | None = None,
) -> Submission:
    """Run sbatch, retrying only listed transient failures, never creating a second job."""
    token = token or new_token()
    sub = Submission(sbatch_argv(site, prepared, token), token)
    transient = site.submit.transient
    why = ""
    for attempt in range(1, site.submit.attempts + 1):
        try:
            result = runner(sub.argv, timeout=site.submit.timeout)
        except CommandTimeout as exc:
            why = str(exc)
            sub.attempts.append({"attempt": attempt, "error": why})
        else:
            sub.returncode, sub.stdout, sub.stderr = result.returncode, result.stdout, result.stderr
            if result.returncode == 0:
                sub.job_id = parse_job_id(result.stdout)
                sub.attempts.append({"attempt": attempt, "returncode": 0, "job_id": sub.job_id})
                return sub if attempt == 1 else _keep_one(site, sub, runner, sleep)
            why = _last_line(result.stderr)
            sub.attempts.append({"attempt": attempt, "returncode": result.returncode, "error": why})
            if not any(pattern in result.stderr for pattern in transient):
                raise CommandError(f"sbatch refused the job: {why}", returncode=result.returncode, stderr=result.stderr)
        # A listed transient failure: the job may exist although sbatch did not say so (sbatch does not retry
        # "Socket timed out on send/recv operation" itself). Ask squeue before anything else, also after the last try.
        sleep(_backoff(site, attempt))
        found = lookup_patiently(site, token, runner, sleep, why)
        if found is None:
            # A controller that was stalled answers squeue while it may still be creating the job from sbatch's
            # lost request (seen on the testbed: squeue said "none" and the job appeared a moment later). Only two
            # answers "none", `settle` seconds apart, make a retry safe enough; `_keep_one` mops up the rest.
            sleep(site.submit.settle)
            found = lookup_patiently(site, token, runner, sleep, why)
        if found is not None:
            sub.job_id, sub.returncode = found, 0
            sub.stdout = f"Submitted batch job {found}\n"
            sub.attempts.append({"attempt": attempt, "found_by_token": found})
            return _keep_one(site, sub, runner, sleep)
    raise TransientError(
        f"sbatch failed {site.submit.attempts} times, last: {why}; squeue confirms no job was created, so submitting "
        "again later is safe",
        returncode=sub.returncode,
        stderr=sub.stderr,
    )


def _keep_one(
    site: Site, sub: Submission, runner: Callable[..., proc.Result], sleep: Callable[[float], None]
) -> Submission:
    """After a retry, make sure one job carries the token: cancel any later twin (keeping the oldest).

    The last line of defence of exactly-once: if the first, timed-out request still created a job after squeue
    said it had not, both exist now; the twin is cancelled before it can run for long, and the log says so.
    """
    sleep(site.submit.settle)
    try:
        ids = jobs_with_token(site, sub.token, runner)
    except CommandError as exc:
        sub.attempts.append({"twin_check": f"squeue failed: {exc}"})
        return sub
    if len(ids) > 1:
        keep, extra = ids[0], ids[1:]
        runner([site.submit.scancel, *extra], timeout=site.submit.timeout)
        sub.attempts.append({"cancelled_twins": extra, "kept": keep})
        sub.job_id = keep
        sub.stdout = f"Submitted batch job {keep}\n"
        sub.stderr += f"relion-qsub: warning: the controller created {len(ids)} jobs for one submission; kept {keep}, "
        sub.stderr += f"cancelled {', '.join(extra)}\n"
    return sub


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record(prepared: Prepared, entry: dict[str, object]) -> Path:
    """Append one JSON line to the log beside the script (the job dir for RELION jobs)."""
    import json

    log = prepared.source.parent / jobdir_mod.RECORD
    line = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "original": str(prepared.source),
        "original_sha256": _sha256(prepared.original),
        "normalised": str(prepared.output),
        "normalised_sha256": _sha256(prepared.text),
        "changes": [
            {"rule": c.rule, "action": c.action, "line": c.line, "message": c.message} for c in prepared.result.changes
        ],
        **entry,
    }
    try:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, sort_keys=False) + "\n")
    except OSError as exc:
        print(f"relion-qsub: warning: cannot append to {log}: {exc.strerror}", file=sys.stderr)
    return log


def mark_failed(jobdir: Path, reason: str) -> None:
    """Tell RELION the job failed: without this the GUI shows a rejected job as "Running" forever."""
    try:
        marked = jobdir_mod.mark_failed(jobdir, f"relion-qsub: job not submitted: {reason}")
    except OSError as exc:
        print(f"relion-qsub: warning: cannot mark {jobdir} as failed: {exc.strerror}", file=sys.stderr)
        return
    if marked.err_note:
        print(f"relion-qsub: warning: marked {jobdir} failed, but {marked.err_note}", file=sys.stderr)
