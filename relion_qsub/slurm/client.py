"""One client for what Slurm's commands print: ``scontrol show job -o``, ``squeue``, ``sacct --parsable2``, sbatch.

Each command's argv and the reading of its output live here once; callers get typed results (:class:`JobView`,
:class:`QueuedJob`) or, for a report's own sacct fields, rows by field name. Every command runs through
``relion_qsub.proc`` (a ``runner`` with its signature, so tests can inject failures).

Slurm 22.05, as verified on the testbed:

- ``scontrol show job -o ID`` prints one line of ``Key=Value`` words; a value may hold spaces (Command, WorkDir,
  StdErr), so a value runs up to the next ``Key=``. The controller forgets a job MinJobAge (default 300 s) after
  its end; then scontrol answers "Invalid job id specified" and only accounting (sacct) still knows it.
- ``sacct --parsable2`` separates fields with ``|`` and puts none at the end; free text (Comment, Reason) goes
  last, so a ``|`` inside it cannot shift the other fields. State is "CANCELLED by <uid>" for a cancel.
- ``squeue --format=%i|%T|%r|%k``: id, state, pending reason, comment (``--states=all``: ended jobs the controller
  still holds too).
- sbatch without ``--parsable`` answers "Submitted batch job N" (src/sbatch/sbatch.c, main; then " on cluster X" with
  ``--clusters``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import NamedTuple

from .. import proc
from ..errors import CommandError, TransientError
from .states import CANCELLED, ENDED, GROUP_LIMITS, PER_JOB_TRES, WALL, base

Runner = Callable[..., proc.Result]
SCONTROL, SQUEUE, SACCT = "scontrol", "squeue", "sacct"
FORGOTTEN = "Invalid job id specified"  # scontrol's answer for a job the controller does not (or no longer) know


@dataclass(frozen=True, slots=True)
class JobView:
    """Slurm's view of one job, from scontrol or (for a job the controller forgot) sacct."""

    job_id: str
    state: str  # "RUNNING", "TIMEOUT", ...; "" when Slurm has no record
    reason: str = ""
    exit_code: str = ""
    nodes: str = ""
    time_limit: str = ""
    tres_per_node: str = ""
    # "scontrol", "sacct", "none" (the controller forgot the job, no accounting record) or "unreachable" (Slurm
    # could not be asked: ``error`` says why; nothing is known about the job).
    source: str = "scontrol"
    error: str = ""
    acct_state: str = ""  # sacct's State when asked: "CANCELLED by 1234" says who
    owner_uid: int | None = None
    # Whose limits apply (scontrol only): the user's name, the job's account and QOS, and what it asks for
    # (scontrol's TRES of a pending job: "cpu=32,mem=32000M,node=1,billing=32").
    user: str = ""
    account: str = ""
    qos: str = ""
    tres: str = ""
    partition: str = ""

    @property
    def known(self) -> bool:
        return bool(self.state)

    @property
    def answered(self) -> bool:
        return self.source != "unreachable"

    @property
    def ended(self) -> bool:
        """Slurm said so: a final state, or it forgot the job. False when Slurm could not be asked."""
        return self.answered and (not self.known or self.state in ENDED)

    @property
    def alive(self) -> bool:
        return self.known and self.state not in ENDED


# ---- sbatch ---------------------------------------------------------------------------------------------------

_SUBMITTED = re.compile(r"Submitted batch job (\d+)")


def submitted_job_id(stdout: str) -> str | None:
    """The job id sbatch printed, or None when it printed none."""
    match = _SUBMITTED.search(stdout)
    return match.group(1) if match else None


def submitted_answer(job_id: str) -> str:
    """What sbatch would have printed for ``job_id`` (for a job found by its token after sbatch's answer was lost)."""
    return f"Submitted batch job {job_id}\n"


# ---- scontrol show job -o -------------------------------------------------------------------------------------

_FIELD = re.compile(r"(?:^|\s)([A-Za-z][\w:/]*)=")


def scontrol_argv(job_id: str, scontrol: str = SCONTROL) -> list[str]:
    return [scontrol, "show", "job", "-o", job_id]


