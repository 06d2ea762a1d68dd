"""Submission: write the normalised script beside RELION's, run sbatch exactly once, record what happened.

One owner, as submitit's executor: ``run`` goes through every step and handles every failure beside the step that
fails, and returns an ``Outcome`` (the CLI prints it and exits with its code); ``Hooks`` pass output on as it
happens. The steps: ``prepare`` (read, normalise, decide where the result goes, parse the command line's sbatch
options once), ``write_output``, ``submit`` (``sbatch_argv``, run it with retries, ``parse_job_id``), ``start``
(the end-watcher, then the release) and ``record``/``mark_failed`` (tell the job dir). RELION's own
``run_submit.script`` is never modified.

Exactly once: sbatch does not retry "Socket timed out on send/recv operation", and after such a timeout the job may
exist nevertheless (the controller got the request, the answer was lost). Each submission therefore carries a unique
token in ``--comment``; before any retry we ask squeue whether a job with that token exists, and only resubmit when
squeue answers that it does not.

Controller calls: Slurm 23.02+ rate-limits RPCs per user (a bucket of 30, 2 per second), and each sbatch, scontrol and
squeue is one. A RELION job whose script runs the guard (jobend.guard) costs two on the happy path: its first sbatch
goes in un-held, then the end-watcher's. Only once an answer was lost does anything go in held (``void``).
"""

from __future__ import annotations

import enum
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import proc
from .errors import EX_DATAERR, CommandError, CommandTimeout, RelionQsubError, TransientError
from .prepare import Prepared, prepare, write_output
from .profile import Site
from .relion import jobdir as jobdir_mod
from .relion import runs

if TYPE_CHECKING:
    from .slurm.client import QueuedJob


def new_token() -> str:
    return f"relion-qsub:{os.getpid():x}{os.urandom(6).hex()}"


def comment_with_token(user_comment: str | None, token: str) -> str:
    return f"{user_comment} [{token}]" if user_comment else token


# How every submission goes in "held": a begin time a year away, not --hold. A held job (priority 0) skips the
# controller's submit-time check, so `--hold` made sbatch accept a request no node can satisfy ("Requested node
# configuration is not available" became a job PENDING BadConstraints forever; measured on the testbed, 22.05);
# a future --begin keeps that check and still never runs until relion-qsub moves the begin time to now.
HOLD = "--begin=now+365days"


def sbatch_argv(site: Site, prepared: Prepared, token: str, held: bool = True) -> list[str]:
    """sbatch [--begin=now+365days] [--no-requeue] [user's extra options] --comment=TOKEN SCRIPT.

    The far begin time: a request whose answer is lost (controller outage) can only create a job that does not start
    until relion-qsub releases it; so a job relion-qsub gave up on (and told RELION it failed) never runs later.
    ``--no-requeue`` (site policy ``submit.requeue = false``): Slurm requeues a batch job after a node failure by
    default and reruns it after RELION was told it failed; the user's own ``--requeue`` on the command line wins.
    The command line wins over the script's directives and, for a repeated option, the last one wins: the tagged
    ``--comment`` goes last and carries the user's own comment (from the command line or the script) along. A
    script's ``--begin`` is applied on release; one on relion-qsub's command line replaces the hold.
    ``held`` False (the first request of a guarded RELION job, see ``submit``): no hold, so no release either.
    """
    tag = f"--comment={comment_with_token(prepared.option('comment'), token)}"
    policy = [HOLD] if held else []
    policy += [] if site.submit.requeue else ["--no-requeue"]
    return [site.submit.sbatch, *policy, *prepared.cli_args, tag, str(prepared.output)]


