"""Run the step and watch it: forward signals, read srun's stderr for the rank that failed first, and judge the end.

srun is started with subprocess.Popen on a list argv (it must stream its output and be waited on, so it does
not fit proc.run's capture-everything contract); its stderr is read line by line, passed through, and scanned
for srun's own "task N: Exited with exit code X" messages to name the rank that failed first.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import IO

from ..errors import CommandError


@dataclass(frozen=True)
class RankFailure:
    rank: int
    host: str
    code: int  # exit code, or 128 + signal
    what: str  # srun's words: "Exited with exit code 3", "Segmentation fault (core dumped)", ...


_TASK_END = re.compile(rb"^srun: error: (?P<host>\S+): tasks? (?P<tasks>\d[\d,\-]*): (?P<what>.+?)\s*$")
_CANCELLED = re.compile(rb"\*\*\* (?:JOB|STEP) \S+ ON \S+ CANCELLED AT \S+(?: DUE TO (?P<why>[A-Z ]+?))? \*\*\*")
_EXIT_CODE = re.compile(r"Exited with exit code (\d+)")
# srun's words when the job ended before its step could start (src/srun/libsrun/allocate.c, 22.05): a scancel or
# time limit that came first; relion-launch itself may not have been signalled yet (the batch shell runs its EXIT
# trap before it dies, see jobend).
_EXPIRED = re.compile(rb"^srun: error: Slurm job \d+ has expired")


def _signal_numbers() -> dict[str, int]:
    names: dict[str, int] = {}
    for sig in signal.Signals:
        text = signal.strsignal(sig)
        if text:
            names.setdefault(text, int(sig))
    return names


_SIGNALS_BY_TEXT = _signal_numbers()


def parse_task_end(line: bytes) -> RankFailure | None:
    """srun's report of a failed task: 'srun: error: cn2: task 6: Exited with exit code 3' (22.05)."""
    m = _TASK_END.match(line)
    if m is None:
        return None
    what = m.group("what").decode(errors="replace")
    rank = int(re.split(rb"[,\-]", m.group("tasks"))[0])
    host = m.group("host").decode(errors="replace")
    code = _EXIT_CODE.fullmatch(what)
    if code:
        return RankFailure(rank, host, int(code.group(1)), what)
    sig = _SIGNALS_BY_TEXT.get(what.removesuffix(" (core dumped)"))
    if sig is not None:
        return RankFailure(rank, host, 128 + sig, what)
    return None


def parse_cancel(line: bytes) -> str | None:
    """slurmstepd's '*** STEP 5.0 ON cn1 CANCELLED AT ... DUE TO TIME LIMIT ***' -> 'time limit'."""
    m = _CANCELLED.search(line)
    if m is None:
        return None
    return (m.group("why") or b"scancel").decode().lower()


@dataclass
class Outcome:
    returncode: int
    failure: RankFailure | None = None
    signal: int | None = None
    cancel: str | None = None
    aborted: float | None = None  # the grace (s) after which relion-launch ended a step RELION's Abort asked to stop


@dataclass(frozen=True)
class AbortWatch:
    """How relion-launch honours the GUI's Abort while the step runs: ``requested`` says whether
    RELION_JOB_ABORT_NOW is there (for the current run); checked every ``poll`` s; a step still running ``grace`` s
    after it was first seen is sent SIGTERM (srun passes it to every task and ends the step), SIGKILL ``kill_after``
    s later. RELION's programs check for the file only between iterations (src/pipeline_control.cpp,
    pipeline_control_check_abort_job), which can be an hour apart; the grace lets one that is about to check stop
    cleanly by itself."""

    requested: Callable[[], bool]
    grace: float = 60.0
    poll: float = 2.0
    kill_after: float = 10.0


def _watch_abort(child: subprocess.Popen[bytes], outcome: Outcome, watch: AbortWatch, stop: threading.Event) -> None:
    seen: float | None = None
    while not stop.wait(watch.poll):
        if child.poll() is not None:
            return
        if seen is None:
            seen = time.monotonic() if watch.requested() else None
        elif time.monotonic() - seen >= watch.grace:
            outcome.aborted = watch.grace
            child.terminate()
            if not stop.wait(watch.kill_after) and child.poll() is None:
                child.kill()
            return


FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
KILLING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def term_when_parent_dies() -> bool:
    """Have the kernel send this process SIGTERM the moment its parent (the batch shell) dies.

    Where Slurm tracks jobs with proctrack/cgroup (most sites), scancel and the time limit send SIGTERM only to
    the step's own tasks: in the batch step that is the shell, not relion-launch below it. The shell dies of
    it at once, and slurmstepd then SIGKILLs everything left in the job's cgroup, so relion-launch would never
    learn that the job ended and could not tell RELION. The parent-death signal arrives while the shell exits,
    before slurmstepd has reaped it. Best effort: the handler must run before slurmstepd's SIGKILL, a race that a
    loaded node can lose (seen once in a full test run on the 2-core testbed); for jobs submitted through
    relion-qsub the end-watcher job (watch.py) writes the exit file then. False where prctl is unavailable.
    """
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the shell died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)
    return True


def _start(argv: Sequence[str], env: Mapping[str, str], scan_srun: bool) -> subprocess.Popen[bytes]:
    """Popen on the list argv; a program that cannot start is a CommandError that says which and why."""
    try:
        return subprocess.Popen(  # noqa: S603 - list argv built by the layout, never a shell string
            list(argv), env=dict(env), stderr=subprocess.PIPE if scan_srun else None
        )
    except FileNotFoundError as exc:
        raise CommandError(
            f"{argv[0]}: command not found; is Slurm installed and on PATH in the batch job?"
            if os.path.basename(argv[0]) == "srun"
            else f"{argv[0]}: command not found; check the command (or RELION_MPIRUN)",
            argv=tuple(argv),
        ) from exc
    except PermissionError as exc:
        raise CommandError(f"{argv[0]}: not executable ({exc.strerror})", argv=tuple(argv)) from exc
    except OSError as exc:
        raise CommandError(f"{argv[0]}: cannot run it ({exc.strerror})", argv=tuple(argv)) from exc