def parse_scontrol(text: str) -> dict[str, str]:
    """``scontrol show job -o`` as a dict; values may hold spaces (Command, WorkDir), the first of a key wins."""
    info: dict[str, str] = {}
    text = text.strip()
    matches = list(_FIELD.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        info.setdefault(match.group(1), text[match.end() : end].strip())
    return info


def view_from_scontrol(job_id: str, info: dict[str, str]) -> JobView:
    user, _, uid = info.get("UserId", "").partition("(")  # "alice(1000)"
    uid = uid.rstrip(")")
    return JobView(
        job_id,
        base(info.get("JobState", "")),
        info.get("Reason", ""),
        info.get("ExitCode", ""),
        info.get("NodeList", ""),
        info.get("TimeLimit", ""),
        info.get("TresPerNode", ""),
        owner_uid=int(uid) if uid.isdigit() else None,
        user=user,
        account=info.get("Account", ""),
        qos=info.get("QOS", ""),
        tres=info.get("TRES", ""),
        partition=info.get("Partition", ""),
    )


@dataclass(frozen=True, slots=True)
class Shown:
    """What ``scontrol show job`` said: the job (``view``), that the controller forgot it, or why it could not say."""

    view: JobView | None
    forgotten: bool = False
    problem: str = ""  # "" when scontrol answered


def show_job(job_id: str, runner: Runner = proc.run, timeout: float = 30) -> Shown:
    """The controller's record of the job. Only "Invalid job id specified" means it forgot the job; any other failure
    ("Unable to contact slurm controller", a timeout, no scontrol) means it could not be asked."""
    try:
        result = runner(scontrol_argv(job_id), timeout=timeout)
    except CommandError as exc:
        return Shown(None, problem=str(exc))
    if result.returncode == 0 and "JobState=" in result.stdout:
        return Shown(view_from_scontrol(job_id, parse_scontrol(result.stdout.splitlines()[0])))
    if FORGOTTEN in result.stdout + result.stderr:
        return Shown(None, forgotten=True)
    said = (result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}").splitlines()
    return Shown(None, problem=f"scontrol: {said[0][:160]}")


# ---- sacct --parsable2 ----------------------------------------------------------------------------------------

VIEW_FIELDS = ("State", "ExitCode", "NodeList", "Timelimit", "Reason")  # Reason last: free text


def sacct_argv(
    job_ids: Iterable[str],
    fields: Sequence[str],
    *,
    allocations: bool = False,
    noconvert: bool = False,
    sacct: str = SACCT,
) -> list[str]:
    """One sacct call for ``job_ids`` (any number: never one call per job). With ``--jobs`` the default start time
    is the Epoch, not today's midnight (sacct(1), ``-S``): a job is found whenever it ran. ``allocations``: the job
    lines alone, not its steps; ``noconvert``: sizes in bytes (MaxRSS, TRESUsageInTot mem)."""
    return [
        sacct,
        "--parsable2",
        "--noheader",
        *(["--allocations"] if allocations else []),
        *(["--noconvert"] if noconvert else []),
        f"--jobs={','.join(job_ids)}",
        f"--format={','.join(fields)}",
    ]


def parse_parsable2(text: str, fields: Sequence[str], required: int | None = None) -> list[dict[str, str]]:
    """sacct's ``--parsable2`` lines as dicts by field name. The last field is free text and keeps any ``|``; a line
    with fewer than ``required`` (default: all) fields is not one of ours and is skipped; missing ones are ""."""
    need = len(fields) if required is None else required
    rows = []
    for line in text.splitlines():
        parts = line.split("|", len(fields) - 1)
        if len(parts) >= need:
            rows.append(dict(zip(fields, parts + [""] * (len(fields) - len(parts)), strict=True)))
    return rows


def view_from_sacct(job_id: str, text: str) -> JobView | None:
    """The job line of ``VIEW_FIELDS``: "CANCELLED by 0|0:15|cn5|00:05:00|None"; None when sacct has no record."""
    for row in parse_parsable2(text, VIEW_FIELDS, required=4):
        state = row["State"].strip()
        if state:
            return JobView(
                job_id,
                base(state),
                row["Reason"],
                row["ExitCode"],
                row["NodeList"],
                row["Timelimit"],
                source="sacct",
                acct_state=state,
            )
    return None


def acct_state(job_id: str, runner: Runner = proc.run, timeout: float = 30) -> str:
    """sacct's State of the job, which alone says who cancelled it ("CANCELLED by 1234"); "" without accounting."""
    try:
        result = runner(sacct_argv([job_id], ("State",), allocations=True), timeout=timeout)
    except CommandError:
        return ""
    lines = result.stdout.strip().splitlines() if result.returncode == 0 else []
    return lines[0].strip() if lines else ""


def with_acct_state(view: JobView, runner: Runner = proc.run, timeout: float = 30) -> JobView:
    """scontrol does not say who cancelled a job; sacct's State does ("CANCELLED by 1234")."""
    state = acct_state(view.job_id, runner, timeout)
    return replace(view, acct_state=state) if state and state.startswith(view.state) else view


def job_state(job_id: str, runner: Runner = proc.run, timeout: float = 30) -> JobView:
    """Slurm's view of the job: scontrol, else (the controller forgot it, or could not be asked) sacct.

    ``state == ""`` with source "none" when the controller forgot it and sacct has no record; source "unreachable"
    when scontrol failed otherwise and sacct gave no ended record.
    """
    shown = show_job(job_id, runner, timeout)
    if shown.view is not None:
        return with_acct_state(shown.view, runner, timeout) if shown.view.state == CANCELLED else shown.view
    try:  # accounting, where there is any, knows ended jobs (and answers without the controller)
        acct = runner(sacct_argv([job_id], VIEW_FIELDS, allocations=True), timeout=timeout)
    except CommandError:
        acct = None
    view = view_from_sacct(job_id, acct.stdout) if acct is not None and acct.returncode == 0 else None
    # How a job ended is final in accounting, but a live state is only as fresh as the controller's last report:
    # while the controller is unreachable a job that ends stays RUNNING in slurmdbd. So with scontrol failing,
    # only an ended record answers; a "running" one still means Slurm could not be asked.
    if view is not None and (not shown.problem or view.state in ENDED):
        return view
    if shown.problem:
        return JobView(job_id, "", source="unreachable", error=shown.problem)
    return JobView(job_id, "", source="none")


# sacct's value formats (``--noconvert``: MaxRSS and TRESUsageInTot mem in bytes; ReqTRES/AllocTRES keep suffixes).
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)$")
_POWER = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}


