"""What the job allocates against what RELION will run in it: threads, MPI processes and GPUs (issue 21).

RELION decides the program and its sizes from its Running tab (job.star: ``nr_mpi``, ``nr_threads``, ``use_gpu``);
the template decides what Slurm gives. Nothing ties the two together when the template fixes an option or lacks
one: RELION then runs ``--j 4`` in each of 8 ranks on 8 CPUs (Slurm binds each task to its ``--cpus-per-task``
CPUs, default 1), or ``relion_refine_mpi`` as one task, which stops at once (ml_optimiser_mpi.cpp,
``MlOptimiserMpi::initialiseWorkLoad``: "at least 2 MPI processes are required"). Each rule names where the
allocation's value came from (a GUI box only when it filled the line; else the template's line) and one fix.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .. import gpus
from ..relion import gui
from ..script import Line, Script
from .core import Context, Report, as_int, body_lines, effective, gres_entries, implements, profile_box

# A RELION program word on a command line (`which relion_refine_mpi` in backquotes, a path, or bare).
_PROGRAM = re.compile(r"^[`'\"]*(?:\S*/)?(relion_\w+?)(_mpi)?[`'\"]*$")
# A launcher's own rank count (mpirun -n/-np/--np/-c, srun -n): then the template, not the allocation, says how many
# ranks run (srun -c is CPUs per task, not a count).
_LAUNCHERS_WITH_COUNT = ("-n", "-np", "--np", "--ntasks")
_MPIRUN = ("mpirun", "mpiexec", "orterun")


class Command(NamedTuple):
    """One RELION program on a script line."""

    line: Line
    program: str  # relion_refine, relion_python_modelangelo
    mpi: bool  # the _mpi build (runs one process per task)
    words: tuple[str, ...]  # the line's words after the program
    counted: bool  # started by `mpirun -n N`: the rank count is the template's, not the allocation's

    def value(self, flag: str) -> str | None:
        """The word after ``flag`` (``--j 4``), or the value of ``flag=value``; None without it."""
        for i, word in enumerate(self.words):
            if word == flag and i + 1 < len(self.words):
                return self.words[i + 1]
            if word.startswith(flag + "="):
                return word[len(flag) + 1 :]
        return None

    def has(self, flag: str) -> bool:
        return any(word == flag or word.startswith(flag + "=") for word in self.words)


def commands(script: Script) -> list[Command]:
    """The RELION programs the script runs, in order (a line's words split at blanks, as the shell would)."""
    found = []
    for _, line in body_lines(script):
        words = line.text.split()
        if words and words[0].startswith("#"):
            continue  # a comment
        for i, word in enumerate(words):
            match = _PROGRAM.match(word)
            if match is not None:
                launcher = words[:i]
                mpirun = any(w.rsplit("/", 1)[-1] in _MPIRUN for w in launcher)
                counted = any(
                    w in _LAUNCHERS_WITH_COUNT or w.startswith(("--np=", "--ntasks=")) or (mpirun and w == "-c")
                    for w in launcher
                )
                found.append(Command(line, match.group(1), match.group(2) is not None, tuple(words[i + 1 :]), counted))
                break
    return found


def tasks(script: Script, ctx: Context) -> int:
    """The tasks Slurm gives the job, as sbatch computes them: --ntasks; else --nodes x --ntasks-per-node (one node
    when --nodes is not given); else one task per node (man sbatch, -n: "the default is one task per node"). A node
    range counts as its minimum: the least Slurm gives (with free nodes it gives more: `sbatch --test-only` gave
    `--nodes=2-4 --ntasks-per-node=2` 4 nodes and 8 CPUs on the testbed). tests/test_allocation.py counts what the
    real srun starts for each form."""
    ntasks = as_int(effective(script, ctx, "ntasks"))
    if ntasks is not None:
        return ntasks
    nodes = as_int(effective(script, ctx, "nodes")) or 1
    per_node = as_int(effective(script, ctx, "ntasks-per-node"))
    return nodes * per_node if per_node is not None else nodes


def _slurm(script: Script) -> bool:
    """Whether the script asks Slurm for anything: a template for another batch system (no #SBATCH line) is
    foreign_scheduler's to refuse, and its allocation is not sbatch's to count."""
    return next(script.directives(), None) is not None


def _relion_number(ctx: Context, variable: str) -> int | None:
    value = ctx.job_value(variable)
    match = re.match(r"\s*(\d+)", value or "")
    return int(match.group(1)) if match and not (value or "").startswith("$$") else None


def _where(script: Script, ctx: Context, option: str, variable: str) -> str:
    """Where the job's --option came from; for an option the script lacks, the template it should go in.

    Called only when the option disagrees with RELION's box ``variable``: had that box filled the option, the two
    would agree (RELION fills --j and XXXthreadsXXX, the _mpi build and XXXmpinodesXXX from the same box), so a
    guess that names that box is wrong and the value is the template's."""
    if effective(script, ctx, option) is None:
        return ctx.boxes.where()
    where = gui.box(ctx, script, option)
    return ctx.boxes.where() if where == gui.label(gui.JOB_BOXES[variable]) else where


# ---------------------------------------------------------------------------------------------- threads


def _threads_flag(command: Command) -> str | None:
    """How RELION passes 'Number of threads' to the program (pipeline_jobs.cpp, 5.0.1): ``--j N`` to the relion_
    programs, ``--n-threads N`` to DynaMight (getCommandsDynaMightJob)."""
    return next((flag for flag in ("--j", "--n-threads") if command.value(flag) is not None), None)


@implements("threads_cpus")
def threads_cpus(script: Script, ctx: Context, report: Report) -> Script:
    found = [c for c in commands(script) if _threads_flag(c)] if _slurm(script) else []
    if not found or any(effective(script, ctx, o) for o in ("exclusive", "cpus-per-gpu", "mincpus")):
        return script  # CPUs given some other way (a whole node, per GPU): not judged here
    command = found[0]
    flag = _threads_flag(command) or "--j"
    threads = as_int(command.value(flag))  # what the program runs; job.star's nr_threads only names the box
    cpus = as_int(effective(script, ctx, "cpus-per-task")) or 1
    if threads is None or threads <= cpus:
        return script
    where = _where(script, ctx, "cpus-per-task", "nr_threads")
    given = f"--cpus-per-task={cpus} from {where}" if effective(script, ctx, "cpus-per-task") else "no --cpus-per-task"
    if not effective(script, ctx, "cpus-per-task"):
        fix = f"add '#SBATCH --cpus-per-task={gui.THREADS}' to {where}"
    elif where.startswith("the '"):  # a box the user typed it into (an SBATCH Directives box)
        fix = f"change --cpus-per-task in {where} to {threads}"
    else:
        fix = f"{gui.set_to(where, 'cpus-per-task')} {gui.THREADS}"
    box = gui.relion_box(ctx.boxes, "nr_threads")
    named = (
        box.removeprefix("the ").removesuffix(" box") if box and _relion_number(ctx, "nr_threads") == threads else None
    )
    source = f"RELION's {named} is {threads}, so it" if named else "the command"
    report.problem(
        command.line.number,
        f"{source} runs {threads} threads ({flag} {threads}) in each process but the job gives each task {cpus} CPU"
        f"{'s' if cpus > 1 else ''} ({given}), so the threads share them: {fix}",
    )
    return script


# ---------------------------------------------------------------------------------------------- MPI processes


@implements("mpi_tasks")
def mpi_tasks(script: Script, ctx: Context, report: Report) -> Script:
    command = next((c for c in commands(script) if c.mpi and not c.counted), None) if _slurm(script) else None
    if command is None:
        return script
    allocated = tasks(script, ctx)
    relion = _relion_number(ctx, "nr_mpi")
    where = _where(script, ctx, "ntasks" if effective(script, ctx, "ntasks") else "nodes", "nr_mpi")
    asked = f"RELION's 'Number of MPI procs' is {relion}" if relion is not None else "RELION chose the MPI build"
    if allocated < 2:
        report.problem(
            command.line.number,
            f"{asked} ({command.program}_mpi) but the job allocates {allocated} task (from {where}), so "
            f"{command.program}_mpi starts as one process and stops ('at least 2 MPI processes are required'): "
            f"{_tasks_fix(where, relion)}",
        )
    elif relion is not None and relion != allocated and "-" not in (effective(script, ctx, "nodes") or ""):
        report.note(
            command.line.number,
            f"{asked} but the job allocates {allocated} tasks (from {where}), so {command.program}_mpi runs "
            f"{allocated} processes: {_tasks_fix(where, relion)}",
        )
    return script


def _tasks_fix(where: str, relion: int | None) -> str:
    if where.startswith("the '"):  # a box the user typed it into (an SBATCH Directives box)
        return f"change --ntasks in {where} to {relion or 'the number of MPI procs'}"
    return f"{gui.set_to(where, 'ntasks')} {gui.MPINODES} (RELION then fills in 'Number of MPI procs')"


# ---------------------------------------------------------------------------------------------- GPUs


def gpu_use(found: list[Command]) -> tuple[Command, str] | None:
    """The first RELION command that uses a GPU and the flag that says so (pipeline_jobs.cpp, 5.0.1): ``--gpu`` (refine,
    classification, auto-picking, motion correction; Blush runs on those devices, and without --gpu on the CPU:
    ml_optimiser.cpp passes ``--gpu -1`` to relion_python_blush); ModelAngelo's ``-d <ids>``
    (getCommandsModelAngeloJob); DynaMight's ``--gpu-id <id>`` (getCommandsDynaMightJob)."""
    for command in found:
        if command.has("--gpu"):
            return command, "--gpu"
        if "modelangelo" in command.program and command.value("-d") is not None:
            return command, f"-d {command.value('-d')}"
        if "dynamight" in command.program and command.value("--gpu-id") is not None:
            return command, f"--gpu-id {command.value('--gpu-id')}"
    return None


def allocates_gpu(script: Script, ctx: Context) -> bool:
    """Any GPU in the allocation: a gres gpu, or one of --gpus, --gpus-per-node, --gpus-per-task."""
    if any(g.name == "gpu" for g in gres_entries(script, ctx)):
        return True
    return gpus.per_node(lambda name: effective(script, ctx, name)) is not None or bool(effective(script, ctx, "gpus"))


def _gres_box(ctx: Context) -> str:
    """Where the user asks for a gres: the template's box for --gres, else the profile's field, else the template."""
    box = ctx.boxes.for_option("gres")
    if box is not None:
        return box or f"{ctx.boxes.where()} (it has no box for --gres)"
    return profile_box(ctx, "gres") or "the template (or a box it has for #SBATCH options)"


@implements("gpu_without_gres")
def gpu_without_gres(script: Script, ctx: Context, report: Report) -> Script:
    if allocates_gpu(script, ctx):
        return script
    used = gpu_use(commands(script))
    if used is None:
        return script
    command, flag = used
    # The partition too: by the Queue name box unless the template has no XXXqueueXXX (then the box goes nowhere).
    queue = " (and a GPU 'Queue name')" if ctx.boxes.uses("queue") is not False else " (and a GPU partition)"
    # Only the jobs that pass --gpu have 'Use GPU acceleration?' (ModelAngelo and DynaMight have GPU ids only).
    has_switch = flag == "--gpu" and ctx.boxes.has_box("use_gpu") is not False
    switch = ", or set 'Use GPU acceleration?' to No" if has_switch else ""
    report.problem(
        command.line.number,
        f"{command.program}{'_mpi' if command.mpi else ''} runs with {flag} but the job allocates no GPU: ask for "
        f"--gres=gpu:N in {_gres_box(ctx)}{queue}{switch}",
    )
    return script
