"""The end of the batch script: tell RELION when its program ended without reporting.

A RELION program reports its own end with ``RELION_JOB_EXIT_*`` (src/pipeline_control.cpp,
``pipeline_control_relion_exit``); one that crashes (a segfault, an MPI abort, a rank killed) writes nothing. When
the template runs anything after RELION's command (16 of 40 published site templates: ``echo done``, a cleanup),
the batch script then exits 0, Slurm records COMPLETED, the end-watcher (afternotok) is cancelled unrun, and RELION
shows the job Running for ever. So the normalised script of a RELION job sets an EXIT trap (submit.py's preamble)
that runs ``main`` with the script's exit status: with no exit file in the job dir and the run still current, it
writes RELION_JOB_EXIT_FAILURE and one run.err line saying so.

bash also runs the EXIT trap when a signal (scancel, the time limit) ends the script, with a stale ``$?``; dash does
not. Either way the line below is true, and the end-watcher or relion-launch says more when it can.
Runs on a compute node, from the job: imports only the job-dir contract.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from . import jobdir, runs

_RUN = "import sys; sys.path.insert(0, sys.argv.pop(1)); import relion_qsub.jobend as e; sys.exit(e.main(sys.argv[1:]))"
FUNCTION = "relion_qsub_ended"  # the shell function the trap calls (one name, no clash with a template's own)


def command(job_dir: Path) -> list[str]:
    """This interpreter and this package, as the submission ran them (a compute node sees the same install)."""
    root = str(Path(__file__).resolve().parent.parent)
    return [sys.executable, "-s", "-c", _RUN, root, os.path.abspath(job_dir)]


def preamble(job_dir: Path, stamp: runs.Stamp | None) -> list[str]:
    """The POSIX-shell lines that go before the script's first command: export the run's stamp (relion-launch reads
    it) and trap EXIT. The trap keeps the script's exit status: neither bash nor dash change it after an EXIT trap."""
    import shlex

    lines = [f"export {runs.ENV}={shlex.quote(stamp.encode())}"] if stamp is not None else []
    return [
        *lines,
        f'{FUNCTION}() {{ {shlex.join(command(job_dir))} "$1"; }}',
        f"trap '{FUNCTION} \"$?\"' EXIT",
    ]


def reason(job_id: str, status: str) -> str:
    """The run.err line: the program ended and nobody reported how."""
    code = f" with exit code {status}" if status not in ("", "0") else ""
    sacct = f"sacct -j {job_id}" if job_id else "sacct"
    return (
        f"relion-qsub: the batch script of Slurm job {job_id or '?'} ended{code} and no RELION_JOB_EXIT_* was "
        "written: the RELION program ended without reporting (it crashed or was killed, or the job was cancelled or "
        f"hit its time limit; `{sacct}` says which); its own error, if any, is above in run.err and run.out"
    )


def main(argv: list[str]) -> int:
    """``JOBDIR STATUS``: mark the job failed unless an exit file exists or the run is no longer current. Exits
    with 0 (the trap's status is not the script's); a problem goes to stderr, which is run.err."""
    if len(argv) != 2:
        print("usage: jobend JOBDIR STATUS", file=sys.stderr)
        return 64
    job_dir, status = Path(argv[0]), argv[1]
    try:
        names = set(os.listdir(job_dir))  # a READDIR, not a cached lookup: NFS shows the program's exit file
    except OSError as exc:
        print(f"relion-qsub: cannot read {job_dir}: {exc.strerror}", file=sys.stderr)
        return 0
    if names & set(jobdir.EXIT_FILES):
        return 0
    job_id = os.environ.get("SLURM_JOB_ID", "")
    stamp = runs.Stamp.decode(os.environ.get(runs.ENV))
    line = reason(job_id, status)
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
