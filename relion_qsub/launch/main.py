"""relion-launch: the RELION_STD_LAUNCHER inside a Slurm job.

Used in a RELION queue template as ``${RELION_STD_LAUNCHER} [srun options] XXXcommandXXX``. It lays out the
MPI ranks (``layout``: heterogeneous, homogeneous, homogeneous+1), leaves every rank all the GPUs of its node
(RELION maps them; ``gpumap`` predicts how, for the plan), runs the step with ``srun -K1`` so one
dead rank ends the step instead of leaving zombies, and keeps RELION's pipeline truthful: when the step fails or
the job is killed and RELION wrote no ``RELION_JOB_EXIT_*`` file, it writes
``<jobdir>RELION_JOB_EXIT_FAILURE`` and a one-line reason in ``<jobdir>run.err``. Outside an allocation it
runs on the local node (``$RELION_MPIRUN -n N`` for MPI programs).

The parts: see the package docstring (``relion_qsub.launch``); this module ties them together and is the entry
point of bin/relion-launch.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..errors import CommandError, LayoutError, RelionQsubError, UsageError, guarded
from ..relion import jobdir as jobdir_mod
from . import watchdog
from .envfile import env_file_warnings, load_env_file
from .invocation import HELP, PROG, Invocation, RelionArgs, parse_args, relion_args
from .layout import (
    HOSTFILE_PLACEHOLDER,
    Mode,
    Plan,
    hostfile_text,
    step_environment,
)
from .pipeline import Pipeline
from .plan import format_plan, make_plan, plan_gpus, summary_line
from .preflight import check_local_cpus, check_python_programs, scratch_check, thread_warnings
from .say import stderr_text, warn
from .supervise import ABORTED_EXIT, AbortWatch, aborted_reason, supervise, verdict


def private_dir(env: Mapping[str, str]) -> str:
    """A 0700 directory only this job step uses: under $TMPDIR (Biowulf: /lscratch/$SLURM_JOB_ID) or /tmp."""
    base = env.get("TMPDIR", "")
    if not base or not os.path.isdir(base) or not os.access(base, os.W_OK):
        base = tempfile.gettempdir()
    return tempfile.mkdtemp(prefix=f"relion-launch.{env.get('SLURM_JOB_ID', 'local')}.", dir=base)


def write_hostfile(directory: str, plan: Plan) -> str:
    path = os.path.join(directory, "hostfile")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(hostfile_text(plan))
    return path


# ------------------------------------------------------------------------------------------------------ main


def run(inv: Invocation) -> int:
    if inv.help:
        sys.stdout.write(HELP)
        return 0
    if inv.version:
        from .. import __version__

        print(f"{PROG} {__version__}")
        return 0
    if not inv.command:
        raise UsageError("no command given; usage: relion-launch [options] [srun options] <command...> (see --help)")
    if inv.env_file and not inv.dry_run:
        raise UsageError("--env-file only goes with --dry-run (a real launch uses the job's own environment)")
    rargs = relion_args(inv.command)
    env: Mapping[str, str] = os.environ
    if inv.env_file:
        env = load_env_file(inv.env_file)
        inv.warnings.extend(env_file_warnings(inv.env_file, env))
    in_job = bool(env.get("SLURM_JOB_ID", "").strip())

    if inv.dry_run:
        plan = make_plan(inv, env, rargs, HOSTFILE_PLACEHOLDER)
        for w in inv.warnings:
            warn(w)
        try:
            check_python_programs(inv.command, rargs, env)
        except CommandError as exc:
            warn(str(exc))
        sys.stdout.write(format_plan(plan, rargs, plan_gpus(plan, rargs)) + "\n")
        return 0

    directory = private_dir(env) if in_job else None
    try:
        hostfile = os.path.join(directory, "hostfile") if directory else HOSTFILE_PLACEHOLDER
        plan = make_plan(inv, env, rargs, hostfile)
        for w in inv.warnings:
            warn(w)
        check_python_programs(inv.command, rargs, env)
        return _launch(plan, rargs, env, directory)
    finally:
        if directory:
            shutil.rmtree(directory, ignore_errors=True)


def _launch(plan: Plan, rargs: RelionArgs, env: Mapping[str, str], directory: str | None) -> int:
    pipeline = Pipeline(rargs.pipeline_control, env)
    if pipeline.abort_requested():  # Abort clicked while the job was pending: the program never checks before it runs
        pipeline.mark_aborted(aborted_reason(rargs.program, None))
        return ABORTED_EXIT
    cwd = Path.cwd()
    use = plan_gpus(plan, rargs)
    warnings = [*plan.warnings, *use.warnings]
    if plan.mode is Mode.LOCAL:
        check_local_cpus(plan, rargs)
    else:
        warnings += thread_warnings(rargs, env)
    scratch, scratch_warnings = scratch_check(rargs, cwd)
    warnings += scratch_warnings
    for w in warnings:
        warn(w)
    print(summary_line(plan, rargs, scratch, use), flush=True)
    print(f"{PROG}: {plan.reason}", flush=True)
    if use.rule:
        print(f"{PROG}: {use.rule}", flush=True)

    if plan.hostfile_lines:
        if directory is None:
            raise LayoutError("internal: a hostfile layout without a private directory")
        write_hostfile(directory, plan)
    return _run_step(plan, rargs, env, pipeline, step_environment(plan, env))


def _killed_handler(pipeline: Pipeline, rargs: RelionArgs, env: Mapping[str, str]) -> Callable[[int], None]:
    """What to do when Slurm signals relion-launch: tell RELION first, then say why if Slurm knows already."""

    def on_kill(signum: int) -> None:
        name = signal.Signals(signum).name
        pipeline.mark_failure(
            f"got {name} while {rargs.program} was running: Slurm is ending the job (time limit, scancel, node "
            f"failure or preemption; `sacct -j {env.get('SLURM_JOB_ID', '<job id>')}` says which)"
        )
        # Then, in the seconds before SIGKILL (KillWait), which one and what to do: a second run.err line, where
        # the GUI shows it (first the exit file: a slow controller must not cost RELION its verdict).
        try:
            from ..timelimit import reason

            timeout = reason(env.get("SLURM_JOB_ID", ""), env, jobdir=pipeline.jobdir)
        except Exception:  # a hint only: the job is being killed
            timeout = None
        if timeout:
            stderr_text(f"{PROG}: {timeout}\n")

    return on_kill


def _run_step(
    plan: Plan, rargs: RelionArgs, env: Mapping[str, str], pipeline: Pipeline, step_env: dict[str, str]
) -> int:
    """Run the step under supervision (stall watchdog, RELION's Abort) and tell RELION how it ended."""
    in_step = plan.mode is not Mode.LOCAL
    stalled: list[str] = []  # the watchdog's reason, once it ended the step
    watch = stall_watch(rargs, env, pipeline, in_step, stalled)
    grace = abort_grace(env)
    abort = AbortWatch(pipeline.abort_requested, grace, poll=min(2.0, max(grace / 4, 0.1))) if pipeline.jobdir else None
    on_kill = _killed_handler(pipeline, rargs, env)
    outcome = supervise(
        plan.argv, step_env, scan_srun=in_step, on_kill=on_kill, parent_death=in_step, watch=watch, abort=abort
    )
    code, reason = verdict(outcome, rargs.program, env.get("SLURM_JOB_ID", ""))
    if stalled and outcome.signal is None:
        # The ranks died of the watchdog's SIGTERM, not "ended from outside"; its line is in run.err already.
        reason = None if pipeline.marked else stalled[0]
    if reason is not None:
        done = pipeline.mark_aborted(reason) if code == ABORTED_EXIT and outcome.aborted else None
        if not (done or pipeline.mark_failure(reason) or pipeline.said):
            stderr_text(f"{PROG}: {reason}\n")
    return code


def stall_watch(
    rargs: RelionArgs, env: Mapping[str, str], pipeline: Pipeline, in_step: bool, stalled: list[str]
) -> Callable[[subprocess.Popen[bytes]], Callable[[], None]] | None:
    """The stall watchdog's starter for supervise(), or None where the site turned it off (watchdog.py).

    When the site lets it end the step, the reason goes to run.err with RELION_JOB_EXIT_FAILURE and into
    ``stalled``, so the step's end is not told as something else.
    """
    conf, warning = watchdog.settings(env)
    if warning:
        warn(warning)
    if conf is None:
        return None
    job = env.get("SLURM_JOB_ID", "")
    node = env.get("SLURMD_NODENAME", "") or socket.gethostname().split(".")[0]  # the name Slurm knows it by
    where = f"on {node}" if in_step else "here"

    def start(child: subprocess.Popen[bytes]) -> Callable[[], None]:
        meter = watchdog.cpu_meter(child.pid, in_step)
        if meter is None:
            return lambda: None  # the ranks cannot be seen from here: no judgement rather than a wrong one
        run_out = pipeline.jobdir / jobdir_mod.RUN_OUT if pipeline.jobdir is not None else None

        def on_stall() -> None:
            what = (
                f"{rargs.program} looks stalled: no CPU used by the job {where} and run.out unchanged for "
                f"{conf.minutes} minutes ({watchdog.STALL_MINUTES})"
            )
            cancel = f"scancel {job}" if job else "stop it"
            if conf.end_step and child.poll() is None:
                stalled.append(
                    f"{what}; ended the step to free the allocation ({watchdog.STALL_END}): continue the job in "
                    "RELION from its last finished iteration"
                )
                pipeline.mark_failure(stalled[0])
                child.terminate()  # srun forwards SIGTERM to every rank; -K1 ends the step
            else:
                warn(
                    f"{what}; if it stays so, {cancel} and continue the job in RELION from its last finished iteration"
                )

        dog = watchdog.Watchdog(conf, meter, run_out, on_stall)
        dog.start()
        return dog.stop

    return start


ABORT_GRACE = "RELION_LAUNCH_ABORT_GRACE"  # seconds a program gets to honour the GUI's Abort by itself


def abort_grace(env: Mapping[str, str]) -> float:
    """The site's grace (``RELION_LAUNCH_ABORT_GRACE``, seconds), 60 when unset; a bad value is a LayoutError."""
    text = env.get(ABORT_GRACE, "").strip()
    try:
        grace = float(text) if text else 60.0
    except ValueError:
        grace = -1.0
    if not grace >= 0:
        raise LayoutError(f"{ABORT_GRACE}={text!r} in the job's environment: give a number of seconds, e.g. 60")
    return grace


def _prescan_verbose(argv: Sequence[str]) -> bool:
    for word in argv:
        if word in ("-v", "--verbose"):
            return True
        if word == "--" or not word.startswith("-"):
            return False
    return False


def run_or_mark(argv: Sequence[str]) -> int:
    """run(), and when relion-launch itself fails on the way to srun, tell RELION's pipeline.

    A launcher error (a bad job environment, a template mistake, no srun) would otherwise leave the job
    directory without RELION_JOB_EXIT_*, and the GUI would show the job "Running" forever. The job directory
    comes from the command's --pipeline_control (--pipeline-control for RELION 5's Python programs), found in
    argv even when the options before the command do not parse. A dry run writes nothing; the error itself is
    re-raised for guarded() to report.
    """
    inv: Invocation | None = None
    try:
        inv = parse_args(argv)
        return run(inv)
    except (Exception, KeyboardInterrupt) as exc:
        dry_run = inv.dry_run if inv is not None else "--dry-run" in argv
        if not dry_run:
            words = inv.command if inv is not None and inv.command else list(argv)
            if isinstance(exc, RelionQsubError):
                reason = f"error: {exc}"
            elif isinstance(exc, KeyboardInterrupt):
                reason = "interrupted before the step ended"
            else:
                reason = f"internal error: {exc!r}"
            Pipeline(relion_args(words).pipeline_control, os.environ).mark_failure(reason, echo=False)
        raise


def main(argv: list[str]) -> int:
    """Entry point of bin/relion-launch (via cli.launch_main): errors as one line with their sysexits code."""
    return guarded(PROG, _prescan_verbose(argv), lambda: run_or_mark(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
