"""relion-launch: the RELION_STD_LAUNCHER inside a Slurm job.

Used in a RELION queue template as ``${RELION_STD_LAUNCHER} [srun options] XXXcommandXXX``. It lays out the
MPI ranks (``layout.py``: heterogeneous, homogeneous, homogeneous+1), binds one GPU per worker rank, runs the
step with ``srun -K1`` so one dead rank ends the step instead of leaving zombies, and keeps RELION's pipeline
truthful: when the step fails or the job is killed and RELION wrote no ``RELION_JOB_EXIT_*`` file, it writes
``<jobdir>RELION_JOB_EXIT_FAILURE`` and a one-line reason in ``<jobdir>run.err``. Outside an allocation it
runs on the local node (``$RELION_MPIRUN -n N`` for MPI programs).

srun is started with subprocess.Popen on a list argv (it must stream its output and be waited on, so it does
not fit proc.run's capture-everything contract); its stderr is read line by line, passed through, and scanned
for srun's own "task N: Exited with exit code X" messages to name the rank that failed first.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from .. import jobdir as jobdir_mod
from ..errors import CommandError, InputError, LayoutError, RelionQsubError, UsageError
from .layout import (
    GPU_BIND_SCRIPT,
    HOSTFILE_PLACEHOLDER,
    MAX_RANKS,
    MODE_CHOICES,
    LayoutOptions,
    Mode,
    Plan,
    compress_counts,
    hostfile_text,
    plan_layout,
    plan_local,
    step_environment,
)

PROG = "relion-launch"
FALSE_WORDS = frozenset({"0", "no", "false", "off"})

HELP = """\
usage: relion-launch [options] [srun options] [--] <RELION command and its arguments...>

The RELION_STD_LAUNCHER inside a Slurm batch job: lays out the MPI ranks, binds GPUs, runs the command
with `srun -K1` (one failed rank ends the step), and writes RELION_JOB_EXIT_FAILURE in the job directory
given by --pipeline_control when the step fails, the job is killed, or relion-launch itself cannot start
it (never over a RELION_JOB_EXIT_* file RELION wrote). Outside an allocation (no SLURM_JOB_ID)
it runs on this node: `$RELION_MPIRUN -n N` (default mpirun) for *_mpi programs with N > 1, else the
program itself.

Options (before the command; the first word that is not an option starts the command):
  -h, --help         show this help
  -v, --verbose      tracebacks on errors
  --dry-run          print the plan (srun argv, hostfile lines, rank -> node, GPU) and run nothing
  --env-file FILE    with --dry-run: plan for the environment saved in FILE instead of this one; save it
                     inside the job with `env -0 > job.env` (exact), or KEY=VALUE lines such as
                     `env | grep -E '^(SLURM_|CUDA_VISIBLE_DEVICES=|RELION_)' > job.env`
  --mode MODE        auto (default), heterogeneous, homogeneous or homogeneous+1 (env RELION_LAUNCH_MODE)
  --no-gpu-bind      let RELION map GPUs itself (`--gpu ""`) instead of one GPU per worker rank
                     (env RELION_LAUNCH_GPU_BIND=0)
  -n, --ntasks N     number of ranks (local runs: also RELION_LAUNCH_NP); in a job relion-launch sets it
  any srun option    passed on to srun, e.g. --mem-per-cpu=4g or --mpi=pmix; an empty value
                     (--mem-per-cpu=) or an unfilled RELION placeholder (XXXextra2XXX) is dropped
                     with a warning. Not -K/--kill-on-bad-exit: relion-launch always runs srun -K1,
                     so -K0 is refused and -K/-K1 are dropped as repeats

Modes (auto): homogeneous+1 for GPU jobs with an odd number >= 3 of tasks per node (the leader rank
alone-extra on the first node, tasks-per-node - 1 worker ranks on every node, one GPU each); homogeneous
when the job has --ntasks-per-node; else heterogeneous (plain srun, Slurm places the ranks).

Examples:
  # Biowulf's template line (RELION_STD_LAUNCHER=relion-launch):
  ${RELION_STD_LAUNCHER} --mem-per-cpu=XXXextra2XXX XXXcommandXXX
  # what would run in this job, without running it:
  relion-launch --dry-run `which relion_refine_mpi` --o Class2D/job001/run --i particles.star --gpu ""
  # plan for a saved job environment (`env -0 > job.env` inside the job):
  relion-launch --dry-run --env-file job.env relion_refine_mpi --j 2
  # interactive, on the local node (4 ranks with mpirun):
  relion-launch -n 4 `which relion_refine_mpi` --o Class2D/run --i particles.star --j 2