def size_bytes(text: str, bare_unit: str = "") -> int | None:
    """A Slurm size (``4000M``, ``1.5G``, ``507904``) in bytes; a bare number is in ``bare_unit`` ("" = bytes).
    Binary, as Slurm's: 1G = 1024M."""
    match = _SIZE.match(text.strip())
    if match is None:
        return None
    unit = match.group(2) or bare_unit
    return int(float(match.group(1)) * 1024 ** _POWER[unit])


def seconds(text: str) -> float | None:
    """``[D-][HH:]MM:SS[.mmm]`` (TotalCPU, Elapsed) in seconds; None for ``""``, ``INVALID`` and the like."""
    text = text.strip()
    days, _, clock = text.rpartition("-")
    parts = clock.split(":")
    try:
        values = [float(p) for p in parts]
        day_count = int(days) if days else 0
    except ValueError:
        return None
    if not 1 <= len(values) <= 3:
        return None
    total = 0.0
    for value in values:
        total = total * 60 + value
    return day_count * 86400 + total


def timestamp(text: str) -> datetime | None:
    """sacct's ``2026-12-01T22:31:51`` (local time); None for ``Unknown``, ``None`` (not started, not ended)."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        return None


def tres(text: str) -> dict[str, str]:
    """``billing=4,cpu=4,mem=4000M,node=2,gres/gpu=8`` as a dict."""
    out: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


# ---- scontrol show assoc_mgr: the limits slurmctld enforces ---------------------------------------------------
#
# Why the controller's cache and not ``sacctmgr show assoc -P``: the pending reason came from slurmctld, and
# assoc_mgr shows exactly the limits it applies, each with what is in use now ("GrpTRES=cpu=16(8)": limit 16, 8
# held by running jobs), for the association, its parent accounts and the QOS alike; it answers from memory in
# about 5 ms without slurmdbd (sacctmgr asks slurmdbd, and prints a limit without its use). Format (22.05, on the
# testbed): a record starts at column 0 ("ClusterName=c Account=a UserName=u(uid) Partition= ..." or
# "QOS=normal(1)"), its indented lines hold "Key=Value" words; "N" is no limit. A QOS record's "Account Limits" and
# "User Limits" sections (per-account and per-user limits of that QOS) are not per-job ones and are not read.
ASSOC_DEPTH = 8  # parent accounts followed at most (one scontrol call each)
USAGE = r"^(\d+|N)\((\d+(?:\.\d+)?)\)$"  # "16(8)", "N(0)": compiled on first use (re's cache), not at import


class LimitSet(NamedTuple):
    """The limits of one association or QOS as slurmctld enforces them. A NamedTuple, not a dataclass: this module is
    on the submit path, where defining a frozen slotted dataclass costs about 0.45 ms of start-up."""

    where: str  # "association limited/alice", "account limited", "QOS normal"
    group: dict[str, tuple[int, float]]  # GrpTRES with a limit: TRES -> (limit, in use now)
    per_job: dict[str, int]  # MaxTRESPJ: TRES -> limit
    wall_minutes: int | None = None  # MaxWallPJ
    parent: str = ""  # ParentAccount of an account's own association
    partition: str = ""


def assoc_mgr_argv(user: str, accounts: Sequence[str], qos: str = "", scontrol: str = SCONTROL) -> list[str]:
    flags = "assoc,qos" if qos else "assoc"
    argv = [scontrol, "show", "assoc_mgr", f"flags={flags}", f"users={user}", f"accounts={','.join(accounts)}"]
    return argv + ([f"qos={qos}"] if qos else [])


def _limit_set(head: dict[str, str], body: dict[str, str]) -> LimitSet:
    group = {}
    for key, value in tres(body.get("GrpTRES", "")).items():
        match = re.match(USAGE, value)
        if match and match.group(1) != "N":
            group[key] = (int(match.group(1)), float(match.group(2)))
    per_job = {k: int(v) for k, v in tres(body.get("MaxTRESPJ", "")).items() if v.isdigit()}
    wall = body.get("MaxWallPJ", "")
    if "QOS" in head:
        where = f"QOS {head['QOS'].partition('(')[0]}"
    else:
        user = head.get("UserName", "").partition("(")[0]
        where = f"association {head.get('Account', '')}/{user}" if user else f"account {head.get('Account', '')}"
    parent = head.get("ParentAccount", body.get("ParentAccount", "")).partition("(")[0]
    return LimitSet(where, group, per_job, int(wall) if wall.isdigit() else None, parent, head.get("Partition", ""))


def parse_assoc_mgr(text: str) -> list[LimitSet]:
    """Every association and QOS record of ``scontrol show assoc_mgr`` (see above)."""
    records: list[tuple[dict[str, str], dict[str, str]]] = []
    reading = False
    for line in text.splitlines():
        if line.startswith(("ClusterName=", "QOS=")):
            records.append((parse_scontrol(line), {}))
            reading = True
        elif line.strip() in ("Account Limits", "User Limits"):
            reading = False
        elif reading and records and line.startswith(" "):
            records[-1][1].update(parse_scontrol(line))
    return [_limit_set(head, body) for head, body in records]


def _applies(found: LimitSet, view: JobView, accounts: Sequence[str]) -> bool:
    """The job's own association (its partition's, where the site has one), its accounts' and its QOS."""
    if found.where.startswith("QOS "):
        return found.where == f"QOS {view.qos}"
    if found.where.startswith("account "):
        return found.where.removeprefix("account ") in accounts
    return found.where == f"association {view.account}/{view.user}" and found.partition in ("", view.partition)


