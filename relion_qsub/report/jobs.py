"""The RELION jobs of a report, read from their job dirs: the I/O edge of the report.

Per job dir (``<Type>/jobNNN/``, as RELION names them): every submission in ``relion-qsub.jsonl`` (time, job id,
token, or why it was not submitted), RELION's status (the RELION_JOB_EXIT_* files), what the normalised script asked
for (``run_submit.slurm``: the scratch gres, constraint, threads, tasks per node, --exclusive), the largest scratch
use the generated templates' monitor logged (``scratch_usage.log``: ``time host used_kib free_kib dir`` per line), and
for a job that did not succeed the endings ``relion-qsub doctor`` recognises in the tail of ``run.err``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..checks.data import Data, job_data
from ..doctor.job import relion_state, scan_err
from ..errors import InputError
from ..prepare import output_path
from ..relion import jobdir as contract
from ..relion import record
from ..relion.record import Record
from ..script import parse as parse_script
from ..sitetools.templates import MONITOR_LOG

ERR_TAIL = 64 << 10  # the endings are in the last lines of run.err
ERR_HEAD = 256 << 10  # RELION's copy to scratch happens first: its warning is near the start of run.err
# Experiment::copyParticlesToScratch (src/exp_model.cpp, 3.1-5.0), on std::cerr (run.err) when a node's scratch is full.
SCRATCH_FULL = re.compile(
    r"Warning: scratch space full on (\S+)\. Remaining (\d+) particles will be read from where they were\."
)


@dataclass(frozen=True)
class Requested:
    """What the normalised script asked sbatch for (the part sacct does not record)."""

    gres: str = ""
    constraint: str = ""
    threads: int = 1
    tasks_per_node: int | None = None
    exclusive: bool = False
    mem_per_cpu: str = ""
    gpu_flag: bool | None = None  # a RELION command of the script has --gpu; None: no RELION command in it


@dataclass
class JobDir:
    path: Path
    name: str  # "Class2D/job001"
    type: str  # "Class2D"
    relion: str  # running / success / failure / aborted
    submissions: list[Record] = field(default_factory=list)
    requested: Requested = field(default_factory=Requested)
    scratch_used_kib: int | None = None  # largest sample of scratch_usage.log; None: no log
    err_reasons: list[tuple[str, str]] = field(default_factory=list)  # (doctor's kind, the line)
    data: Data | None = None  # relion_refine's particles, where scratch, pre-read or a GPU box depends on them
    scratch_full: tuple[str, int] | None = None  # RELION's "scratch space full on HOST": (host, particles not copied)

    @property
    def last(self) -> Record | None:
        return self.submissions[-1] if self.submissions else None


def read_log(text: str, since: datetime | None = None) -> list[Record]:
    """Each submission of relion-qsub.jsonl (damaged lines skipped), from ``since`` on when given."""
    out = []
    for entry in record.read(text):
        when = entry.when
        if since is not None and when is not None and local_time(when) < since:
            continue
        out.append(entry)
    return out


def local_time(when: datetime) -> datetime:
    """Local wall-clock time, as sacct prints it and as --since is typed."""
    return when.astimezone().replace(tzinfo=None) if when.tzinfo else when


def read_requested(text: str) -> Requested:
    script = parse_script(text)
    given: dict[str, list[str]] = {}  # one pass over the directives; sbatch uses the last value of an option
    for _, _, option in script.options():
        if option.name:
            given.setdefault(option.name, []).append(option.value or "")
    threads = (given.get("cpus-per-task") or [""])[-1]
    per_node = (given.get("ntasks-per-node") or [""])[-1]
    return Requested(
        gres=",".join(v for v in given.get("gres", []) if v),
        constraint=(given.get("constraint") or [""])[-1],
        threads=int(threads) if threads.isdigit() and int(threads) > 0 else 1,
        tasks_per_node=int(per_node) if per_node.isdigit() and int(per_node) > 0 else None,
        exclusive="exclusive" in given,
        mem_per_cpu=(given.get("mem-per-cpu") or [""])[-1],
        gpu_flag=gpu_flag(script.body()),
    )


def gpu_flag(body: Sequence[str]) -> bool | None:
    """Whether RELION's command uses GPUs: its ``--gpu`` word (RELION's "Use GPU acceleration? Yes")."""
    commands = [line.split() for line in body if "relion_" in line]
    if not commands:
        return None
    return any("--gpu" in words for words in commands)


def scratch_peak_kib(text: str) -> int | None:
    """The largest ``used_kib`` of lscratch_mon.sh's log (one line per sample; ``#`` lines are headers)."""
    peak = None
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and not words[0].startswith("#") and words[2].isdigit():
            peak = max(peak or 0, int(words[2]))
    return peak