Exit status: the exit code of the rank that failed first (srun itself says 143 after -K kills the step),
128+signal when the job was killed, or a sysexits code for relion-launch's own errors (64 usage, 65 layout,
66 unreadable --env-file, 69 srun missing, 70 internal error).
"""


# --------------------------------------------------------------------------------------------------- options

NONE, REQUIRED, OPTIONAL = 0, 1, 2

# srun(1) of Slurm 22.05: long options and whether they take an argument. An optional argument is only ever
# attached (--exclusive=user), as getopt_long does.
SRUN_LONG: dict[str, int] = {
    **dict.fromkeys(
        "accel-bind account acctg-freq bb bbf bcast-exclude begin chdir cluster-constraint clusters "
        "comment constraint container core-spec cores-per-socket cpu-bind cpu-freq cpus-per-gpu "
        "cpus-per-task deadline delay-boot dependency distribution epilog error exclude export "
        "extra-node-info gid gpu-bind gpu-freq gpus gpus-per-node gpus-per-socket gpus-per-task gres "
        "gres-flags het-group hint input job-name jobid "
        "licenses mail-type mail-user mcs-label mem mem-bind mem-per-cpu mem-per-gpu mincpus mpi msg-timeout "
        "network nodefile nodelist nodes ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket "
        "open-mode output partition power prefer priority profile prolog qos relative reservation signal "
        "slurmd-debug sockets-per-node switches task-epilog task-prolog thread-spec threads threads-per-core "
        "time time-min tmp uid wait wckey".split(),
        REQUIRED,
    ),
    **dict.fromkeys(
        "bcast compress exclusive immediate kill-on-bad-exit nice no-kill propagate resv-ports send-libs x11".split(),
        OPTIONAL,
    ),
    **dict.fromkeys(
        "contiguous disable-status exact hold label multi-prog no-allocate overcommit overlap oversubscribe "
        "preserve-env pty quiet quit-on-interrupt reboot spread-job test-only unbuffered usage "
        "use-min-nodes version".split(),
        NONE,
    ),
}
SRUN_SHORT: dict[str, int] = {
    **dict.fromkeys("AbDMCSdmexBGiJLFwNopqrTtWc", REQUIRED),
    **dict.fromkeys("IKk", OPTIONAL),
    **dict.fromkeys("XHlZOsEQuV", NONE),
}
_PLACEHOLDER = re.compile(r"XXX\w+XXX")


@dataclass
class Invocation:
    dry_run: bool = False
    env_file: str | None = None
    gpu_bind: bool = True
    mode: str | None = None
    verbose: bool = False
    help: bool = False
    ntasks: int | None = None
    srun_options: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _positive(value: str, what: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"{what} needs a whole number, got {value!r}") from None
    if n < 1:
        raise UsageError(f"{what} must be at least 1, got {n}")
    if n > MAX_RANKS:
        raise UsageError(f"{what} {n} is more than relion-launch's limit of {MAX_RANKS:,} ranks")
    return n


def parse_args(argv: Sequence[str]) -> Invocation:
    """Options up to the first non-option word (or ``--``); the rest is the command, untouched."""
    inv = Invocation()
    i = 0
    args = list(argv)

    def value_of(word: str, name: str) -> str:
        nonlocal i
        if "=" in word:
            return word.split("=", 1)[1]
        if i + 1 >= len(args):
            raise UsageError(f"{name} needs a value")
        i += 1
        return args[i]

    while i < len(args):
        word = args[i]
        if word == "--":
            inv.command = args[i + 1 :]
            break
        if not word.startswith("-") or word == "-":
            inv.command = args[i:]
            break
        name = word.split("=", 1)[0]
        if name in ("-h", "--help"):
            inv.help = True
        elif name in ("-v", "--verbose"):
            inv.verbose = True
        elif name == "--dry-run":
            inv.dry_run = True
        elif name == "--no-gpu-bind":
            inv.gpu_bind = False
        elif name == "--env-file":
            inv.env_file = value_of(word, "--env-file")
        elif name == "--mode":
            inv.mode = value_of(word, "--mode")
        elif name == "--ntasks" or word.startswith("-n"):
            if name == "--ntasks":
                raw = value_of(word, "--ntasks")
            elif len(word) > 2:
                raw = word[2:].lstrip("=")
            else:
                raw = value_of(word, "-n")
            inv.ntasks = _positive(raw, "-n/--ntasks")
        elif word.startswith("--"):
            _srun_long(word, args, i, inv)
            if "=" not in word and SRUN_LONG.get(word[2:]) == REQUIRED:
                i += 1
        else:
            i = _srun_short(args, i, inv)
        i += 1
    return inv


def _not_srun(word: str) -> UsageError:
    return UsageError(
        f"{word!r} is not an srun option and no command came before it; did `which relion_..._mpi` print "
        "nothing? Load the RELION module, or put relion-launch's options before the command"
    )


def _srun_long(word: str, args: Sequence[str], i: int, inv: Invocation) -> None:
    name, eq, value = word[2:].partition("=")
    kind = SRUN_LONG.get(name)
    if kind is None:
        raise _not_srun(word)
    if kind == NONE:
        if eq:
            raise UsageError(f"srun option --{name} takes no value ({word!r})")
        inv.srun_options.append(word)
        return
    if name == "kill-on-bad-exit":
        _kill_on_bad_exit(word, value if eq else None, inv)
        return
    if kind == OPTIONAL or eq:
        if eq and _empty_or_placeholder(f"--{name}", value, inv):
            return
        inv.srun_options.append(word)
        return
    if i + 1 >= len(args):
        raise UsageError(f"srun option --{name} needs a value")
    value = args[i + 1]
    if not _empty_or_placeholder(f"--{name}", value, inv):
        inv.srun_options.append(f"--{name}={value}")


def _kill_on_bad_exit(word: str, value: str | None, inv: Invocation) -> None:
    """relion-launch always runs `srun -K1`; a user -K after it would win, so only the same setting is accepted.

    Refused rather than dropped: -K0 (or any value that is not a number) asks for the opposite of what
    relion-launch is for (with RELION's MPI ranks, one dead rank leaves the others waiting until the time
    limit), and quietly running something else than what the template says hides the template's mistake.
    -K/-K1 (srun: any non-zero number) only repeat relion-launch's own -K1, so they are dropped with a note.
    """
    try:
        kills = value is None or value == "" or int(value) != 0
    except ValueError:
        kills = False
    if not kills:
        raise UsageError(
            f"srun option {word!r}: relion-launch always runs srun -K1 (one failed rank ends the step, so RELION's "
            "other ranks do not wait until the time limit); remove it from the launcher line"
        )
    inv.warnings.append(f"dropping {word}: relion-launch already runs srun -K1")


def _empty_or_placeholder(name: str, value: str, inv: Invocation) -> bool:
    if value.strip() == "":
        inv.warnings.append(
            f"dropping {name}= (empty value: the RELION GUI field for it was left blank); srun uses the "
            "job's own setting"
        )
        return True
    if _PLACEHOLDER.search(value):
        inv.warnings.append(
            f"dropping {name}={value} (RELION left its placeholder unfilled: is RELION_QSUB_EXTRAn set?)"
        )
        return True
    return False


def _srun_short(args: Sequence[str], i: int, inv: Invocation) -> int:
    """One word of short options (-lu, -K1, -p gpu, -pgpu); returns the index of the last word consumed."""
    word = args[i]
    for pos in range(1, len(word)):
        letter = word[pos]
        kind = SRUN_SHORT.get(letter)
        if kind is None:
            raise _not_srun(word)
        rest = word[pos + 1 :]
        if kind == NONE:
            continue
        if kind == OPTIONAL:
            if letter == "K":  # -K, -K1, -K0, also grouped (-lK0): the flags before it pass on
                if pos > 1:
                    inv.srun_options.append(word[:pos])
                _kill_on_bad_exit(word, rest.lstrip("=") if rest else None, inv)
            else:
                inv.srun_options.append(word)
            return i
        if rest:
            value = rest.lstrip("=")
            if not _empty_or_placeholder(f"-{letter}", value, inv):
                inv.srun_options.append(word)
            return i
        if i + 1 >= len(args):
            raise UsageError(f"srun option -{letter} needs a value")
        if not _empty_or_placeholder(f"-{letter}", args[i + 1], inv):
            inv.srun_options.extend([word, args[i + 1]])
        return i + 1
    inv.srun_options.append(word)
    return i


# -------------------------------------------------------------------------------------------- RELION command


@dataclass(frozen=True)
class RelionArgs:
    program: str
    pipeline_control: str | None
    scratch_dir: str | None
    input_star: str | None
    threads: int | None
    gpu: str | None  # None: no --gpu; "": automatic mapping; else explicit ids
    keep_free_scratch_gb: float


def relion_args(command: Sequence[str]) -> RelionArgs:
    """The few RELION options relion-launch acts on (the command itself is passed on untouched)."""

    def after(opt: str) -> str | None:
        for pos, word in enumerate(command):
            if word == opt:
                if pos + 1 < len(command) and not command[pos + 1].startswith("--"):
                    return command[pos + 1]
                return ""
        return None

    threads_raw = after("--j")
    try:
        threads = int(threads_raw) if threads_raw else None
    except ValueError:
        threads = None
    keep_raw = after("--keep_free_scratch")
    try:
        keep = float(keep_raw) if keep_raw else 10.0  # RELION's default, in GB
    except ValueError:
        keep = 10.0
    return RelionArgs(
        program=os.path.basename(command[0]) if command else "",
        pipeline_control=after("--pipeline_control") or None,
        scratch_dir=after("--scratch_dir") or None,
        input_star=after("--i") or None,
        threads=threads,
        gpu=after("--gpu"),
        keep_free_scratch_gb=keep,
    )


# ----------------------------------------------------------------------------------------------- environment


_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FUNCTION = re.compile(r"(?:export\s+)?BASH_FUNC_[^=]*=\(\)")
_JOB_ID_LINE = re.compile(r"\s*(?:export\s+)?SLURM_JOB_ID=\S")
SAVE_ENV_HINT = (
    "save the job's environment inside the batch script with `env -0 > job.env`, or only what relion-launch "
    "reads with `env | grep -E '^(SLURM_|CUDA_VISIBLE_DEVICES=|RELION_)' > job.env`"
)


def load_env_file(path: str) -> dict[str, str]:
    """The environment saved in FILE: NUL-separated (``env -0``, exact) or KEY=VALUE lines.

    Lines: ``export``, matching quotes and # comments are allowed, so the output of ``env`` and hand-made files
    work. Exported shell functions (``BASH_FUNC_module%%=() {`` and its body) are skipped wherever ``sort`` put
    their lines: a body line is indented or a lone ``}``, never ``KEY=VALUE`` at the start of a line. Any other
    line that is not ``KEY=VALUE`` is an error naming the line.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read --env-file {path}: {exc.strerror}") from exc
    text = data.decode(errors="replace")
    env = _env_records(path, text) if "\0" in text else _env_lines(path, text)
    if not env.get("SLURM_JOB_ID", "").strip():
        for lineno, line in enumerate(text.split("\0" if "\0" in text else "\n"), 1):
            if _JOB_ID_LINE.match(line):
                raise InputError(
                    f"{path}:{lineno}: SLURM_JOB_ID is set on an indented line, which reads as part of an exported "
                    f"shell function, so the plan would be for outside a Slurm job; {SAVE_ENV_HINT}"
                )
    return env