def release(
    site: Site,
    job_id: str,
    begin: str | None = None,
    runner: Callable[..., proc.Result] = proc.run,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Move the job's begin time from a year away to ``begin`` (the user's --begin) or now; retried like squeue while
    the controller does not answer. Returns the attempts used; raises TransientError when it could not be released
    (the job then does not start for a year: RELION is told it failed and the message says to scancel it)."""
    why = ""
    argv = [site.submit.scontrol, "update", f"JobId={job_id}", f"StartTime={begin or 'now'}"]
    for attempt in range(1, site.submit.attempts + 1):
        try:
            result = runner(argv, timeout=site.submit.timeout)
        except CommandError as exc:
            why = str(exc)
        else:
            if result.returncode == 0:
                return attempt
            why = _last_line(result.stderr)
        if attempt < site.submit.attempts:
            sleep(_backoff(site, attempt))
    raise TransientError(f"job {job_id} was submitted held and could not be released ({why})")


def parse_job_id(stdout: str) -> str | None:
    from .slurm import client  # here, not at the top: `check` never needs it

    return client.submitted_job_id(stdout)


def find_by_token(
    site: Site, token: str, runner: Callable[..., proc.Result] = proc.run, held_only: bool = False
) -> str | None:
    """The id of the (first) job carrying ``token``, or None if squeue says there is none. Raises if squeue fails.
    ``held_only``: only a job that cannot start yet counts (after ``void``, any other is the void first request's)."""
    found = jobs_with_token(site, token, runner, held_only)
    return found[0] if found else None


def jobs_with_token(
    site: Site, token: str, runner: Callable[..., proc.Result] = proc.run, held_only: bool = False
) -> list[str]:
    """The ids of every job carrying ``token``, oldest first. Raises TransientError if squeue fails."""
    return [job.job_id for job in _queued(site, token, runner) if not held_only or _held(job)]


def _queued(site: Site, token: str, runner: Callable[..., proc.Result]) -> list[QueuedJob]:
    from .slurm import client

    return client.jobs_with_token(token, runner, site.submit.squeue, site.submit.timeout)


def _held(job: QueuedJob) -> bool:
    """Whether the job cannot start before relion-qsub (or the user) releases it: PENDING for its begin time (the
    hold) or held by the user (``--hold``)."""
    from .slurm import states

    return job.state == states.PENDING and job.reason in states.HELD


def _answer(job_id: str) -> str:
    from .slurm import client

    return client.submitted_answer(job_id)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no message)"


@dataclass(slots=True)
class Submission:
    """What happened to one submission: the argv, the token, sbatch's answer and every attempt.

    Not frozen: it is the running log of the submission, filled in as sbatch, squeue and scontrol answer.
    """

    argv: list[str]
    token: str
    job_id: str | None = None
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""
    attempts: list[dict[str, object]] = field(default_factory=list)
    watcher: str | None = None  # the end-watcher's job id (watch.py)
    released: bool = False
    unwatched: str | None = None  # Slurm refused the watcher: what will not be reported (record.Record.unwatched)
    held: bool = True  # the job went in held (the release starts it); False: the un-held first request's job
    voided: bool = False  # the first request was un-held and its answer lost: the kept-job file says which job runs

    def entry(self) -> dict[str, object]:
        """Its line in the record (relion-qsub.jsonl), beside the script's."""
        return {
            "submitted": True,
            "job_id": self.job_id,
            "sbatch_argv": self.argv,
            "token": self.token,
            "attempts": self.attempts,
            "watcher": self.watcher,
            "released": self.released,
            **({"unwatched": self.unwatched} if self.unwatched else {}),
            "held": self.held,
        }


def _backoff(site: Site, attempt: int) -> float:
    schedule = site.submit.backoff
    return schedule[min(attempt, len(schedule)) - 1] if schedule else 0.0


def lookup_patiently(
    site: Site, sub: Submission, runner: Callable[..., proc.Result], sleep: Callable[[float], None], why: str
) -> str | None:
    """Whether a job carries ``token``: squeue's answer, asked again (with backoff) while squeue itself fails.

    A controller that stalled long enough for sbatch to time out often answers again seconds later, and then holds
    the job sbatch's lost request created. Without an answer we cannot rule that job out: resubmitting could make
    two, so we stop and say which token to look for.
    """
    error: CommandError | None = None
    for attempt in range(1, site.submit.attempts + 1):
        try:
            return find_by_token(site, sub.token, runner, held_only=sub.voided)
        except CommandError as exc:
            error = exc
            if attempt < site.submit.attempts:
                sleep(_backoff(site, attempt))
    from .slurm import client

    raise TransientError(
        f"sbatch failed ({why}) and squeue could not say whether the job exists ({error}); look for comment "
        f"{sub.token} in `{client.COMMENTS_BY_HAND}` before submitting again"
    ) from error