def _read(path: Path, tail: int | None = None, head: int = -1) -> str | None:
    try:
        with open(path, "rb") as fh:
            if tail is not None:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(0, size - tail))
            return fh.read(head).decode("utf-8", errors="replace")
    except OSError:
        return None


def read_jobdir(path: Path, project: Path, since: datetime | None = None) -> JobDir | None:
    """One job dir, or None when relion-qsub never submitted from it (no log, or nothing since ``since``)."""
    log = _read(path / contract.RECORD)
    if log is None:
        return None
    submissions = read_log(log, since)
    if not submissions:
        return None
    try:
        names = set(os.listdir(path))
        name = str(path.relative_to(project))
    except ValueError:
        name = f"{path.parent.name}/{path.name}"
    except OSError:
        names = set()
        name = f"{path.parent.name}/{path.name}"
    job = JobDir(path, name, path.parent.name, relion_state(names), submissions)
    script = _read(output_path(path / contract.SUBMIT_SCRIPT))
    if script is not None:
        job.requested = read_requested(script)
        job.data = job_data(parse_script(script, str(output_path(path / contract.SUBMIT_SCRIPT))))
    monitor = _read(path / MONITOR_LOG) if MONITOR_LOG in names else None
    job.scratch_used_kib = scratch_peak_kib(monitor) if monitor is not None else None
    if job.relion != "success" and contract.RUN_ERR in names:
        err = _read(path / contract.RUN_ERR, ERR_TAIL) or ""
        job.err_reasons = [(pattern.kind, line) for _, pattern, line in scan_err(err)]
    if job.data is not None and job.data.refine.scratch_dir and contract.RUN_ERR in names:
        job.scratch_full = scratch_full(_read(path / contract.RUN_ERR, head=ERR_HEAD) or "")
    return job


def scratch_full(err: str) -> tuple[str, int] | None:
    """(host, particles read from where they were) of RELION's first 'scratch space full' warning, if any."""
    match = SCRATCH_FULL.search(err)
    return (match.group(1), int(match.group(2))) if match else None


def is_jobdir(path: Path) -> bool:
    return contract.is_job_dir_name(path.name) or (path / contract.RECORD).is_file()


def project_jobdirs(project: Path) -> list[Path]:
    """``<project>/<Type>/jobNNN/`` holding relion-qsub.jsonl, in name order (RELION's own layout, two levels)."""
    found = []
    try:
        types = [e for e in os.scandir(project) if e.is_dir() and not e.name.startswith(".")]
    except OSError as exc:
        raise InputError(f"{project}: cannot read the project directory ({exc.strerror})") from exc
    for entry in types:
        try:
            found += [Path(j.path) for j in os.scandir(entry.path) if contract.is_job_dir_name(j.name) and j.is_dir()]
        except OSError:
            continue
    return sorted(p for p in found if (p / contract.RECORD).is_file())


def resolve(paths: Sequence[str], cwd: Path) -> tuple[Path, list[Path]]:
    """(project dir, job dirs) from the command line: one PROJECT_DIR, or JOBDIRs (the project is their grandparent)."""
    if not paths:
        paths = [str(cwd)]
    dirs = [Path(p) if Path(p).is_absolute() else cwd / p for p in paths]
    for d in dirs:
        if not d.is_dir():
            raise InputError(f"{d}: no such directory; give a RELION project directory or <Type>/jobNNN job dirs")
    if len(dirs) == 1 and not is_jobdir(dirs[0]):
        project = dirs[0].resolve()
        return project, project_jobdirs(project)
    jobs = [d.resolve() for d in dirs]
    bad = [str(d) for d in jobs if not is_jobdir(d)]
    if bad:
        raise InputError(f"{bad[0]}: not a RELION job dir (<Type>/jobNNN); give one project dir or job dirs only")
    return jobs[0].parent.parent, jobs


def read_all(paths: Iterable[Path], project: Path, since: datetime | None) -> list[JobDir]:
    return [job for job in (read_jobdir(p, project, since) for p in paths) if job is not None]