def _env_records(path: str, text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for number, record in enumerate(text.split("\0"), 1):
        if not record:
            continue
        key, eq, value = record.partition("=")
        if key.startswith("BASH_FUNC_"):
            continue
        if not eq or not _KEY.fullmatch(key):
            raise InputError(f"{path}: NUL-separated record {number} is not KEY=VALUE: {record[:60]!r}")
        env[key] = value
    return env


def _env_lines(path: str, text: str) -> dict[str, str]:
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    functions = any(_FUNCTION.match(line) for line in lines)
    env: dict[str, str] = {}
    for lineno, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if functions and (line[0].isspace() or stripped == "}"):
            continue  # a body line of an exported shell function (`env` prints them over several lines)
        if stripped.startswith("export "):
            stripped = stripped[7:].lstrip()
        key, eq, value = stripped.partition("=")
        if key.startswith("BASH_FUNC_"):
            continue
        if not eq or not _KEY.fullmatch(key):
            raise InputError(
                f"{path}:{lineno}: expected KEY=VALUE, got {line[:60]!r} (the rest of a multi-line value?); "
                + SAVE_ENV_HINT
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key] = value
    return env


def env_file_warnings(path: str, env: Mapping[str, str]) -> list[str]:
    """Say so when the file cannot describe a Slurm job: the plan would silently be the local one."""
    if env.get("SLURM_JOB_ID", "").strip():
        return []
    if not any(key.startswith("SLURM_") for key in env):
        return [f"--env-file {path} sets no SLURM_* variable: this is the plan outside a Slurm job; {SAVE_ENV_HINT}"]
    return [
        f"--env-file {path} has SLURM_* variables but no SLURM_JOB_ID: this is the plan outside a Slurm job "
        f"(relion-launch takes SLURM_JOB_ID as the sign of a job); {SAVE_ENV_HINT}"
    ]


def _gpu_bind_choice(inv: Invocation, env: Mapping[str, str], rargs: RelionArgs) -> tuple[bool, str]:
    if not inv.gpu_bind:
        return False, "--no-gpu-bind"
    setting = env.get("RELION_LAUNCH_GPU_BIND", "").strip().lower()
    if setting in FALSE_WORDS:
        return False, f"RELION_LAUNCH_GPU_BIND={setting}"
    if rargs.gpu and any(c.isdigit() for c in rargs.gpu):
        # Explicit RELION GPU ids index the devices a rank sees; with one GPU per rank only id 0 would exist.
        return False, f"the command names GPU ids: --gpu {rargs.gpu}"
    return True, ""


# -------------------------------------------------------------------------------------------------- planning


def make_plan(inv: Invocation, env: Mapping[str, str], rargs: RelionArgs, hostfile: str) -> Plan:
    bind, off_reason = _gpu_bind_choice(inv, env, rargs)
    mode = inv.mode or env.get("RELION_LAUNCH_MODE", "").strip() or "auto"
    if mode not in MODE_CHOICES:
        raise UsageError(f"--mode {mode!r}: choose one of {', '.join(MODE_CHOICES)}")
    if env.get("SLURM_JOB_ID", "").strip():
        options = LayoutOptions(
            mode=mode,
            gpu_bind=bind,
            ntasks=inv.ntasks,
            srun_options=tuple(inv.srun_options),
            command=tuple(inv.command),
            hostfile_path=hostfile,
            gpu_bind_off_reason=off_reason,
        )
        plan = plan_layout(env, options)
        if plan.mode is Mode.HOMOGENEOUS_PLUS_ONE and plan.gpu_bound and rargs.program != "relion_refine_mpi":
            plan = _with_warning(
                plan,
                f"homogeneous+1 suits relion_refine_mpi, whose rank 0 does no GPU work; rank 0 of "
                f"{rargs.program} gets no GPU here (use --mode homogeneous if it needs one)",
            )
        return plan
    if inv.srun_options:
        inv.warnings.append(f"ignoring srun options outside a Slurm job (no SLURM_JOB_ID): {inv.srun_options}")
    np_raw = env.get("RELION_LAUNCH_NP", "").strip()
    ranks = inv.ntasks or (_positive(np_raw, "RELION_LAUNCH_NP") if np_raw else 1)
    mpirun = tuple(shlex.split(env.get("RELION_MPIRUN", "").strip() or "mpirun"))
    return plan_local(env, LayoutOptions(command=tuple(inv.command), mpirun=mpirun), ranks)


def _with_warning(plan: Plan, warning: str) -> Plan:
    from dataclasses import replace

    return replace(plan, warnings=(*plan.warnings, warning))


def _describe_argv(argv: Sequence[str]) -> str:
    """shlex-quoted argv with the GPU-bind wrapper (/bin/sh -c SCRIPT argv0 leader) shown as one token."""
    words = list(argv)
    if GPU_BIND_SCRIPT not in words:
        return shlex.join(words)
    pos = words.index(GPU_BIND_SCRIPT)
    token = f"<gpu-bind wrapper: /bin/sh -c ..., leader={words[pos + 2] or 'none'}>"
    return f"{shlex.join(words[: pos - 2])} {token} {shlex.join(words[pos + 3 :])}"


def _rank_node(plan: Plan, rank: int) -> str | None:
    if plan.mode is Mode.LOCAL:
        return "(this node)"
    if plan.hostfile_lines:
        return plan.hostfile_lines[rank]
    if plan.mode is Mode.HOMOGENEOUS:
        return plan.nodes[rank // plan.ranks_per_node[0]]
    return None


def _rank_row(plan: Plan, rank: int) -> str:
    g = plan.rank_gpus[rank]
    gpu = "all (RELION maps)" if g is None else ("none (leader)" if g == "" else g)
    if not plan.gpus and g is None:
        gpu = "-"
    return f"  rank {rank:<6} {_rank_node(plan, rank) or '(Slurm decides)':<16} GPU {gpu}"


def format_plan(plan: Plan, rargs: RelionArgs, limit: int = 64) -> str:
    """The plan as text; long rank and hostfile lists are clipped, and only the rows shown are formatted."""
    out = [
        f"mode:      {plan.mode}",
        f"reason:    {plan.reason}",
        f"ranks:     {plan.ranks}",
        f"argv:      {_describe_argv(plan.argv)}",
    ]
    if plan.env_set:
        out.append("env set:   " + " ".join(f"{k}={v}" for k, v in plan.env_set.items()))
    if plan.env_unset:
        out.append("env unset: " + " ".join(plan.env_unset))
    if plan.nodes:
        out.append(f"nodes:     {len(plan.nodes)} ({compress_counts(plan.tasks_allocated)} tasks of room)")
    if plan.gpus:
        source = f" (from {plan.gpu_source}, as each rank's GPU binder reads it)" if plan.gpu_source else ""
        out.append(f"node GPUs: {','.join(plan.gpus)}{source}")
    out.append(f"summary:   {summary_line(plan, rargs, None)}")
    for w in plan.warnings:
        out.append(f"warning:   {w}")
    if plan.hostfile_lines:
        lines = plan.hostfile_lines
        out.append(f"hostfile ({len(lines)} lines):")
        out.extend(_clipped(len(lines), limit, lambda i: f"  {lines[i]}"))
    out.append("rank -> node, GPU:")
    out.extend(_clipped(plan.ranks, limit, lambda r: _rank_row(plan, r)))
    return "\n".join(out)


def _clipped(count: int, limit: int, row: Callable[[int], str]) -> list[str]:
    """Rows 0..count-1, or the first limit-8, a '... (N more)' line and the last 4 when there are more than limit."""
    if count <= limit:
        return [row(i) for i in range(count)]
    head, tail = range(limit - 8), range(count - 4, count)
    return [*map(row, head), f"  ... ({count - len(head) - len(tail)} more)", *map(row, tail)]


def summary_line(plan: Plan, rargs: RelionArgs, scratch: str | None) -> str:
    if plan.mode is Mode.HOMOGENEOUS_PLUS_ONE:
        per_node = compress_counts(plan.ranks_per_node)
    elif plan.ranks_per_node:
        per_node = compress_counts(plan.ranks_per_node)
    else:
        per_node = "Slurm decides"
    if plan.gpu_bound:
        gpus = "1 (leader none)" if plan.leader_node else "1"
    elif plan.gpus:
        gpus = f"RELION maps {len(plan.gpus)} per node"
    else:
        gpus = "none"
    threads = str(rargs.threads) if rargs.threads is not None else "1 (no --j)"
    parts = [
        f"{PROG}: {plan.mode}",
        f"ranks {plan.ranks}",
        f"ranks/node {per_node}",
        f"GPUs/rank {gpus}",
        f"threads {threads}",
        f"scratch {scratch or rargs.scratch_dir or 'none'}",
    ]
    return " | ".join(parts)


# ------------------------------------------------------------------------------------------------- preflight


def check_local_cpus(plan: Plan, rargs: RelionArgs) -> None:
    """Outside Slurm nobody else stops an oversubscribed node: ranks x threads must fit this node's CPUs."""
    import psutil  # lazy: only local runs pay for it

    try:
        cpus = len(psutil.Process().cpu_affinity() or [])
    except (AttributeError, NotImplementedError, psutil.Error):
        cpus = 0
    cpus = cpus or psutil.cpu_count() or 1
    threads = rargs.threads or 1
    need = plan.ranks * threads
    if need > cpus:
        raise UsageError(
            f"{plan.ranks} ranks × {threads} threads (--j) need {need} CPUs but this node has {cpus} usable; "
            "lower -n or --j, or submit the job to the queue"
        )


def thread_warnings(rargs: RelionArgs, env: Mapping[str, str]) -> list[str]:
    raw = env.get("SLURM_CPUS_PER_TASK", "").strip()
    if rargs.threads and raw.isdigit() and rargs.threads > int(raw):
        return [
            f"--j {rargs.threads} threads but the job has --cpus-per-task={raw}: the threads share {raw} "
            "CPU(s); set RELION's 'Number of threads' and the template's --cpus-per-task=XXXthreadsXXX alike"
        ]
    return []


_MRCS = re.compile(rb"@(\S+?\.mrcs)\b")
_STAR_LIMIT = 64 << 20  # read at most this much of --i; beyond it the scan costs more than it tells


def particle_bytes(star: str | None, cwd: Path) -> int | None:
    """Best effort: the size of the image stacks the --i star file references (None when unknown)."""
    if not star or not star.endswith(".star"):
        return None
    path = cwd / star
    try:
        if path.stat().st_size > _STAR_LIMIT:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    total = 0
    for name in {m.group(1) for m in _MRCS.finditer(data)}:
        try:
            total += (cwd / os.fsdecode(name)).stat().st_size
        except OSError:
            continue
    return total or None


def scratch_check(rargs: RelionArgs, cwd: Path) -> tuple[str | None, list[str]]:
    """(summary text, warnings) for --scratch_dir: free space vs the particles. Never an error."""
    if not rargs.scratch_dir:
        return None, []
    import psutil  # lazy

    probe = Path(rargs.scratch_dir)
    if not probe.is_absolute():
        probe = cwd / probe
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = psutil.disk_usage(str(probe)).free
    except OSError:
        return f"{rargs.scratch_dir} (free space unknown)", []
    need = particle_bytes(rargs.input_star, cwd)
    text = f"{rargs.scratch_dir} ({free / 1e9:.1f} GB free"
    text += f", particles {need / 1e9:.1f} GB)" if need else ")"
    keep = int(rargs.keep_free_scratch_gb * 1e9)
    if need and need + keep > free:
        return text, [
            f"--scratch_dir {rargs.scratch_dir} has {free / 1e9:.1f} GB free on this node but the particles "
            f"take {need / 1e9:.1f} GB plus --keep_free_scratch {rargs.keep_free_scratch_gb:g} GB: RELION "
            "will read the rest from the project directory (ask for more lscratch)"
        ]
    return text, []


# --------------------------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class RankFailure:
    rank: int
    host: str
    code: int  # exit code, or 128 + signal
    what: str  # srun's words: "Exited with exit code 3", "Segmentation fault (core dumped)", ...


_TASK_END = re.compile(rb"^srun: error: (?P<host>\S+): tasks? (?P<tasks>\d[\d,\-]*): (?P<what>.+?)\s*$")
_CANCELLED = re.compile(rb"\*\*\* (?:JOB|STEP) \S+ ON \S+ CANCELLED AT \S+(?: DUE TO (?P<why>[A-Z ]+?))? \*\*\*")
_EXIT_CODE = re.compile(r"Exited with exit code (\d+)")


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


class Pipeline:
    """RELION's view of the job: the RELION_JOB_EXIT_* files in the --pipeline_control directory."""

    def __init__(self, jobdir: str | None) -> None:
        self.jobdir = Path(jobdir) if jobdir else None
        self.marked = False

    def has_exit_file(self) -> bool:
        return self.jobdir is not None and jobdir_mod.exit_file(self.jobdir) is not None

    def mark_failure(self, reason: str, *, echo: bool = True) -> bool:
        """Write RELION_JOB_EXIT_FAILURE (never over an existing exit file) and log the reason in run.err.

        The reason goes to run.err as one line, unless run.err is this process's stderr (RELION's template
        sends stderr there); ``echo`` also prints it on stderr (off when the caller reports the error itself).
        """
        if self.marked or self.jobdir is None or not self.jobdir.is_dir():
            return False
        failure = self.jobdir / jobdir_mod.EXIT_FAILURE
        line = f"{PROG}: {reason}; wrote {failure}"
        try:
            marked = jobdir_mod.mark_failed(self.jobdir, line)
        except OSError as exc:
            _warn(f"cannot write {failure}: {exc.strerror}")
            return False
        if not marked.created:
            return False
        self.marked = True
        if marked.err_note:
            _warn(marked.err_note)
        if echo:
            _stderr_text(line + "\n")
        return True


@dataclass
class Outcome:
    returncode: int
    failure: RankFailure | None = None
    signal: int | None = None
    cancel: str | None = None


FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
KILLING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def supervise(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    scan_srun: bool,
    on_kill: Callable[[int], None],
    stderr: IO[bytes] | None = None,
) -> Outcome:
    """Run argv, forward signals to it, pass its stderr through (scanning srun's task reports), wait."""
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
    try:
        try:
            child = subprocess.Popen(  # noqa: S603 - list argv built by layout.py, never a shell string
                list(argv), env=dict(env), stderr=subprocess.PIPE if scan_srun else None
            )
        except FileNotFoundError as exc:
            raise CommandError(
                f"{argv[0]}: command not found; is Slurm installed and on PATH in the batch job?"
                if os.path.basename(argv[0]) == "srun"
                else f"{argv[0]}: command not found; check the command (or RELION_MPIRUN)"
            ) from exc
        except PermissionError as exc:
            raise CommandError(f"{argv[0]}: not executable ({exc.strerror})") from exc
        except OSError as exc:
            raise CommandError(f"{argv[0]}: cannot run it ({exc.strerror})") from exc
        if child.stderr is not None:
            sink = stderr if stderr is not None else sys.stderr.buffer
            for line in child.stderr:
                try:
                    sink.write(line)
                    sink.flush()
                except (OSError, ValueError):
                    pass
                if outcome.failure is None:
                    outcome.failure = parse_task_end(line)
                if outcome.cancel is None:
                    outcome.cancel = parse_cancel(line)
        outcome.returncode = child.wait()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return outcome


def verdict(outcome: Outcome, program: str) -> tuple[int, str | None]:
    """(exit code, one-line reason or None on success)."""
    if outcome.signal is not None:
        name = signal.Signals(outcome.signal).name
        why = f" ({outcome.cancel})" if outcome.cancel else ""
        return 128 + outcome.signal, f"got {name}{why}: the job is being ended; {program} was stopped"
    f = outcome.failure
    if f is not None:
        if outcome.cancel and f.code == 128 + signal.SIGTERM:
            return f.code, f"the step was cancelled ({outcome.cancel}): rank {f.rank} on {f.host}: {f.what}"
        return f.code, (
            f"rank {f.rank} on {f.host} failed first ({f.what}); srun -K1 ended the other ranks of {program}"
        )
    rc = outcome.returncode
    if rc == 0:
        return 0, None
    if rc < 0:
        return 128 - rc, f"{program} was killed by {signal.Signals(-rc).name}"
    return rc, f"{program} ended with exit code {rc}"


def _warn(message: str) -> None:
    _stderr_text(f"{PROG}: warning: {message}\n")


def _stderr_text(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


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
            _warn(w)
        sys.stdout.write(format_plan(plan, rargs) + "\n")
        return 0

    directory = private_dir(env) if in_job else None
    try:
        hostfile = os.path.join(directory, "hostfile") if directory else HOSTFILE_PLACEHOLDER
        plan = make_plan(inv, env, rargs, hostfile)
        for w in inv.warnings:
            _warn(w)
        return _launch(plan, rargs, env, directory)
    finally:
        if directory:
            shutil.rmtree(directory, ignore_errors=True)


def _launch(plan: Plan, rargs: RelionArgs, env: Mapping[str, str], directory: str | None) -> int:
    pipeline = Pipeline(rargs.pipeline_control)
    cwd = Path.cwd()
    warnings = list(plan.warnings)
    if plan.mode is Mode.LOCAL:
        check_local_cpus(plan, rargs)
    else:
        warnings += thread_warnings(rargs, env)
    scratch, scratch_warnings = scratch_check(rargs, cwd)
    warnings += scratch_warnings
    for w in warnings:
        _warn(w)
    print(summary_line(plan, rargs, scratch), flush=True)
    print(f"{PROG}: {plan.reason}", flush=True)

    if plan.hostfile_lines:
        if directory is None:
            raise LayoutError("internal: a hostfile layout without a private directory")
        write_hostfile(directory, plan)
    step_env = step_environment(plan, env)

    def on_kill(signum: int) -> None:
        name = signal.Signals(signum).name
        pipeline.mark_failure(f"got {name} (time limit or scancel) while {rargs.program} was running")

    outcome = supervise(plan.argv, step_env, scan_srun=plan.mode is not Mode.LOCAL, on_kill=on_kill)
    code, reason = verdict(outcome, rargs.program)
    if reason is not None:
        if not pipeline.mark_failure(reason):
            _stderr_text(f"{PROG}: {reason}\n")
    return code


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
    comes from the command's --pipeline_control, found in argv even when the options before the command do
    not parse. A dry run writes nothing; the error itself is re-raised for guarded() to report.
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
            Pipeline(relion_args(words).pipeline_control).mark_failure(reason, echo=False)
        raise


def main(argv: list[str]) -> int:
    """Entry point of bin/relion-launch (via cli.launch_main): errors as one line with their sysexits code."""
    from ..cli import guarded

    return guarded(PROG, _prescan_verbose(argv), lambda: run_or_mark(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