def submit(
    site: Site,
    prepared: Prepared,
    *,
    runner: Callable[..., proc.Result] = proc.run,
    sleep: Callable[[float], None] = time.sleep,
    token: str | None = None,
) -> Submission:
    """Run sbatch, retrying only listed transient failures, never letting a second job run.

    The first request of a RELION job whose script runs the guard for ``token`` (``prepared.guard``) goes in
    un-held. Once its answer is lost and squeue shows no job of it, it is voided (``void``) before anything else is
    sent or relion-qsub gives up: retries go in held, and only a held job is kept after that."""
    token = token or new_token()
    unheld = prepared.guard is not None and prepared.guard == token
    sub = Submission(sbatch_argv(site, prepared, token, held=not unheld), token, held=not unheld)
    try:
        return _attempts(site, prepared, sub, runner, sleep)
    except TransientError:
        if not sub.held:  # giving up on an un-held request whose answer was lost: a job it creates must not run
            void(site, prepared, sub)
        raise


def _attempts(
    site: Site, prepared: Prepared, sub: Submission, runner: Callable[..., proc.Result], sleep: Callable[[float], None]
) -> Submission:
    why = ""
    for attempt in range(1, site.submit.attempts + 1):
        if attempt > 1 and not sub.held:
            void(site, prepared, sub)  # before the retry: the un-held request's job, if it still comes, never runs
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
                return sub if attempt == 1 else _keep_one(site, prepared, sub, runner, sleep)
            why = _last_line(result.stderr)
            sub.attempts.append({"attempt": attempt, "returncode": result.returncode, "error": why})
            if not any(pattern in result.stderr for pattern in site.submit.transient):
                raise CommandError(f"sbatch refused the job: {why}", returncode=result.returncode, stderr=result.stderr)
        # A listed transient failure: the job may exist although sbatch did not say so (sbatch does not retry
        # "Socket timed out on send/recv operation" itself). Ask squeue before anything else, also after the last try.
        sleep(_backoff(site, attempt))
        found = lookup_patiently(site, sub, runner, sleep, why)
        if found is None:
            # A controller that was stalled answers squeue while it may still be creating the job from sbatch's
            # lost request (seen on the testbed: squeue said "none" and the job appeared a moment later). Only two
            # answers "none", `settle` seconds apart, make a retry safe enough; `_keep_one` mops up the rest.
            sleep(site.submit.settle)
            found = lookup_patiently(site, sub, runner, sleep, why)
        if found is not None:
            sub.job_id, sub.returncode = found, 0
            sub.stdout = _answer(found)
            sub.stderr += f"relion-qsub: sbatch's answer was lost ({why}); the job was found by its token: {found}\n"
            sub.attempts.append({"attempt": attempt, "found_by_token": found})
            return _keep_one(site, prepared, sub, runner, sleep)
    raise TransientError(
        f"sbatch failed {site.submit.attempts} times, last: {why}; squeue confirms no job was created, so submitting "
        "again later is safe",
        returncode=sub.returncode,
        stderr=sub.stderr,
    )


def kept_path(prepared: Prepared, token: str) -> Path | None:
    """The submission's kept-job file (jobdir.kept_name), for a guarded RELION job; None otherwise."""
    if prepared.jobdir is None or prepared.guard != token:
        return None
    return prepared.jobdir / jobdir_mod.kept_name(token)


