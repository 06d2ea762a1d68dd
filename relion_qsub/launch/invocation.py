"""relion-launch's argv: our options, srun's options before the command, and what RELION's command says.

Options up to the first word that is not an option belong to relion-launch or srun; the rest is RELION's command,
untouched. srun options are recognised by srun's own table (getopt_long semantics, as srun parses them).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import UsageError
from ..relion.gui import COMMAND, EMPTY, extra, unset_value
from ..slurm.options import NONE, OPTIONAL, REQUIRED, SRUN
from .layout import (
    MAX_RANKS,
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
  --version          print the version
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
                     (--mem-per-cpu=) or an unfilled RELION placeholder ({extra2}) is dropped
                     with a warning. Not -K/--kill-on-bad-exit: relion-launch always runs srun -K1,
                     so -K0 is refused and -K/-K1 are dropped as repeats

Modes (auto): homogeneous+1 for GPU jobs with an odd number >= 3 of tasks per node (the leader rank
alone-extra on the first node, tasks-per-node - 1 worker ranks on every node, one GPU each); homogeneous
when the job has --ntasks-per-node; else heterogeneous (plain srun, Slurm places the ranks).

Examples:
  # Biowulf's template line (RELION_STD_LAUNCHER=relion-launch):
  ${{RELION_STD_LAUNCHER}} --mem-per-cpu={extra2} {command}
  # what would run in this job, without running it:
  relion-launch --dry-run `which relion_refine_mpi` --o Class2D/job001/run --i particles.star --gpu ""
  # plan for a saved job environment (`env -0 > job.env` inside the job):
  relion-launch --dry-run --env-file job.env relion_refine_mpi --j 2
  # interactive, on the local node (4 ranks with mpirun):
  relion-launch -n 4 `which relion_refine_mpi` --o Class2D/run --i particles.star --j 2

Exit status: the exit code of the rank that failed first (srun itself says 143 after -K kills the step),
128+signal when the job was killed, or a sysexits code for relion-launch's own errors (64 usage, 65 layout,
66 unreadable --env-file, 69 srun missing, 70 internal error).
""".format(extra2=extra(2), command=COMMAND)


# --------------------------------------------------------------------------------------------------- options


@dataclass
class Invocation:
    dry_run: bool = False
    env_file: str | None = None
    gpu_bind: bool = True
    mode: str | None = None
    verbose: bool = False
    help: bool = False
    version: bool = False
    ntasks: int | None = None
    srun_options: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def positive(value: str, what: str) -> int:
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
        elif name == "--version":
            inv.version = True
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
            inv.ntasks = positive(raw, "-n/--ntasks")
        elif word.startswith("--"):
            _srun_long(word, args, i, inv)
            if "=" not in word and SRUN.arg(word[2:]) == REQUIRED:
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
    kind = SRUN.arg(name)
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
    unset = unset_value(value)
    if unset is None:
        return False
    if unset == EMPTY:
        inv.warnings.append(
            f"dropping {name}= (empty value: the RELION GUI field for it was left blank); srun uses the "
            "job's own setting"
        )
        return True
    inv.warnings.append(f"dropping {name}={value} (RELION left its placeholder unfilled: is RELION_QSUB_EXTRAn set?)")
    return True


def _srun_short(args: Sequence[str], i: int, inv: Invocation) -> int:
    """One word of short options (-lu, -K1, -p gpu, -pgpu); returns the index of the last word consumed."""
    word = args[i]
    for pos in range(1, len(word)):
        letter = word[pos]
        kind = SRUN.short_arg(letter)
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
