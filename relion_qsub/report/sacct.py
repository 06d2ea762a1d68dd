"""The one ``sacct`` call of a report: its fields, and its ``--parsable2`` output read into records. Pure.

The argv, the line format and the value formats are Slurm's and live in ``relion_qsub.slurm.client``; the fields
asked for and the records made of them are the report's.

sacct(1) of Slurm 22.05, as verified on the testbed (slurmdbd + jobacct_gather/cgroup):

- ``--jobs=1,2,3`` lists exactly those jobs, whenever they ran: with ``-j`` the default start time is the Epoch, not
  today's midnight (sacct(1), ``-S``), and a job the controller forgot after MinJobAge is still answered.
- One line per job (``12``) and one per step (``12.batch``, ``12.extern``, ``12.0``); ``--parsable2`` separates
  fields with ``|`` and puts none at the end. ``Comment`` goes last: it is the only free text we ask for, so a ``|``
  typed into a comment cannot shift the other fields.
- ``--noconvert`` prints MaxRSS and the ``mem=`` of TRESUsageInTot in bytes (``507904``); ReqTRES/AllocTRES keep
  Slurm's suffixes (``mem=4000M``, binary: 1G = 1024M). TotalCPU is ``MM:SS.mmm``, ``HH:MM:SS`` or ``D-HH:MM:SS``;
  ElapsedRaw is seconds, TimelimitRaw minutes (``UNLIMITED``/``Partition_Limit`` when none was set).
- MaxRSS is sampled (JobAcctGatherFrequency): a step shorter than the period shows 0, which means "not measured".
- The job line of a job ended by the srun step's OOM says ``FAILED 1:0``; only its step says ``OUT_OF_MEMORY``.

``sacct --json`` (openapi/dbv0.0.38 in 22.05) answers the same questions but prints about 6 KB per job or step where
``--parsable2`` prints about 190 bytes (measured on the testbed): the table is what a 1,000-job report reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..slurm.client import SACCT, parse_parsable2, sacct_argv, seconds, size_bytes, timestamp, tres
from ..slurm.states import base

FIELDS = (
    "JobID",
    "State",
    "ExitCode",
    "Submit",
    "Start",
    "End",
    "ElapsedRaw",
    "TimelimitRaw",
    "NNodes",
    "NCPUS",
    "NTasks",
    "TotalCPU",
    "MaxRSS",
    "TRESUsageInTot",
    "ReqTRES",
    "AllocTRES",
    "NodeList",
    "Partition",
    "Comment",  # last: free text (see the module's doc)
)
_JOB_ID = re.compile(r"^\d+(?:_\d+)?$")


def argv(job_ids: Iterable[str], sacct: str = SACCT) -> list[str]:
    """One sacct call for every job of a report (never one per job), its steps included, sizes in bytes."""
    return sacct_argv(job_ids, FIELDS, noconvert=True, sacct=sacct)


def _int(text: str) -> int:
    return int(text) if text.strip().isdigit() else 0


@dataclass(frozen=True)
class Line:
    """One line of sacct's output: the job itself (``step == ""``) or one of its steps."""

    job_id: str
    step: str  # "", "batch", "extern", "0", "1", ...
    state: str  # the first word: "CANCELLED by 0" -> "CANCELLED"
    exit_code: str
    submit: datetime | None
    start: datetime | None
    end: datetime | None
    elapsed: int  # seconds
    limit: int | None  # seconds; None: no limit
    nodes: int
    cpus: int
    tasks: int
    total_cpu: float | None  # seconds
    max_rss: int | None  # bytes; 0 = not sampled
    usage: dict[str, str]
    req: dict[str, str]
    alloc: dict[str, str]
    nodelist: str
    partition: str
    comment: str
    state_text: str = ""  # the whole State field ("CANCELLED by 0")


@dataclass
class Job:
    """A job's own line and its steps."""

    line: Line
    steps: list[Line] = field(default_factory=list)


def parse_line(text: str) -> Line | None:
    rows = parse_parsable2(text, FIELDS)
    if not rows:
        return None
    row = rows[0]
    job, state, exit_code, submit, start, end, elapsed, limit, nodes, cpus, tasks = (row[f] for f in FIELDS[:11])
    total_cpu, max_rss, usage, req, alloc, nodelist, partition, comment = (row[f] for f in FIELDS[11:])
    job_id, _, step = job.partition(".")
    if not _JOB_ID.match(job_id):
        return None  # heterogeneous-job components (12+0) and other shapes a report does not read
    limit_s = int(limit) * 60 if limit.strip().isdigit() else None
    return Line(
        job_id,
        step,
        base(state),
        exit_code,
        timestamp(submit),
        timestamp(start),
        timestamp(end),
        _int(elapsed),
        limit_s,
        _int(nodes),
        _int(cpus),
        _int(tasks),
        seconds(total_cpu),
        size_bytes(max_rss) if max_rss.strip() else None,
        tres(usage),
        tres(req),
        tres(alloc),
        nodelist,
        partition,
        comment,
        state,
    )


def parse(text: str) -> dict[str, Job]:
    """sacct's output by job id. Steps before their job line (never seen, but cheap to allow) are kept too."""
    jobs: dict[str, Job] = {}
    orphans: dict[str, list[Line]] = {}
    for raw in text.splitlines():
        line = parse_line(raw)
        if line is None:
            continue
        if line.step:
            if line.job_id in jobs:
                jobs[line.job_id].steps.append(line)
            else:
                orphans.setdefault(line.job_id, []).append(line)
        else:
            jobs[line.job_id] = Job(line, orphans.pop(line.job_id, []))
    return jobs


def not_recorded(job_ids: Sequence[str], jobs: dict[str, Job]) -> list[str]:
    """The ids sacct did not answer for (accounting started later, purged, or another cluster's)."""
    return [job_id for job_id in job_ids if job_id not in jobs]