def void(site: Site, prepared: Prepared, sub: Submission, job_id: str = "") -> None:
    """Write the kept-job file: ``job_id`` does the submission's work, or (empty) no job does. From then on the
    un-held first request's job, whenever the controller creates it, ends in its guard without running anything;
    so later requests go in held and a job is started only after the file names it. Raises TransientError when the
    file cannot be written: a retry could then make two jobs that run (doctor finds them by the token)."""
    from .fsio import atomic_write

    path = kept_path(prepared, sub.token)
    if path is None:
        return
    try:
        atomic_write(path, job_id)
    except OSError as exc:
        raise TransientError(
            f"sbatch's answer was lost and relion-qsub cannot write {path} ({exc.strerror}), which keeps a job the "
            f"lost request may still create from running; scancel any job with comment {sub.token}"
        ) from exc
    sub.voided, sub.held = True, True
    sub.argv = sbatch_argv(site, prepared, sub.token, held=True)
    sub.attempts.append({"kept_file": path.name, "kept": job_id or None})


def _keep_one(
    site: Site,
    prepared: Prepared,
    sub: Submission,
    runner: Callable[..., proc.Result],
    sleep: Callable[[float], None],
) -> Submission:
    """After a retry, make sure one job carries the token: cancel any later twin (keeping the oldest).

    The last line of defence of exactly-once: if the first, timed-out request still created a job after squeue
    said it had not, both exist now; the twin is cancelled before it can run for long, and the log says so. After
    ``void`` only a held job is kept (any other is the void request's, which ends in its guard), and the kept-job
    file names it before its release."""
    sleep(site.submit.settle)
    try:
        found = _queued(site, sub.token, runner)
    except CommandError as exc:
        sub.attempts.append({"twin_check": f"squeue failed: {exc}"})
        found = []
    ids = [job.job_id for job in found]
    keepable = [job.job_id for job in found if _held(job)] if sub.voided else ids
    kept = (keepable or [sub.job_id or ""])[0]
    if sub.voided:
        void(site, prepared, sub, kept)
    extra = [job for job in ids if job != kept]
    if extra:
        runner([site.submit.scancel, *extra], timeout=site.submit.timeout)
        sub.attempts.append({"cancelled_twins": extra, "kept": kept})
        sub.stderr += f"relion-qsub: warning: the controller created {len(ids)} jobs for one submission; kept {kept}, "
        sub.stderr += f"cancelled {', '.join(extra)}\n"
    if kept != sub.job_id:
        sub.job_id, sub.stdout = kept, _answer(kept)
    return sub


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record(prepared: Prepared, entry: dict[str, object]) -> bool:
    """Append one line to the submission record beside the script (the job dir for RELION jobs); False if it
    failed (the record's one writer: relion.record.append). When it fails, the warning names the job id and token
    (they must not be lost)."""
    from .relion import record as record_mod

    log = prepared.source.parent / jobdir_mod.RECORD
    line = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "original": str(prepared.source),
        "original_sha256": _sha256(prepared.original),
        "normalised": str(prepared.output),
        "normalised_sha256": _sha256(prepared.text),
        **({"run": prepared.stamp.encode()} if prepared.stamp is not None else {}),
        "changes": [
            {"rule": c.rule, "action": c.action, "line": c.line, "message": c.message} for c in prepared.result.changes
        ],
        **entry,
    }
    problem = record_mod.append(log, record_mod.from_mapping(line))
    if problem:
        job = f"; the job is Slurm job {entry['job_id']}" if entry.get("job_id") else ""
        token = f" (token {entry['token']})" if entry.get("token") else ""
        print(f"relion-qsub: warning: cannot append to {log}: {problem}{job}{token}", file=sys.stderr)
    return not problem


