"""The end-watcher: one small Slurm job per RELION submission that tells RELION when Slurm ended the job badly.

RELION learns a queued job's end only from ``RELION_JOB_EXIT_*`` in the job dir. The RELION program and
relion-launch write one for every ending they live to see; they do not see a job cancelled while PENDING, a launch
failure (run.out cannot be created), a SIGKILLed batch step (cgroup OOM), a lost node. For those, relion-qsub
submits beside each job::

    sbatch --dependency=afternotok:<id> --kill-on-invalid-dep=yes ... --wrap='python -c ... watch JOBDIR <id>'

Measured on the testbed (Slurm 22.05, docs/design.md): afternotok is satisfied by every failed ending, also by a
cancel while PENDING (the watcher ran 0.8 s after the scancel); when the job COMPLETES, the dependency can never be
satisfied and ``--kill-on-invalid-dep=yes`` makes slurmctld cancel the watcher at once (Reason
DependencyNeverSatisfied): on success it never runs, no job and no process is left. Runs as the user, no root, no
controller-side hook (EpilogSlurmctld/strigger run on the controller host), any Slurm >= 21.08.

At run time (``main``) the watcher asks Slurm how the job ended and writes RELION_JOB_EXIT_FAILURE plus one run.err
line through :func:`runs.mark` (never over an exit file the program or relion-launch wrote, and only while its job is
the dir's current run: a watcher that starts late, on a busy cluster, after RELION submitted the job dir again, would
otherwise mark the new run failed).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import proc
from .relion import jobdir, runs

COMMENT = "relion-qsub-watch"  # --comment of the watcher: never the submission's token (lookups by token stay exact)
NAME = "relion-qsub-watch"
# What the watcher asks for: one CPU for at most 2 minutes (it runs for about a second), so backfill fits it anywhere.
RESOURCES = ("--ntasks=1", "--cpus-per-task=1", "--mem=100M", "--time=2", "--no-requeue")
_RUN = "import sys; sys.path.insert(0, sys.argv.pop(1)); import relion_qsub.watch as w; sys.exit(w.main(sys.argv[1:]))"


def command(job_dir: Path, job_id: str, stamp: runs.Stamp | None = None) -> list[str]:
    """This interpreter and this package, as the submission ran them (a compute node sees the same install)."""
    root = str(Path(__file__).resolve().parent.parent)
    run = [stamp.encode()] if stamp is not None else []
    return [sys.executable, "-s", "-c", _RUN, root, os.path.abspath(job_dir), job_id, *run]


def sbatch_argv(
    sbatch: str,
    job_id: str,
    job_dir: Path,
    where: list[str],
    extra: tuple[str, ...] = (),
    stamp: runs.Stamp | None = None,
) -> list[str]:
    """The watcher's sbatch command. ``where``: the job's own --partition/--account (the user may use them);
    ``extra``: the site's ``submit.watch_options`` (last, so they win); ``stamp``: the run it watches."""
    import shlex

    return [
        sbatch,
        "--parsable",
        f"--dependency=afternotok:{job_id}",
        "--kill-on-invalid-dep=yes",
        f"--job-name={NAME}",
        f"--comment={COMMENT}:{job_id}",
        "--output=/dev/null",
        "--error=/dev/null",
        *RESOURCES,
        *where,
        *extra,
        f"--wrap={shlex.join(command(job_dir, job_id, stamp))}",
    ]


def cancel_argv(scancel: str, watcher: str) -> list[str]:
    """scancel of one end-watcher, only while it is PENDING and still a watcher of this user: filtered by name, user
    and state, so a recycled id (job ids restart when a cluster's state is reset) never cancels another job, and a
    watcher already running is left to finish (runs.mark keeps it from writing for a run that is not current)."""
    return [scancel, f"--name={NAME}", f"--user={os.getuid()}", "--state=PENDING", watcher]


# ---- run time, on a compute node ------------------------------------------------------------------------------

Runner = Callable[..., proc.Result]


def ending(job_id: str, runner: Runner = proc.run, sleep: Callable[[float], None] = time.sleep) -> str:
    """The run.err sentence for how Slurm ended ``job_id``."""
    from .slurm import client, states

    view = client.show_job(job_id, runner).view
    state = view.state if view is not None else ""
    acct = ""
    for _ in range(5):  # slurmdbd hears of the end a moment after the controller
        acct = client.acct_state(job_id, runner)
        if not acct or states.base(acct) not in states.NOT_ENDED_YET:
            break
        sleep(1)
    if acct and (not state or states.base(acct) == state):
        state = acct  # the same state, with "by <uid>" for a cancel
    if view is None:  # the controller forgot the job (MinJobAge after its end): accounting has the rest
        view = client.job_state(job_id, runner)
    # The watcher runs as the job's owner (it was submitted beside the job, by the same user): "by you" is right.
    owner = view.owner_uid if view.owner_uid is not None else os.getuid()
    return states.describe(job_id, state or view.acct_state, view.exit_code, view.reason, owner)


def timeout_hint(job_id: str, job_dir: Path | None = None, runner: Runner = proc.run) -> str | None:
    """When Slurm ended the job at its time limit: the next walltime to ask, in the box RELION fills --time from."""
    from .timelimit import reason

    return reason(job_id, os.environ, runner, job_dir)


def main(argv: list[str]) -> int:
    """``watch JOBDIR JOB_ID [RUN]``: mark the RELION job failed, saying how Slurm ended it; exit 0 in every case
    (the watcher's own exit code is seen by nobody; its output goes to /dev/null). RUN: the run's stamp."""
    if len(argv) not in (2, 3):
        print("usage: watch JOBDIR JOB_ID [RUN]", file=sys.stderr)
        return 64
    job_dir, job_id = Path(argv[0]), argv[1]
    stamp = runs.Stamp.decode(argv[2] if len(argv) > 2 else None)
    hint = timeout_hint(job_id, job_dir)
    if jobdir.exit_file(job_dir) is not None:
        # The program or relion-launch said it already; at a time limit they could not say what to ask next
        # (Slurm SIGKILLs them KillWait seconds after SIGTERM): the next walltime and its box, for the GUI's run.err
        # (not for a run RELION has replaced: that run.err is the new run's).
        if hint and runs.superseded(job_dir, job_id, stamp) is None:
            jobdir.note(job_dir, f"relion-qsub: {hint}")
        return 0
    line = f"relion-qsub: {hint or ending(job_id)}"
    try:
        runs.mark(job_dir, jobdir.EXIT_FAILURE, line, job_id, stamp)
    except OSError as exc:
        print(f"relion-qsub watch: cannot create {job_dir / jobdir.EXIT_FAILURE}: {exc.strerror}", file=sys.stderr)
    return 0
