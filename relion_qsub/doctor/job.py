"""One job dir: RELION's view (RELION_JOB_EXIT_* files) against Slurm's, and how the job ended.

RELION learns a job's fate only from ``RELION_JOB_EXIT_SUCCESS|FAILURE|ABORTED`` in the job dir; when Slurm kills a
job (time limit, memory, node failure, scancel) nothing writes one, and the GUI shows "Running" forever. The job id
comes from ``relion-qsub.jsonl`` (one line per submission). Slurm is asked with ``scontrol show job`` (it forgets a
job MinJobAge, default 300 s, after the end), then ``sacct`` (absent without accounting, as on the testbed). Only
scontrol's "Invalid job id specified" means the controller forgot the job; any other failure ("Unable to contact
slurm controller", a timeout, no scontrol) means Slurm could not be asked, and nothing is repaired on that.

``run.err`` patterns are the seed's "Known problems" and Slurm's own kill messages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import proc
from ..errors import CommandError, RelionQsubError
from ..relion import jobdir, record, runs
from ..slurm import client
from ..slurm.client import JobView
from ..slurm.states import (
    AGAIN,
    CANCELLED,
    ENDED,
    ENDINGS,
    FAILED,
    GROUP_LIMITS,
    HELD,
    NEVER_STARTS,
    NODE_FAIL,
    OOM_FIX,
    OUT_OF_MEMORY,
    PENDING,
    PER_JOB_TRES,
    PREEMPTED,
    RUNNING,
    TIMEOUT,
    TIMEOUT_FIX,
    cancelled_by,
)
from .finding import Finding

EXIT_FILES = {jobdir.EXIT_SUCCESS: "success", jobdir.EXIT_FAILURE: "failure", jobdir.EXIT_ABORTED: "aborted"}
TAIL_BYTES = 4 << 20  # run.err can be large; the endings are at its end
KEEP_FREE_GB = 10  # relion_refine's --keep_free_scratch default


# ---- pure parsing and judging ---------------------------------------------------------------------------------


def relion_state(names: set[str]) -> str:
    """ "running" when no RELION_JOB_EXIT_* file exists (RELION's own rule), else success/failure/aborted."""
    for name, state in EXIT_FILES.items():
        if name in names:
            return state
    return "running"


@dataclass(frozen=True)
class Pattern:
    kind: str
    needle: re.Pattern[str]
    what: str
    fix: str


# Order matters: the first pattern matching a line claims it (CudaCustomAllocator before the generic GPU message).
PATTERNS = (
    Pattern("timeout", re.compile(r"DUE TO TIME LIMIT"), "Slurm killed the job at its time limit", TIMEOUT_FIX),
    Pattern(
        "oom",
        # slurmstepd: "Detected 1 oom-kill event(s)... killed by the cgroup out-of-memory handler"; the kernel:
        # "Out of memory: Killed process". Not "out of memory" with spaces: that is RELION's GPU message.
        re.compile(r"oom[-_]kill|out-of-memory handler|Out of memory: Kill"),
        "the job ran out of host memory (killed by the out-of-memory handler)",
        OOM_FIX,
    ),
    Pattern("node-fail", re.compile(r"DUE TO NODE FAIL"), "a node of the job failed; Slurm ended the job", AGAIN),
    Pattern("preempted", re.compile(r"DUE TO PREEMPTION"), "the job was preempted", AGAIN),
    Pattern(
        # slurmstepd's own line for the whole job: scancel, or Slurm ending it from outside. Not "by you or an
        # admin": a node failure and a SIGKILLed batch step end jobs with the same words.
        "cancelled",
        re.compile(r"\*\*\* JOB \S+ ON \S+ CANCELLED AT"),
        "Slurm ended the job (scancel, or a kill from outside the job; `sacct -j JOBID` says which)",
        AGAIN,
    ),
    Pattern(
        # One step ended: srun -K1 after a rank failed, or the job being ended. Not a cancel by a person.
        "step-ended",
        re.compile(r"\*\*\* STEP \S+ ON \S+ CANCELLED AT"),
        "Slurm ended a job step (srun -K1 after a rank failed, or the job itself was being ended)",
        "the lines before it name the first failure",
    ),
    Pattern(
        "gpu-threads",
        re.compile(r"CudaCustomAllocator out of memory"),
        "too many threads or MPI ranks per GPU (seed: Overburdening the GPUs)",
        "use fewer threads per GPU, and no more MPI ranks than GPUs",
    ),
    Pattern(
        "gpu-memory",
        re.compile(r"out of memory", re.IGNORECASE),
        "not enough GPU memory (seed: Not enough GPU memory)",
        "fewer classes, a smaller pool or box size, a GPU with more memory, or run on CPUs",
    ),
    Pattern(
        "bad-image",
        re.compile(r"FFTW plans cannot be created"),
        "an empty or corrupted input micrograph (seed: Corrupted micrographs)",
        "run `relion-qsub doctor` on the project to find it, then leave it out with a Select job",
    ),
    Pattern(
        "bad-alloc",
        re.compile(r"std::bad_alloc"),
        "a corrupt or blank image, or not enough memory (seed: Corrupt or blank image)",
        "run `relion-qsub doctor` on the project to find damaged micrographs; if none, ask for more memory",
    ),
    Pattern(
        "scratch-full",
        re.compile(r"No space left on device|Got completion with error 12"),
        "local scratch (or the disk written to) is full (seed: Not enough local scratch space)",
        "ask for more lscratch (--gres=lscratch:N) or do not copy particles to scratch",
    ),
    Pattern(
        "gpus-busy",
        re.compile(r"All GPUs are in use"),
        "MotionCor2: more than one MPI rank or thread per GPU",
        "one MPI rank per GPU and one thread per GPU for MotionCor2",
    ),
    Pattern(
        "rank-died",
        re.compile(r"srun: error: \S+: tasks? [\d,-]+: (Exited with exit code|Aborted|Segmentation fault|Killed)"),
        "an MPI rank died; RELION's leader rank may wait for it forever (seed: Zombification)",
        "if the job makes no progress, scancel it and continue from its last iteration",
    ),
    Pattern(
        "not-submitted",
        re.compile(r"^relion-qsub: job not submitted: "),
        "relion-qsub did not submit the job",
        "fix the script error named on this line and run the job again",
    ),
)


def scan_err(text: str) -> list[tuple[int, Pattern, str]]:
    """(line number, pattern, the line) for the first line matching each kind of ending."""
    seen: set[str] = set()
    hits = []
    for number, line in enumerate(text.splitlines(), start=1):
        for pattern in PATTERNS:
            if pattern.needle.search(line):
                if pattern.kind not in seen:
                    seen.add(pattern.kind)
                    hits.append((number, pattern, line.strip()))
                break
    return hits


# state -> (level, what, fix); the what is completed with the exit code / reason. A cancel is a warning: the user
# may have meant it.
SLURM_ENDINGS: dict[str, tuple[str, str, str]] = {
    state: ("warning" if state == CANCELLED else "error", what, fix) for state, (what, fix) in ENDINGS.items()
}
STATE_KIND = {TIMEOUT: "timeout", OUT_OF_MEMORY: "oom", NODE_FAIL: "node-fail", PREEMPTED: "preempted"}
# run.err lines that only say "Slurm ended it": once Slurm itself says how, they add nothing.
ENDED_KINDS = frozenset({"cancelled", "step-ended", "node-fail", "preempted"})


Verdict = tuple[str, str, str]  # (level, what, fix)


def _no_job_id(relion: str) -> list[Verdict]:
    if relion == "running":
        return [
            (
                "warning",
                "no RELION_JOB_EXIT_* file (RELION shows it running) and no Slurm job id in relion-qsub.jsonl",
                "if it is not running any more, create RELION_JOB_EXIT_FAILURE in the job dir",
            )
        ]
    return [("ok", f"RELION: {relion}; no Slurm job id recorded", "")]


def _details(slurm: JobView) -> str:
    """ "exit code 1:0, reason NonZeroExitCode": what Slurm adds to a state, when it adds anything."""
    return ", ".join(
        x
        for x in (
            f"exit code {slurm.exit_code}" if slurm.exit_code and slurm.exit_code != "0:0" else "",
            f"reason {slurm.reason}" if slurm.reason and slurm.reason != "None" else "",
        )
        if x
    )


ABORT_PENDING = "was aborted in RELION while Slurm job {} is still pending"


def _views(relion: str, slurm: JobView, slurm_text: str, abort: bool = False, limit_fix: str | None = "") -> Verdict:
    """RELION's view against Slurm's: the one verdict on whether the two agree. ``abort``: RELION_JOB_ABORT_NOW;
    ``limit_fix``: the job's own request exceeds the association or QOS limit it pends on (limit_fix()); None: the
    limits could not be read."""
    if relion == "running" and abort and slurm.state == PENDING:
        # The GUI's Abort only creates the file; a pending job never checks it and would run when it starts.
        return (
            "error",
            f"the job {ABORT_PENDING.format(slurm.job_id)}: it would still start",
            f"--fix marks it aborted ({jobdir.EXIT_ABORTED}) and cancels it (scancel {slurm.job_id})",
        )
    if relion == "running" and slurm.ended:
        return (
            "error",
            f"RELION thinks running, Slurm says ended: {slurm_text}",
            "mark it failed so RELION moves on (--fix creates RELION_JOB_EXIT_FAILURE)",
        )
    if relion == "running" and slurm.state == PENDING and (slurm.reason in NEVER_STARTS or limit_fix):
        return (
            "error",
            f"Slurm job {slurm.job_id} can never start: PENDING ({slurm.reason})",
            f"{limit_fix or NEVER_STARTS[slurm.reason]}, and run it again; --fix marks it failed and cancels it",
        )
    if relion == "running" and slurm.state == PENDING and slurm.reason in GROUP_LIMITS and limit_fix is None:
        return (
            "warning",
            f"waiting: {slurm_text}: a group limit whose values could not be read from slurmctld",
            "if the job alone asks more than the limit it never starts: compare with `sacctmgr show assoc "
            "user=$USER` and ask for less",
        )
    if relion == "running" and slurm.state == PENDING and slurm.reason in GROUP_LIMITS:
        # A group limit that other jobs hold: it starts when they end. Said as waiting, not as an error.
        return ("ok", f"waiting: {slurm_text}: other jobs under the same limit use it; it starts when they end", "")
    if relion == "running":
        return ("ok", f"running: {slurm_text}" + (f" on {slurm.nodes}" if slurm.nodes else ""), "")
    if slurm.state == PENDING and slurm.reason in HELD:
        return (
            "error",
            f"RELION says {relion}; Slurm job {slurm.job_id} is held and never runs",
            f"--fix cancels it (scancel {slurm.job_id}); run the job again from RELION",
        )
    if not slurm.ended:
        return (
            "warning",
            f"RELION says {relion} but {slurm_text} is still alive",
            f"if it makes no progress (seed: Zombification), scancel {slurm.job_id}",
        )
    return ("ok", f"RELION: {relion}; {slurm_text}", "")


def judge(
    where: str,
    relion: str,
    slurm: JobView | None,
    time_box: str = "--time",
    abort: bool = False,
    limit_fix: str | None = "",
) -> list[Verdict]:
    """(level, what, fix) for RELION's view against Slurm's, then how Slurm says the job ended; ``time_box``: the
    GUI box --time comes from, named in the fix of a time-limit ending. An abort (RELION's exit file says aborted) is
    the user's: Slurm's FAILED/CANCELLED for it is no error; ``abort``: RELION_JOB_ABORT_NOW is there; ``limit_fix``:
    see _views."""
    if slurm is None:
        return _no_job_id(relion)
    if not slurm.answered:
        return [
            (
                "warning",
                f"RELION: {relion}; Slurm could not be asked about job {slurm.job_id}: {slurm.error}",
                f"run the doctor again when Slurm answers (scontrol show job {slurm.job_id}); nothing was changed",
            )
        ]
    detail = _details(slurm)
    slurm_text = f"Slurm job {slurm.job_id} {slurm.state or 'no record'}" + (f" ({detail})" if detail else "")
    if not slurm.known:
        slurm_text = f"Slurm no longer knows job {slurm.job_id} (it forgets ended jobs; sacct unavailable)"
    out = [_views(relion, slurm, slurm_text, abort, limit_fix)]
    ending = SLURM_ENDINGS.get(slurm.state)
    if ending is not None and relion == "aborted" and slurm.state in (FAILED, CANCELLED):
        out.append(("ok", f"aborted from RELION: Slurm job {slurm.job_id} {slurm.state}", ""))
    elif ending is not None:
        level, what, fix = ending
        limit = f" of {slurm.time_limit}" if slurm.state == TIMEOUT and slurm.time_limit else ""
        what = cancelled_by(slurm.acct_state, slurm.owner_uid) or what
        if slurm.state == TIMEOUT:
            from ..timelimit import advice

            fix = advice(slurm.time_limit, time_box)
        out.append((level, f"Slurm: job {slurm.job_id} {what}{limit}" + (f" ({detail})" if detail else ""), fix))
    return out


# ---- I/O ------------------------------------------------------------------------------------------------------

# What a limit counts, in a user's words (assoc_mgr's TRES names; mem in MB).
TRES_WORDS = {"cpu": "CPUs (MPI procs x threads)", "node": "nodes", "mem": "MB of memory", "billing": "billing units"}


def limit_fix(slurm: JobView, runner: Runner) -> str | None:
    """The fix when the pending job's own request exceeds the association or QOS limit its reason names (it never
    starts by itself), naming the limit; "" when it is no such limit or only a busy group limit (it waits); None for
    a group limit whose values slurmctld did not give. Asks the controller for the limits only for such a reason
    (client.limits_of: one scontrol call per account level)."""
    if slurm.state != PENDING or (slurm.reason not in GROUP_LIMITS and slurm.reason not in PER_JOB_TRES):
        return ""
    limits = client.limits_of(slurm, runner)
    if slurm.reason in PER_JOB_TRES:  # never-starting by its reason alone; the limit's value is named when known
        said = client.per_job_limit(slurm, limits or [])
        return f"{NEVER_STARTS[slurm.reason]}{f' ({said})' if said else ''}, or ask your admins to raise the limit"
    if limits is None:
        return None
    over = client.over_group_limit(slurm, limits)
    if over is None:
        return ""
    found, key, limit, want = over
    words = TRES_WORDS.get(key, "GPUs" if key.startswith("gres/gpu") else key)
    return (
        f"the job alone asks {key}={want}, more than {found.where} allows all its running jobs together (GrpTRES "
        f"{key}={limit}): ask for at most {limit} {words}, or ask your admins to raise the limit"
    )


Runner = Callable[..., proc.Result]


def _time_box(job_dir: Path) -> str:
    """The Walltime box by its label: the template job.star names (else RELION_QSUB_TEMPLATE) with RELION_QSUB_EXTRAn's
    labels, else the site profile's [[fields]] entry for --time, else the option itself."""
    from .. import profile
    from ..errors import RelionQsubError
    from ..timelimit import time_box

    found = time_box(os.environ, job_dir)
    if found:
        return found
    try:
        field = profile.load(None).profile.field_for("time")
    except (RelionQsubError, OSError):
        field = None
    return f"the '{field.label}' box" if field is not None else "--time"


def ghost_findings(where: str, token: str, runner: Runner) -> list[Finding]:
    """A submission relion-qsub gave up on (RELION was told it failed): a job the controller still created from a
    lost request carries its token. It went in held (a begin time a year away), so it does not run; --fix cancels it."""
    try:
        found = client.jobs_with_token(token, runner)
    except CommandError as exc:
        return [Finding("warning", where, f"could not look for a job with token {token}: {exc}", "", "job")]
    findings = []
    for job in found:
        job_id, state = job.job_id, job.state
        if state in ENDED:
            continue
        held = state == PENDING and job.reason in HELD
        what = f"{'held ' if held else ''}job {job_id} carries the token of a submission relion-qsub gave up on"
        what += " (RELION was told it failed); " + ("it never runs" if held else f"it is {state}")
        fix = f"--fix cancels it (scancel {job_id})"
        findings.append(Finding("error", where, what, fix, "job", repair=_canceller(job_id, runner)))
    return findings


def _never_starts(job_dir: Path, slurm: JobView, fix: str, runner: Runner, watcher: str = "") -> Callable[[], str]:
    """FAILURE first, with the reason (the end-watcher then finds it and says nothing), then scancel."""

    def repair() -> str:
        done = mark_ended(job_dir, f"Slurm job {slurm.job_id} can never start (PENDING {slurm.reason}): {fix}")
        return f"{done}; {_canceller(slurm.job_id, runner)()}{_cancel_watcher(watcher, runner)}"

    return repair


def _abort_pending(job_dir: Path, job_id: str, runner: Runner, watcher: str) -> Callable[[], str]:
    """RELION_JOB_EXIT_ABORTED first (what the program writes on Abort), then cancel the job and its watcher."""

    def repair() -> str:
        done = mark_ended(job_dir, f"aborted from RELION while Slurm job {job_id} was pending; cancelled it", True)
        return f"{done}; {_canceller(job_id, runner)()}{_cancel_watcher(watcher, runner)}"

    return repair


def _cancel_watcher(watcher: str, runner: Runner) -> str:
    """ "; cancelled its end-watcher N" (pending only, by name: watch.cancel_argv), or "" when there is none."""
    if not watcher:
        return ""
    from .. import watch

    try:
        result = runner(watch.cancel_argv("scancel", watcher), timeout=30)
    except CommandError as exc:
        return f"; its end-watcher {watcher} was not cancelled ({exc})"
    return f"; cancelled its end-watcher {watcher}" if result.returncode == 0 else ""


def _canceller(job_id: str, runner: Runner) -> Callable[[], str]:
    def repair() -> str:
        try:
            result = runner(["scancel", job_id], timeout=30)
        except CommandError as exc:
            raise OSError(0, f"scancel {job_id}: {exc}") from exc
        if result.returncode != 0:
            raise OSError(0, f"scancel {job_id}: {result.stderr.strip()[:160]}")
        return f"cancelled job {job_id}"

    return repair


def running_jobs(project: Path) -> list[Path]:
    """The job dirs default_pipeline.star shows as Running (status 0 in RELION 3.1, "Running" in 4 and later)."""
    from ..formats import star

    try:
        text = (project / "default_pipeline.star").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    block = star.parse(text).block("pipeline_processes")
    if block is None:
        return []
    names = block.column("rlnPipeLineProcessName")
    status = block.column("rlnPipeLineProcessStatus") or block.column("rlnPipeLineProcessStatusLabel")
    running = [name for name, st in zip(names, status, strict=False) if st in ("0", "Running")]
    return [project / name for name in running if (project / name).is_dir()]


def _tail(path: Path) -> tuple[str, int]:
    """The last TAIL_BYTES of a file and how many lines come before them (so line numbers stay true)."""
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        start = max(0, size - TAIL_BYTES)
        skipped = 0
        fh.seek(0)
        while fh.tell() < start:
            chunk = fh.read(min(1 << 20, start - fh.tell()))
            if not chunk:
                break
            skipped += chunk.count(b"\n")
        data = fh.read()
    if start:  # the cut falls inside a line: drop its end, count it as skipped
        cut = data.find(b"\n")
        data, skipped = data[cut + 1 :], skipped + 1
    return data.decode("utf-8", errors="replace"), skipped


def mark_ended(job_dir: Path, reason: str, aborted: bool = False) -> str:
    """RELION_JOB_EXIT_FAILURE (``aborted``: _ABORTED) plus a line in run.err saying why (jobdir.mark, with doctor's
    wording). Doctor judges the record's latest submission only after checking it is RELION's current run."""
    name, how = (jobdir.EXIT_ABORTED, "aborted") if aborted else (jobdir.EXIT_FAILURE, "failed")
    marked = jobdir.mark(job_dir, name, f"relion-qsub doctor: marked {how}: {reason}")
    if not marked.created:
        return f"left alone: {marked.existing} is already there"
    note = f" (no line in run.err: {marked.err_note})" if marked.err_note else " (and a line in run.err)"
    return f"created {name}{note}"


def parse_df(text: str) -> tuple[int, int] | None:
    """(used, available) KiB from ``df -Pk PATH`` (POSIX format: one header line, then one line per filesystem)."""
    lines = [line.split() for line in text.strip().splitlines()[1:]]
    for words in lines:
        if len(words) >= 6 and words[2].isdigit() and words[3].isdigit():
            return int(words[2]), int(words[3])
    return None


def parse_du(text: str) -> int | None:
    """KiB from ``du -sk PATH``."""
    words = text.split()
    return int(words[0]) if words and words[0].isdigit() else None


def lscratch_gb(tres_per_node: str, gres: str = "lscratch") -> int | None:
    """The scratch gres the job holds per node, from scontrol's TresPerNode ("gres:gpu:p100:4,gres:lscratch:10")."""
    match = re.search(rf"(?:^|,)(?:gres[:/])?{re.escape(gres)}[:=](\d+)", tres_per_node)
    return int(match.group(1)) if match else None


def judge_scratch(
    path: str, job_kib: int | None, free_kib: int, allocated_gb: int | None, place: str
) -> tuple[str, str, str]:
    """Scratch of a running job: RELION stops copying to it below --keep_free_scratch (10 GB) and reads the rest
    from the project disk, and a write beyond the disk is the seed's "Not enough local scratch space"."""
    gb = 1 << 20  # KiB per GiB
    used = f"{job_kib / gb:.1f} GB used by the job, " if job_kib is not None else ""
    what = f"scratch {path} {place}: {used}{free_kib / gb:.1f} GB free"
    if allocated_gb is not None:
        what += f" (lscratch:{allocated_gb} requested)"
    if free_kib / gb < KEEP_FREE_GB:
        return (
            "warning",
            what,
            f"under RELION's --keep_free_scratch ({KEEP_FREE_GB} GB): the rest is read from the project disk; "
            "ask for more lscratch next time",
        )
    if allocated_gb and job_kib is not None and job_kib / gb > 0.9 * allocated_gb:
        return ("warning", what, "the job has used 90% of its lscratch; ask for more next time")
    return ("ok", what, "")


def scratch_finding(where: str, slurm: JobView, runner: Runner = proc.run) -> Finding:
    """Best effort: the job's scratch dir (site profile's job_dir), here if visible, else on its first node."""
    from .. import profile

    try:
        scratch = profile.load(None).scratch
    except RelionQsubError as exc:
        return Finding("warning", where, f"scratch not checked: {exc}", check="job")
    path = scratch.job_dir.replace("${SLURM_JOB_ID}", slurm.job_id).replace("$SLURM_JOB_ID", slurm.job_id)
    allocated = lscratch_gb(slurm.tres_per_node, scratch.gres)
    if os.path.isdir(path):
        import psutil  # lazily: only this check needs it

        free = psutil.disk_usage(path).free // 1024
        level, what, fix = judge_scratch(path, None, free, allocated, "on this host")
        return Finding(level, where, what, fix, "job")
    # Scratch is node-local: ask on the node, inside the job's allocation (--overlap: beside the running step).
    on_node = ["srun", f"--jobid={slurm.job_id}", "--overlap", "-N1", "-n1", "--quiet"]
    df: proc.Result | None
    du: proc.Result | None
    try:
        df = runner([*on_node, "df", "-Pk", path], timeout=20)
        du = runner([*on_node, "du", "-sk", path], timeout=20) if df.returncode == 0 else None
    except CommandError:
        df = du = None
    parsed = parse_df(df.stdout) if df is not None and df.returncode == 0 else None
    if parsed is None:
        return Finding(
            "ok",
            where,
            f"scratch {path} not visible from this host and not measured on the node",
            f"look on the node: srun --jobid={slurm.job_id} --overlap df -h {path}",
            "job",
        )
    job_kib = parse_du(du.stdout) if du is not None and du.returncode == 0 else None
    node = f"on {slurm.nodes.split(',')[0]}" if slurm.nodes else "on the node"
    level, what, fix = judge_scratch(path, job_kib, parsed[1], allocated, node)
    return Finding(level, where, what, fix, "job")


def _unreadable(where: str, name: str, exc: OSError) -> Finding:
    """One line naming what could not be read (the job dir when ``name`` is empty) and why."""
    what = name or "the job directory"
    return Finding(
        "warning",
        f"{where}{name}",
        f"not checked: cannot read {what}: {exc.strerror or exc}",
        f"make {what} readable{' (a regular file)' if name else ''} and run the doctor again",
        "job",
    )


def _read_log(path: Path) -> str:
    jobdir.require_regular(path)
    return path.read_text(encoding="utf-8", errors="replace")


def _current_submission(job_dir: Path, where: str, names: set[str]) -> tuple[record.Record | None, Finding | None]:
    """The record's latest line: the job dir's current submission (relion/runs.py), also when it was refused (an
    earlier job is then a run RELION has replaced); (None, why) when the record cannot be read."""
    if jobdir.RECORD not in names:
        return None, None
    try:
        records = record.read(_read_log(job_dir / jobdir.RECORD))
    except OSError as exc:
        # The job id is unknown: say so instead of "no Slurm job id recorded" (whose fix is to mark it failed).
        return None, _unreadable(where, jobdir.RECORD, exc)
    return (records[-1] if records else None), None


def _not_relions_run(where: str, last: record.Record, job_dir: Path) -> Finding | None:
    """A warning when RELION rewrote the script after the last submission relion-qsub recorded: RELION's current
    run did not go through relion-qsub, so that job's ending is not this run's (nothing is marked)."""
    why = runs.superseded(job_dir, None, runs.Stamp.decode(last.run))
    if why is None:
        return None
    what = f"the last submission relion-qsub recorded (Slurm job {last.job_id}) is not RELION's current run: {why}"
    fix = "if RELION shows it running and nothing runs, create RELION_JOB_EXIT_FAILURE in the job dir"
    return Finding("warning", where, what, fix, "job")


def _views_found(
    job_dir: Path, where: str, relion: str, slurm: JobView | None, last: record.Record | None, runner: Runner
) -> list[Finding]:
    """judge()'s verdicts as findings, each with the repair --fix may make; every repair that marks the job dir also
    cancels the end-watcher of that submission (it would only wait in the queue to find the exit file)."""
    watcher = (last.watcher if last is not None else None) or ""
    abort = jobdir.aborted(job_dir)
    found = []
    time_box = _time_box(job_dir) if slurm and slurm.state == TIMEOUT else ""
    limits = limit_fix(slurm, runner) if slurm is not None and relion == "running" else ""
    for level, what, fix in judge(where, relion, slurm, time_box, abort, limits):
        repair = None
        if slurm is None:
            pass
        elif what.startswith("RELION thinks running") and slurm.ended:
            why = f"Slurm job {slurm.job_id} ended ({slurm.state or 'no record'}) without one"
            repair = _marker(job_dir, why, abort, watcher, runner)
        elif what.endswith("is held and never runs"):
            repair = _canceller(slurm.job_id, runner)
        elif " can never start: " in what:
            repair = _never_starts(job_dir, slurm, fix, runner, watcher)
        elif ABORT_PENDING.format(slurm.job_id) in what:
            repair = _abort_pending(job_dir, slurm.job_id, runner, watcher)
        found.append(Finding(level, where, what, fix, "job", repair=repair))
    return found


def check(project: Path, job_dir: Path, runner: Runner = proc.run) -> list[Finding]:
    try:
        where = str(job_dir.relative_to(project)) + "/"
    except ValueError:
        where = str(job_dir) + "/"
    try:
        names = set(os.listdir(job_dir))
    except OSError as exc:
        return [_unreadable(where, "", exc)]
    relion = relion_state(names)
    last, unreadable = _current_submission(job_dir, where, names)
    findings: list[Finding] = [unreadable] if unreadable else []
    job_id = last.job_id if last is not None else None
    stale = _not_relions_run(where, last, job_dir) if last is not None and job_id and relion == "running" else None
    slurm = client.job_state(job_id, runner) if job_id else None
    if stale is not None:
        findings.append(stale)
    elif unreadable is None:
        findings += _views_found(job_dir, where, relion, slurm, last, runner)
    if last is not None and last.submitted is False and last.token:
        findings += ghost_findings(where, last.token, runner)
    kinds = {STATE_KIND.get(slurm.state, "")} if slurm else set()
    if slurm is not None and slurm.known and slurm.ended:
        kinds |= ENDED_KINDS
    if jobdir.RUN_ERR in names:
        try:
            jobdir.require_regular(job_dir / jobdir.RUN_ERR)
            text, offset = _tail(job_dir / jobdir.RUN_ERR)
        except OSError as exc:
            findings.append(_unreadable(where, jobdir.RUN_ERR, exc))
            text, offset = "", 0
        for number, pattern, line in scan_err(text):
            if pattern.kind in kinds:
                continue  # Slurm already said so
            if pattern.kind == "rank-died" and (slurm is None or not slurm.alive):
                continue  # only a zombie while the job still runs
            # A job RELION saw succeed recovered from whatever the line says: a warning, not an error.
            level = "warning" if pattern.kind == "rank-died" or relion == "success" else "error"
            findings.append(
                Finding(level, f"{where}run.err:{number + offset}", f"{pattern.what}: {line[:160]}", pattern.fix, "job")
            )
    if slurm is not None and slurm.state == RUNNING:
        findings.append(scratch_finding(where, slurm, runner))
    return findings


def _marker(job_dir: Path, reason: str, aborted: bool, watcher: str, runner: Runner) -> Callable[[], str]:
    """Mark the job ended (aborted when RELION's Abort was asked for), then cancel its end-watcher."""
    return lambda: mark_ended(job_dir, reason, aborted) + _cancel_watcher(watcher, runner)
