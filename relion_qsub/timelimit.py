"""Why relion-launch got SIGTERM, when it was the job's time limit: the run.err line names the next walltime and
the box it goes into (issue 22; before, only `relion-qsub report` said it, and the GUI shows run.err).

While Slurm ends a job at its time limit, `scontrol show job` reads ``JobState=COMPLETING Reason=TimeLimit`` (seen
on the testbed, Slurm 22.05), then TIMEOUT. relion-launch asks from its SIGTERM handler (it may be SIGKILLed first:
Slurm kills the batch shell's whole cgroup), the end-watcher after the job ended. The box is the one RELION's
template fills ``--time`` from: the template the job dir's job.star names (relion.gui.of_job_dir), else
RELION_QSUB_TEMPLATE; the boxes' labels are RELION_QSUB_EXTRAn (sbatch exports the submitting environment to both).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from . import proc
from .relion import gui
from .slurm import client, states

TIME_LIMIT_REASON = "TimeLimit"  # scontrol's Reason of a job being ended at its time limit


def clock(total: float) -> str:
    """Seconds as Slurm's --time takes them: H:MM:SS, D-HH:MM:SS from one day on."""
    days, rest = divmod(round(total), 86400)
    hours, rest = divmod(rest, 3600)
    text = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days}-{hours:02d}:{rest // 60:02d}:{rest % 60:02d}" if days else text


def advice(time_limit: str, box: str) -> str:
    """``ask 0:20:00 in the 'Walltime' box and continue from the last iteration ...``: twice the limit."""
    limit = client.seconds(time_limit)
    ask = f"ask {clock(2 * limit)} in {box}" if limit else f"ask for more time in {box}"
    return f"{ask} and continue from the last iteration (Continue keeps the job's other settings)"


def time_box(environ: Mapping[str, str], jobdir: Path | None = None) -> str | None:
    """The box RELION's template fills --time from ("the 'Walltime' box (RELION_QSUB_EXTRA1)"), if known."""
    return gui.of_job_dir(jobdir, environ).for_option("time") or None


def sentence(time_limit: str, environ: Mapping[str, str], jobdir: Path | None = None) -> str:
    """``Slurm ended the job at its time limit (0:10:00): ask 0:20:00 in the 'Walltime' box ...``."""
    limit = client.seconds(time_limit)
    shown = clock(limit) if limit else time_limit
    box = time_box(environ, jobdir) or "--time"
    return f"Slurm ended the job at its time limit ({shown}): {advice(time_limit, box)}"


def reason(
    job_id: str, environ: Mapping[str, str], runner: client.Runner = proc.run, jobdir: Path | None = None
) -> str | None:
    """The sentence when Slurm says the job hit its time limit, else None (also when Slurm cannot be asked)."""
    if not job_id:
        return None
    view = client.show_job(job_id, runner, timeout=5).view
    if view is None or (states.base(view.state) != states.TIMEOUT and view.reason != TIME_LIMIT_REASON):
        return None
    return sentence(view.time_limit, environ, jobdir)