def start(
    site: Site,
    prepared: Prepared,
    sub: Submission,
    runner: Callable[..., proc.Result] = proc.run,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """After sbatch: submit the end-watcher beside a RELION job, then release a held job (a user's own --hold
    stays: it is a separate hold). The watcher goes first, so it exists before a held job can end. Raises
    TransientError when the job could not be released: it stays held and never runs.

    An un-held job (the happy path of a guarded RELION job) may start, even end, before its watcher exists: that
    costs nothing. afternotok on a job that already failed is satisfied at once (the watcher runs), on one that
    completed it can never be (``--kill-on-invalid-dep`` cancels the watcher), both measured on the testbed; only a
    job the controller has forgotten (MinJobAge after its end) makes sbatch refuse the watcher, which is a warning."""
    if sub.job_id is None:
        return
    if prepared.jobdir is not None:
        cancel_previous_watcher(site, prepared.jobdir, sub, runner)
    if prepared.jobdir is not None and site.submit.watch:
        sub.watcher = submit_watcher(site, prepared, sub, runner)
    if sub.held:
        tries = release(site, sub.job_id, prepared.option("begin"), runner, sleep)  # a --hold stays held
        sub.attempts.append({"released": sub.job_id, "release_attempts": tries})
        sub.released = True


def cancel_previous_watcher(
    site: Site, job_dir: Path, sub: Submission, runner: Callable[..., proc.Result] = proc.run
) -> None:
    """Cancel the pending end-watcher of the job dir's previous submission (runs.previous_watcher), if any.

    It watches a run RELION has replaced; left pending on a busy cluster it would only wait for a CPU to say nothing
    (runs.mark keeps it from writing). Best effort (watch.cancel_argv): the answer is recorded, never an error.
    Costs controller calls only when the dir was submitted before.
    """
    from . import watch

    previous = runs.previous_watcher(job_dir)
    if previous is None:
        return
    argv = watch.cancel_argv(site.submit.scancel, previous)
    try:
        result = runner(argv, timeout=site.submit.timeout)
    except CommandError as exc:
        sub.attempts.append({"previous_watcher": previous, "cancel_error": str(exc)})
        return
    sub.attempts.append({"previous_watcher": previous, "cancel_returncode": result.returncode})


def submit_watcher(site: Site, prepared: Prepared, sub: Submission, runner: Callable[..., proc.Result]) -> str | None:
    """One try (a twin watcher would be harmless: the second finds the exit file); a failure is a warning, since
    the job itself is fine and `relion-qsub doctor` still finds an ending nobody reported."""
    from . import watch

    assert prepared.jobdir is not None and sub.job_id is not None
    where = [f"--{name}={value}" for name in ("partition", "account") if (value := prepared.option(name))]
    argv = watch.sbatch_argv(
        site.submit.sbatch, sub.job_id, prepared.jobdir, where, site.submit.watch_options, prepared.stamp
    )
    why = ""
    try:
        result = runner(argv, timeout=site.submit.timeout)
    except CommandError as exc:
        why = str(exc)
    else:
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip().split(";")[0]
        why = _last_line(result.stderr)
    sub.attempts.append({"watcher_error": why})
    sub.unwatched = unwatched_warning(sub.job_id, why)
    # The job prints the note into run.out and run.err, where RELION's GUI shows it (this terminal is rarely seen):
    # as it starts, or at its end if it started before the note was written (jobend.note_lines).
    problem = jobdir_mod.leave_unwatched_note(prepared.jobdir, sub.job_id, sub.unwatched)
    sub.stderr += sub.unwatched + "\n"
    if problem:
        sub.stderr += f"relion-qsub: warning: could not leave that note for the job in {prepared.jobdir}: {problem}\n"
    return None


def unwatched_warning(job_id: str, why: str) -> str:
    """What a job without its end-watcher will not report (its EXIT trap still reports what the script sees end)."""
    return (
        f"relion-qsub: warning: Slurm refused the end-watcher of job {job_id} ({why}): if Slurm ends this job before "
        "RELION's program reports (cancelled while pending, killed with SIGKILL, a node failure), RELION will not be "
        "told and shows it Running: check with `relion-qsub doctor`"
    )


def mark_failed(jobdir: Path, reason: str, lead: str = "job not submitted") -> bool:
    """Tell RELION the job failed: without this the GUI shows a rejected job as "Running" forever. False (and a
    warning naming the path) when not even the empty RELION_JOB_EXIT_FAILURE could be created."""
    try:
        marked = jobdir_mod.mark_failed(jobdir, f"relion-qsub: {lead}: {reason}")
    except OSError as exc:
        path = jobdir / jobdir_mod.EXIT_FAILURE
        print(f"relion-qsub: warning: cannot tell RELION: cannot create {path} ({exc.strerror})", file=sys.stderr)
        return False
    if marked.err_note:
        print(f"relion-qsub: warning: marked {jobdir} failed, but {marked.err_note}", file=sys.stderr)
    return True


class Status(enum.Enum):
    """How a submission ended."""

    SUBMITTED = "submitted"  # sbatch took the job (and it was released, if it went in held)
    REFUSED = "refused"  # the script has errors no rule repairs: nothing was submitted
    FAILED = "failed"  # a step failed before a job existed: the profile, the script, writing it, sbatch itself
    NOT_RELEASED = "not released"  # the job exists but stays held for good: it never runs


@dataclass(frozen=True, slots=True)
class Outcome:
    """What `run` did, for the caller to print and exit with. ``message`` is the line after "relion-qsub: " (empty
    on success); ``error`` the failure behind it (its traceback for -v)."""

    status: Status
    exit_code: int
    message: str = ""
    error: RelionQsubError | None = None
    submission: Submission | None = None


def _ignore(_: object) -> None:
    pass


@dataclass(frozen=True, slots=True)
class Hooks:
    """Where a submission's output goes as it happens (the CLI: stdout and stderr); by default nowhere."""

    report: Callable[[Prepared], object] = _ignore  # the changes and warnings, before anything is submitted
    job: Callable[[str], object] = _ignore  # sbatch's answer ("Submitted batch job N"): at once, whatever fails next
    said: Callable[[str], object] = _ignore  # what sbatch and scontrol printed on stderr, passed on


def run(
    source: Path,
    cli_args: Sequence[str],
    site_name: str | None,
    hooks: Hooks = Hooks(),
    runner: Callable[..., proc.Result] = proc.run,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """The whole submission: load the profile, prepare, write, sbatch (exactly once), start, record.

    Every failure is handled beside the step that fails: the record says why, and a RELION job is marked failed
    (run.err line + RELION_JOB_EXIT_FAILURE) so the GUI does not show "Running" for a job that will never run.
    """
    from .profile import load

    token = new_token()
    try:
        site = load(site_name)  # a bad profile: no record, no job dir touched (there is no site to judge by)
        prepared = _prepare_or_mark(source, cli_args, site, token)
    except RelionQsubError as exc:
        return _failure(exc)
    hooks.report(prepared)
    if prepared.result.errors:
        return _refused(prepared)
    try:
        write_output(prepared)
    except RelionQsubError as exc:
        failed(prepared, str(exc))
        return _failure(exc)
    try:
        submission = submit(site, prepared, runner=runner, sleep=sleep, token=token)
    except CommandError as exc:
        return _sbatch_failed(prepared, exc, token, hooks)
    hooks.job(submission.stdout)
    try:
        start(site, prepared, submission, runner, sleep)
    except TransientError as exc:  # not released: the job stays held and never runs, so FAILURE is true
        return _not_released(prepared, submission, exc)
    finally:
        hooks.said(submission.stderr)
    record(prepared, submission.entry())
    if prepared.jobdir is not None:
        tidy(prepared.jobdir, submission)
    return Outcome(Status.SUBMITTED, submission.returncode, submission=submission)


def tidy(job_dir: Path, sub: Submission) -> None:
    """Remove the notes of earlier runs of the job dir that no job can still need (runs.stale_notes), once this
    submission is recorded (so the record shows them superseded). Best effort, no controller call: a note that
    cannot be removed only takes a directory entry, and the next submission tries again."""
    for path in runs.stale_notes(job_dir, sub.job_id or ""):
        try:
            path.unlink()
        except OSError:
            pass


def _failure(exc: RelionQsubError, exit_code: int | None = None) -> Outcome:
    return Outcome(Status.FAILED, exit_code or exc.exit_code, f"error: {exc}", exc)


def _prepare_or_mark(source: Path, cli_args: Sequence[str], site: Site, token: str) -> Prepared:
    """``prepare``; when the script cannot be read or the command line is wrong, the job dir is told and it raises."""
    try:
        return prepare(source, cli_args, site, token)
    except RelionQsubError as exc:
        jobdir = jobdir_mod.of_script(source)
        if jobdir is not None and jobdir.is_dir():
            mark_failed(jobdir, str(exc))
        raise


def failed(prepared: Prepared, reason: str, **extra: object) -> None:
    """Record the refusal and tell RELION the job failed (run.err line + RELION_JOB_EXIT_FAILURE)."""
    record(prepared, {"submitted": False, "error": reason, **extra})
    if prepared.jobdir is not None:
        mark_failed(prepared.jobdir, reason)


def _refused(prepared: Prepared) -> Outcome:
    """The script has errors (the report shows them all); the record and run.err name the first."""
    errors, source = prepared.result.errors, prepared.source
    first = errors[0]
    where = f"{source} line {first.line}" if first.line else str(source)
    more = f" (and {len(errors) - 1} more: run `relion-qsub check {source}`)" if len(errors) > 1 else ""
    failed(prepared, f"{where}: {first.message}{more}")
    return Outcome(Status.REFUSED, EX_DATAERR, "not submitted; fix the errors above and run the job again")


def _warned(prepared: Prepared) -> str:
    """relion-qsub's own warnings, for run.err beside sbatch's refusal: the GUI shows run.err, not the terminal
    where the warning went (sbatch's "Invalid partition name specified" says nothing of the partitions there are)."""
    warnings = [c.message for c in prepared.result.changes if c.action == "warning"]
    if not warnings:
        return ""
    more = f" (and {len(warnings) - 1} more: run `relion-qsub check {prepared.source}`)" if len(warnings) > 1 else ""
    return f"; relion-qsub had warned: {warnings[0]}{more}"


def _sbatch_failed(prepared: Prepared, exc: CommandError, token: str, hooks: Hooks) -> Outcome:
    """sbatch refused the job (exit with its status), or it could not be run or the controller did not answer
    within the retry budget (exit with the error's sysexits code)."""
    if exc.stderr:
        hooks.said(exc.stderr if exc.stderr.endswith("\n") else exc.stderr + "\n")
    reason = str(exc) + _warned(prepared)
    kept = kept_path(prepared, token)
    if isinstance(exc, TransientError) and kept is not None and kept.exists():
        # The first request went out un-held, then `void` wrote the kept-job file naming no job: a job the
        # controller still creates from a lost request ends in its guard without running anything. So "failed"
        # stays true.
        reason += f"; a job a lost request still creates ends at once without running anything ({kept.name} "
        reason += f"names no job; token {token})"
    elif isinstance(exc, TransientError) and kept is None:
        # Every request went out held (HOLD): one the controller still processes later creates a held job, which
        # never runs (doctor finds it by the token and --fix cancels it). So "failed" stays true.
        reason += "; a job a lost request still creates stays held and never runs: relion-qsub doctor --fix "
        reason += f"cancels it (token {token})"
    failed(prepared, reason, token=token, held=kept is None)
    return _failure(exc, exc.returncode)


def _not_released(prepared: Prepared, submission: Submission, exc: TransientError) -> Outcome:
    """The job exists but could not be released: it never runs. The record keeps its id; RELION is told it failed."""
    job = submission.job_id
    reason = f"{exc}; it never runs while held: scancel {job} and run the job again"
    record(prepared, {**submission.entry(), "error": reason})
    if prepared.jobdir is not None:
        mark_failed(prepared.jobdir, reason, lead=f"job {job} not started")
    return Outcome(Status.NOT_RELEASED, exc.exit_code, f"error: {reason}", exc, submission)