def limits_of(view: JobView, runner: Runner = proc.run, timeout: float = 30) -> list[LimitSet] | None:
    """The limits that apply to the pending job ``view`` (scontrol's user, account and QOS): its association, the
    accounts above it and its QOS; None when the controller could not be asked or the job has no account."""
    if not (view.user and view.account):
        return None
    found: list[LimitSet] = []
    accounts, seen = [view.account], set()
    for depth in range(ASSOC_DEPTH):
        try:
            result = runner(assoc_mgr_argv(view.user, accounts, view.qos if depth == 0 else ""), timeout=timeout)
        except CommandError:
            return None
        if result.returncode != 0:
            return None
        sets = [x for x in parse_assoc_mgr(result.stdout) if _applies(x, view, accounts)]
        found += sets
        seen.update(accounts)
        accounts = sorted({x.parent for x in sets if x.where.startswith("account ") and x.parent} - seen)
        if not accounts:
            break
    return found


def asked(view: JobView) -> dict[str, int]:
    """What the pending job asks for, in assoc_mgr's units (mem in MB): scontrol's TRES."""
    out = {}
    for key, value in tres(view.tres).items():
        number = size_bytes(value, "M") if key == "mem" else int(value) if value.isdigit() else None
        if number is not None:
            out[key] = number // 1024**2 if key == "mem" else number
    return out


