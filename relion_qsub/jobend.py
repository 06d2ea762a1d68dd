"""The end of the batch script: tell RELION when its program ended without reporting.

A RELION program reports its own end with ``RELION_JOB_EXIT_*`` (src/pipeline_control.cpp,
``pipeline_control_relion_exit``); one that crashes (a segfault, an MPI abort, a rank killed) writes nothing. When
the template runs anything after RELION's command (16 of 40 published site templates: ``echo done``, a cleanup),
the batch script then exits 0, Slurm records COMPLETED, the end-watcher (afternotok) is cancelled unrun, and RELION
shows the job Running for ever. So the normalised script of a RELION job sets an EXIT trap (submit.py's preamble)
that runs ``main`` with the script's exit status: with no exit file in the job dir and the run still current, it
writes RELION_JOB_EXIT_FAILURE and one run.err line saying so.

What it says comes from where the facts are, without waiting for the end-watcher (which may wait for a CPU):
- the batch step's memory cgroup counts the kernel's OOM kills (v1 ``memory.oom_control``, v2 ``memory.events``,
  ``oom_kill N``); slurmstepd reads the same counter and records OUT_OF_MEMORY;
- while Slurm is ending the job (scancel, time limit, node failure: bash also runs the EXIT trap on SIGTERM, with a
  stale ``$?``; dash does not) ``scontrol show job`` (asked only on this unhappy path) says COMPLETING, not yet how
  it ended (measured on the testbed, 22.05): then the end-watcher, which afternotok starts because of that ending,
  says how; a job without one (``[submit] watch = false``) says that Slurm is ending it;
- otherwise the script ended by itself and the program did not report: the line says so, with the exit status.
Runs on a compute node, from the job: imports only relion/ (the job-dir contract, runs) and slurm/ (one scontrol).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .relion import jobdir, runs
from .slurm import states
from .slurm.states import AGAIN, OOM_FIX

if TYPE_CHECKING:
    from .slurm.client import JobView

_RUN = "import sys; sys.path.insert(0, sys.argv.pop(1)); import relion_qsub.jobend as e; sys.exit(e.main(sys.argv[1:]))"
FUNCTION = "relion_qsub_ended"  # the shell function the trap calls (one name, no clash with a template's own)


def command(job_dir: Path) -> list[str]:
    """This interpreter and this package, as the submission ran them (a compute node sees the same install)."""
    root = str(Path(__file__).resolve().parent.parent)
    return [sys.executable, "-s", "-c", _RUN, root, os.path.abspath(job_dir)]


WATCHED = "watched"  # the argument that says an end-watcher was submitted beside the job


NOTED = "relion_qsub_noted"  # the shell variable set once the job printed relion-qsub's note (no clash either)


def note_lines(job_dir: Path) -> tuple[str, str]:
    """(the line that prints relion-qsub's note for this job, if there is one, into run.out and run.err at the start;
    the trap's command that prints it at the end when it appeared only after the start). The note (submit.py, when
    Slurm refused the end-watcher) is written right after the job's own sbatch: a job that starts at once may be
    running before it exists. Without a note each costs one stat, and no process is started."""
    import shlex

    note = f'{shlex.quote(str(jobdir.unwatched_note(Path(os.path.abspath(job_dir)), "")))}"${{SLURM_JOB_ID-}}"'
    say = f"cat {note}; cat {note} >&2"
    return f"if [ -e {note} ]; then {NOTED}=1; {say}; fi", f'[ -n "${{{NOTED}-}}" ] || [ ! -e {note} ] || {{ {say}; }}'


GUARD_VAR = "relion_qsub_kept"  # the shell variable of the guard's loop (no clash with a template's own)
GUARD = "relion_qsub_guard"  # the shell function of the guard
# zsh (a POSIX_SHELLS member) ends the whole script on a glob that matches nothing (its NOMATCH option, on by
# default; seen with zsh 5.9): the functions below turn on nullglob for themselves only (localoptions).
_ZSH_NULLGLOB = '[ -z "${ZSH_VERSION-}" ] || setopt localoptions nullglob;'


def guard(job_dir: Path, token: str) -> str:
    """The POSIX-shell line that ends a job relion-qsub did not keep, before anything else runs (no trap yet, so no
    exit file either).

    The first sbatch of a RELION job goes in un-held (submit.py): one controller call less. When its answer is lost
    and relion-qsub retries or gives up, the lost request may still create a job later; relion-qsub first writes the
    submission's kept-job file (jobdir.kept_name: the id it keeps, or nothing), and such a job, finding another id
    there, says so in run.err and exits 0. On the happy path no such file exists: one READDIR (a glob, so an NFS
    client's cached "no such file" cannot hide the file), no process started."""
    import shlex

    where = f"{shlex.quote(os.path.abspath(job_dir))}/{jobdir.KEPT_PREFIX.replace('.', '[.]', 1)}"
    name = shlex.quote(jobdir.kept_name(token).removeprefix(jobdir.KEPT_PREFIX))
    kept = f'$(cat "${GUARD_VAR}")'
    say = (
        'echo "relion-qsub: Slurm job $SLURM_JOB_ID comes from a request whose answer was lost; relion-qsub kept '
        f'${{{GUARD_VAR}:-no job}} for this submission, so it ends here without running anything" >&2'
    )
    return (
        f'{GUARD}() {{ {_ZSH_NULLGLOB} for {GUARD_VAR} in {where}{name}; do if [ -e "${GUARD_VAR}" ] && '
        f'[ "{kept}" != "$SLURM_JOB_ID" ]; then {GUARD_VAR}={kept}; {say}; exit 0; fi; done; }}; {GUARD}'
    )


def preamble(job_dir: Path, stamp: runs.Stamp | None, watched: bool, token: str | None = None) -> list[str]:
    """The POSIX-shell lines that go before the script's first command: the guard (``token``: the submission's,
    when its first sbatch goes in un-held), export the run's stamp (relion-launch reads it), print relion-qsub's
    note of a refused end-watcher (note_lines) and trap EXIT. The trap keeps the script's exit status: neither bash
    nor dash change it after an EXIT trap. When the program reported (the happy path) the shell sees its exit file
    and starts no Python: a glob reads the directory (READDIR), as main does, so an NFS client's cached "no such
    file" does not hide it."""
    import shlex

    lines = [guard(job_dir, token)] if token is not None else []
    lines += [f"export {runs.ENV}={shlex.quote(stamp.encode())}"] if stamp is not None else []
    argv = [*command(job_dir), *([WATCHED] if watched else [])]
    exits = f"{shlex.quote(os.path.abspath(job_dir))}/{jobdir.EXIT_GLOB}"
    at_start, at_end = note_lines(job_dir) if watched else ("", "")  # only a watched job's watcher can be refused
    ended = f'set -- "$1" {exits}; [ -e "$2" ] || {shlex.join(argv)} "$1"'
    return [
        *lines,
        *([at_start] if at_start else []),
        f"{FUNCTION}() {{ {_ZSH_NULLGLOB} {at_end + '; ' if at_end else ''}{ended}; }}",
        f"trap '{FUNCTION} \"$?\"' EXIT",
    ]


def _status(status: str) -> str:
    """ " with exit code 137 (its last command was killed by SIGKILL)"; "" for 0 or nothing."""
    if status in ("", "0"):
        return ""
    import signal

    try:  # a shell reports a command killed by signal N as 128 + N
        name = signal.Signals(int(status) - 128).name if status.isdigit() and int(status) > 128 else ""
    except ValueError:
        name = ""
    return f" with exit code {status}" + (f" (its last command was killed by {name})" if name else "")


def oom_kills(cgroup_file: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> int:
    """How many processes the kernel's OOM killer ended in this process's memory cgroup (the batch step's task
    cgroup under Slurm's task/cgroup); 0 when it cannot be read."""
    try:
        lines = cgroup_file.read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            files = (root / "memory" / path.lstrip("/") / "memory.oom_control",)
        elif controllers == "":
            files = (root / path.lstrip("/") / "memory.events",)
        else:
            continue
        for name in files:
            try:
                words = dict(x.split() for x in name.read_text().splitlines() if len(x.split()) == 2)
            except OSError:
                continue
            if words.get("oom_kill", "").isdigit() and int(words["oom_kill"]):
                return int(words["oom_kill"])
    return 0


def why(job_id: str, status: str, slurm: JobView | None, kills: int, watched: bool = False) -> str | None:
    """The run.err line for a job whose program did not report, from what the job can see (``slurm``: the
    controller's record, None when it could not answer); None when the end-watcher will say it better (Slurm is
    ending the job)."""
    state = slurm.state if slurm is not None else ""
    if kills:
        return (
            f"relion-qsub: Slurm job {job_id} ran out of memory: the out-of-memory killer ended {kills} process"
            f"{'es' if kills > 1 else ''} of its batch script (OUT_OF_MEMORY) and no RELION_JOB_EXIT_* was written; "
            f"{OOM_FIX}"
        )
    if state == states.COMPLETING and watched:
        return None
    if state == states.COMPLETING:
        return (
            f"relion-qsub: Slurm is ending job {job_id} from outside (scancel, its time limit, a node failure or "
            f"preemption; `sacct -j {job_id}` says which) and no RELION_JOB_EXIT_* was written; {AGAIN}"
        )
    if slurm is not None and state and state != states.RUNNING:
        return f"relion-qsub: {states.describe(job_id, state, slurm.exit_code, slurm.reason, slurm.owner_uid)}"
    return reason(job_id, status)


def reason(job_id: str, status: str) -> str:
    """The run.err line: the program ended by itself and nobody reported how."""
    code = _status(status)
    sacct = f"sacct -j {job_id}" if job_id else "sacct"
    return (
        f"relion-qsub: the batch script of Slurm job {job_id or '?'} ended{code} and no RELION_JOB_EXIT_* was "
        "written: the RELION program ended without reporting (it crashed or was killed, or the job was cancelled or "
        f"hit its time limit; `{sacct}` says which); its own error, if any, is above in run.err and run.out"
    )


def main(argv: list[str]) -> int:
    """``JOBDIR [watched] STATUS``: mark the job failed unless an exit file exists or the run is no longer current.
    Exits with 0 (the trap's status is not the script's); a problem goes to stderr, which is run.err."""
    watched = len(argv) == 3 and argv[1] == WATCHED
    if len(argv) != 2 + watched:
        print(f"usage: jobend JOBDIR [{WATCHED}] STATUS", file=sys.stderr)
        return 64
    job_dir, status = Path(argv[0]), argv[-1]
    try:
        names = set(os.listdir(job_dir))  # a READDIR, not a cached lookup: NFS shows the program's exit file
    except OSError as exc:
        print(f"relion-qsub: cannot read {job_dir}: {exc.strerror}", file=sys.stderr)
        return 0
    if names & set(jobdir.EXIT_FILES):
        return 0
    job_id = os.environ.get("SLURM_JOB_ID", "")
    stamp = runs.Stamp.decode(os.environ.get(runs.ENV))
    if watched and job_id and os.path.lexists(jobdir.unwatched_note(job_dir, job_id)):
        watched = False  # Slurm refused the end-watcher: nobody else will say how Slurm ended the job
    from .slurm import client  # here: the normalised script's preamble (submit time) needs none of it

    line = why(job_id, status, client.show_job(job_id).view if job_id else None, oom_kills(), watched)
    if line is None:
        return 0
    try:
        marked = runs.mark(job_dir, jobdir.EXIT_FAILURE, line, job_id, stamp)
    except OSError as exc:
        print(f"relion-qsub: cannot create {job_dir / jobdir.EXIT_FAILURE}: {exc.strerror}", file=sys.stderr)
        return 0
    # The batch script's stderr is usually run.err itself, which jobdir.mark then leaves to us (see _is_stderr).
    if marked.created:
        print(line, file=sys.stderr)
    elif marked.superseded:
        print(runs.note(line, jobdir.EXIT_FAILURE, marked.superseded), file=sys.stderr)
    return 0
