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
from ..slurm.options import SRUN_STEP, parse_words
from .core import Context, Report, as_int, body_lines, effective, gres_entries, implements, profile_box

# A RELION program word on a command line (`which relion_refine_mpi` in backquotes, a path, or bare).
_PROGRAM = re.compile(r"^[`'\"]*(?:\S*/)?(relion_\w+?)(_mpi)?[`'\"]*$")
_MPIRUN = ("mpirun", "mpiexec", "orterun")
# OpenMPI 4.1 mpirun's rank counts (mpirun(1): "-c, -n, --n, -np <#>: Run this many copies of the program"; --np too).
# It takes no "--np=N": the testbed's mpirun 4.1.4 answers 'unknown option "--np=2"'. (srun's are -n/--ntasks, parsed
# with srun's own table: srun -c is CPUs per task, not a count.)
_MPIRUN_COUNT = ("-c", "-n", "--n", "-np", "--np")
# mpirun options that lift its slot limit or bring slots of their own (a host list, a hostfile): then the
# allocation's tasks do not bound the count.
_MPIRUN_FREE = (
    "--oversubscribe",
    "-oversubscribe",
    "-H",
    "--host",
    "-host",
    "--hostfile",
    "-hostfile",
    "--machinefile",
    "-machinefile",
    "--default-hostfile",
)


class Launcher(NamedTuple):
    """The srun or mpirun that starts a RELION program with a rank count of its own (``srun -n 4``)."""

    name: str  # srun, mpirun
    words: tuple[str, ...]  # as written, from the launcher up to the program
    ranks: str  # the rank count as written: 4, $SLURM_NTASKS
    cpus: int  # the CPUs each task of the step asks for (srun -c; 1 otherwise)
    free: bool  # srun --overcommit, mpirun --oversubscribe or hosts of its own: the allocation does not bound it


class Command(NamedTuple):
    """One RELION program on a script line."""

    line: Line
    program: str  # relion_refine, relion_python_modelangelo
    mpi: bool  # the _mpi build (runs one process per task)
    words: tuple[str, ...]  # the line's words after the program
    launcher: Launcher | None  # started by `srun -n N`: the rank count is the template's, not the allocation's

    @property
    def counted(self) -> bool:
        return self.launcher is not None

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
                launcher = _launcher(words[:i])
                found.append(Command(line, match.group(1), match.group(2) is not None, tuple(words[i + 1 :]), launcher))
                break
    return found


def _launcher(words: list[str]) -> Launcher | None:
    """The srun or mpirun among the words before a RELION program, when it gives a rank count of its own."""
    while words and words[-1].startswith("`"):
        words = words[:-1]  # the `which of `which relion_refine_mpi` (RELION 3.1's commands): the program's
    for i, word in enumerate(words):
        name = word.rsplit("/", 1)[-1]
        if name == "srun":
            parsed = parse_words(words[i + 1 :], command=SRUN_STEP)  # getopt_long as srun reads them
            count = next((p.value for p in reversed(parsed) if p.name == "ntasks" and p.value), None)
            cpus = next((as_int(p.value) for p in reversed(parsed) if p.name == "cpus-per-task"), None) or 1
            free = any(p.name == "overcommit" for p in parsed)
            return Launcher("srun", tuple(words[i:]), count, cpus, free) if count else None
        if name in _MPIRUN:
            rest = words[i + 1 :]
            pairs = [(word, rest[k + 1] if k + 1 < len(rest) else "") for k, word in enumerate(rest)]
            count = next((value for flag, value in reversed(pairs) if flag in _MPIRUN_COUNT and value), None)
            # --map-by <policy>:OVERSUBSCRIBE lifts the limit as --oversubscribe does (mpirun(1), --map-by modifiers).
            mapped = [value for flag, value in pairs if flag in ("--map-by", "-map-by")]
            free = any(w in _MPIRUN_FREE for w in rest) or any(
                "OVERSUBSCRIBE" in re.split(r"[:,]", value.upper()) for value in mapped
            )
            return Launcher("mpirun", tuple(words[i:]), count, 1, free) if count else None
    return None


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


# Options that give the job CPUs other than tasks x --cpus-per-task: a whole node, a minimum per node, per GPU.
_OTHER_CPUS = ("exclusive", "mincpus", "cpus-per-gpu")


def _given(script: Script, ctx: Context, name: str) -> bool:
    """Whether the job asks for --name at all (a valueless --exclusive too, which has no value to read)."""
    return ctx.cli_has(name) or script.has(name)


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
    if not found or any(_given(script, ctx, o) for o in _OTHER_CPUS):
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
    found = commands(script) if _slurm(script) else []
    over = next((m for m in (_launcher_over(script, ctx, c) for c in found if c.launcher) if m), None)
    if over is not None:
        report.problem(*over)
    command = next((c for c in found if c.mpi and not c.counted), None)
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


def _launcher_over(script: Script, ctx: Context, command: Command) -> tuple[int, str] | None:
    """A launcher's own rank count the allocation cannot hold, as Slurm and OpenMPI judge it (checked on the testbed,
    Slurm 22.05, OpenMPI 4.1.4, in a --ntasks=1 job): srun creates a step only within the job's CPUs (tasks x
    --cpus-per-task; `srun -n 2` "Unable to create step for job N: More processors requested than permitted", and
    with --cpus-per-task=2 it runs); OpenMPI's mpirun has one slot per task Slurm gives (SLURM_TASKS_PER_NODE, not the
    CPUs) and does not oversubscribe them ("There are not enough slots available")."""
    launcher, nodes = command.launcher, effective(script, ctx, "nodes") or ""
    count = as_int(launcher.ranks) if launcher is not None and not launcher.free else None
    if launcher is None or count is None or "-" in nodes:
        return None  # a count the shell fills in, or a node range (Slurm may give more than its minimum)
    allocated, per_task = tasks(script, ctx), as_int(effective(script, ctx, "cpus-per-task")) or 1
    if launcher.name == "srun":
        if count * launcher.cpus <= allocated * per_task or any(_given(script, ctx, o) for o in _OTHER_CPUS):
            return None  # fits, or the job's CPUs are given some other way (a whole node, per GPU)
        has = f"x {per_task} CPU{'s' if per_task > 1 else ''} per task"
        refusal = "srun refuses the step ('More processors requested than permitted')"
    else:
        if count <= allocated:
            return None
        has = f"= {allocated} slot{'s' if allocated > 1 else ''} for mpirun"
        refusal = "mpirun refuses to start them ('There are not enough slots available')"
    relion, box = _relion_number(ctx, "nr_mpi"), gui.relion_box(ctx.boxes, "nr_mpi")
    spelled = " ".join(launcher.words)
    named = (
        f"RELION's {box.removeprefix('the ').removesuffix(' box')} is {count}, and " if box and relion == count else ""
    )
    option = "ntasks" if effective(script, ctx, "ntasks") else "nodes"
    if relion is not None and relion == allocated:  # the allocation is the box's: the launcher's count is fixed
        where = gui.box(ctx, script, option) if effective(script, ctx, option) else ctx.boxes.where()
        fix = f"start {relion} ranks in {ctx.boxes.where()} ('{launcher.name} ... {gui.MPINODES}' fills it in)"
    else:
        where = _where(script, ctx, option, "nr_mpi")
        fix = _tasks_fix(where, relion or count)
    return command.line.number, (
        f"{named}{spelled} starts {count} processes of {command.program}{'_mpi' if command.mpi else ''} but the job "
        f"allocates {allocated} task{'s' if allocated > 1 else ''} (from {where}) {has}, so {refusal}: {fix}"
    )


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