def _keys(wanted: str, limits: Iterable[str]) -> list[str]:
    """The TRES of ``limits`` a reason counts ("gres/": every gres)."""
    return [k for k in limits if k == wanted or (wanted.endswith("/") and k.startswith(wanted))]


def over_group_limit(view: JobView, limits: Sequence[LimitSet]) -> tuple[LimitSet, str, int, int] | None:
    """(limit set, TRES, its group limit, what the job asks) when the job's request ALONE exceeds the group limit its
    pending reason names: it never starts. None when the limit is only busy (or unknown)."""
    wanted = GROUP_LIMITS.get(view.reason)
    if wanted is None:
        return None
    want = asked(view)
    kind = "QOS " if view.reason.startswith("QOS") else ""
    for found in limits:
        if found.where.startswith("QOS ") != bool(kind):
            continue
        for key in _keys(wanted, found.group):
            if key in want and want[key] > found.group[key][0]:
                return found, key, found.group[key][0], want[key]
    return None


def per_job_limit(view: JobView, limits: Sequence[LimitSet]) -> str:
    """The per-job limit the pending reason names, in words ("association limited/alice: MaxTRESPerJob cpu=16");
    "" when it is not found."""
    qos = view.reason.startswith("QOS")
    for found in (x for x in limits if x.where.startswith("QOS ") == qos):
        wanted = PER_JOB_TRES.get(view.reason, "")
        if wanted == WALL and found.wall_minutes is not None:
            return f"{found.where}: MaxWall {found.wall_minutes} minutes"
        for key in _keys(wanted, found.per_job) if wanted and wanted != WALL else []:
            return f"{found.where}: MaxTRESPerJob {key}={found.per_job[key]}"
    return ""


# ---- squeue ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueuedJob:
    job_id: str
    state: str
    reason: str  # the pending reason ("None" when running)


# id, state, reason, comment: the comment last, being free text.
_QUEUE_FORMAT = "%i|%T|%r|%k"


# The command a person runs to see the comments (and so the tokens) of their jobs.
COMMENTS_BY_HAND = "squeue --me --format=%i,%k"


def squeue_argv(squeue: str = SQUEUE) -> list[str]:
    """Every job of this user the controller still holds (``--states=all``: ended ones too, until MinJobAge)."""
    return [squeue, "--noheader", "--states=all", f"--user={os.getuid()}", f"--format={_QUEUE_FORMAT}"]


def carries(comment: str, token: str) -> bool:
    """Whether a job's comment is ``token`` or ends in ``[token]`` (submit.comment_with_token): an exact match, never
    a substring, so one token is never taken for another that starts with it."""
    return comment.rsplit("[", 1)[-1].strip("] ") == token


def jobs_with_token(
    token: str, runner: Runner = proc.run, squeue: str = SQUEUE, timeout: float = 30
) -> list[QueuedJob]:
    """Every job whose comment carries ``token``, oldest (lowest id) first.

    Raises TransientError when squeue answers with an error (the controller busy or unreachable: ask again later),
    CommandError when it cannot be run at all.
    """
    argv = squeue_argv(squeue)
    result = runner(argv, timeout=timeout)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        why = lines[-1].strip() if lines else "(no message)"
        raise TransientError(
            f"squeue failed: {why}", argv=tuple(argv), returncode=result.returncode, stderr=result.stderr
        )
    rows = [row.split("|", 3) for row in result.stdout.splitlines()]
    found = [QueuedJob(r[0].strip(), r[1], r[2]) for r in rows if len(r) == 4 and carries(r[3], token)]
    return sorted(found, key=lambda job: (len(job.job_id), job.job_id))