def _pass_through(lines: IO[bytes], sink: IO[bytes], outcome: Outcome) -> None:
    """Copy srun's stderr line by line (the job's run.err) and note its first task report and cancel line."""
    for line in lines:
        try:
            sink.write(line)
            sink.flush()
        except (OSError, ValueError):
            pass
        if outcome.failure is None:
            outcome.failure = parse_task_end(line)
        if outcome.cancel is None:
            outcome.cancel = parse_cancel(line) or ("expired" if _EXPIRED.match(line) else None)


def supervise(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    scan_srun: bool,
    on_kill: Callable[[int], None],
    stderr: IO[bytes] | None = None,
    parent_death: bool = False,
    watch: Callable[[subprocess.Popen[bytes]], Callable[[], None]] | None = None,
    abort: AbortWatch | None = None,
) -> Outcome:
    """Run argv, forward signals to it, pass its stderr through (scanning srun's task reports), wait.

    ``parent_death``: treat the death of the parent process (the batch shell) as SIGTERM; see
    term_when_parent_dies. ``watch``: started with the running child, returns what stops it (the stall
    watchdog, watchdog.py). ``abort``: end the step when RELION's Abort is not honoured in time (AbortWatch).
    """
    outcome = Outcome(returncode=0)
    child: subprocess.Popen[bytes] | None = None

    def handler(signum: int, frame: FrameType | None) -> None:
        del frame
        if signum in KILLING and outcome.signal is None:
            outcome.signal = signum
            on_kill(signum)  # first: Slurm SIGKILLs everything KillWait seconds after the SIGTERM
        if child is not None and child.poll() is None:
            try:
                child.send_signal(signum)
            except ProcessLookupError:
                pass

    previous = {sig: signal.signal(sig, handler) for sig in FORWARDED}
    if parent_death:
        term_when_parent_dies()
    stop = threading.Event()
    watcher: threading.Thread | None = None
    try:
        child = _start(argv, env, scan_srun)
        stop_watch = watch(child) if watch is not None else None
        try:
            if abort is not None:
                watcher = threading.Thread(target=_watch_abort, args=(child, outcome, abort, stop), daemon=True)
                watcher.start()
            if child.stderr is not None:
                _pass_through(child.stderr, stderr if stderr is not None else sys.stderr.buffer, outcome)
            outcome.returncode = child.wait()
        finally:
            if stop_watch is not None:
                stop_watch()
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
        for sig, old in previous.items():
            signal.signal(sig, old)
    return outcome


# A RELION program that honours Abort exits with 2: exit(RELION_EXIT_ABORTED), pipeline_control_relion_exit(2)
# (src/pipeline_control.h, .cpp).
ABORTED_EXIT = 2


def aborted_reason(program: str, grace: float | None) -> str:
    """The run.err words for an abort relion-launch carried out (None: before the program started)."""
    if grace is None:
        return f"aborted from RELION (RELION_JOB_ABORT_NOW was there when the job started): {program} was not run"
    return (
        f"aborted from RELION: {program} had not stopped {grace:g} s after RELION_JOB_ABORT_NOW appeared, so its "
        "step was cancelled; continue the job from its last finished iteration"
    )


def verdict(outcome: Outcome, program: str, job_id: str = "") -> tuple[int, str | None]:
    """(exit code, one-line reason or None on success)."""
    if outcome.aborted is not None and outcome.signal is None:
        return ABORTED_EXIT, aborted_reason(program, outcome.aborted)
    if outcome.signal is not None:
        name = signal.Signals(outcome.signal).name
        why = f" ({outcome.cancel})" if outcome.cancel else ""
        return 128 + outcome.signal, f"got {name}{why}: the job is being ended; {program} was stopped"
    f = outcome.failure
    if f is not None:
        if outcome.cancel and f.code == 128 + signal.SIGTERM:
            return f.code, f"the step was cancelled ({outcome.cancel}): rank {f.rank} on {f.host}: {f.what}"
        if f.code in (128 + signal.SIGTERM, 128 + signal.SIGKILL):
            # A rank that was sent SIGTERM/SIGKILL did not fail by itself: Slurm ended the step from outside (the
            # job was cancelled, lost a node, hit a limit, or its batch step was killed). Blaming the rank misleads.
            return f.code, (
                f"Slurm ended the step from outside (rank {f.rank} on {f.host}: {f.what}): the job was cancelled, "
                f"lost a node or hit a limit (`sacct -j {job_id or '<job id>'}` says which); not a failure of "
                f"{program} itself"
            )
        return f.code, (
            f"rank {f.rank} on {f.host} failed first ({f.what}); srun -K1 ended the other ranks of {program}"
        )
    rc = outcome.returncode
    if rc == 0:
        return 0, None
    if outcome.cancel == "expired":
        return rc, (
            f"srun could not start the step: Slurm job {job_id or '<job id>'} was already being ended (cancelled, or "
            f"its time limit; `sacct -j {job_id or '<job id>'}` says which); {program} did not run"
        )
    if rc < 0:
        return 128 - rc, f"{program} was killed by {signal.Signals(-rc).name}"
    return rc, f"{program} ended with exit code {rc}"
