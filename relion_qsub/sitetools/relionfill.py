"""A faithful, pure re-implementation of how RELION fills a queue-submission template.

RELION (3.1, 4.0 and 5.0 alike) writes ``<jobdir>run_submit.script`` in
``RelionJob::saveJobSubmissionScript`` (``src/pipeline_jobs.cpp``) and then runs
``<qsub command> <jobdir>run_submit.script &``. :func:`fill` reproduces that file byte for byte;
``tests/test_relionfill.py`` checks it against Debian's ``relion_pipeliner`` 3.1.3.

What RELION does, and so what :func:`fill` does:

* The template is read line by line (``getline(fh, line, '\\n')``): a final line without a newline is
  still read, a ``\\r`` before the newline is kept, every line is written back followed by ``\\n``.
* On every line the placeholders are replaced, all occurrences, one placeholder after the other in the
  sorted order of a ``std::map<std::string, std::string>``: ``XXXcoresXXX``, ``XXXdedicatedXXX``,
  ``XXXerrfileXXX``, ``XXXextra1XXX``..., ``XXXmpinodesXXX``, ``XXXnameXXX``, ``XXXnodesXXX``,
  ``XXXoutfileXXX``, ``XXXqueueXXX``, ``XXXthreadsXXX``. So a placeholder written inside an extra's
  value is expanded when it sorts after ``XXXextraNXXX`` (``XXXnameXXX``, ``XXXqueueXXX``...) and left
  literal when it sorts before (``XXXcoresXXX``; ``XXXextra10XXX`` sorts before ``XXXextra1XXX``).
* ``XXXextraNXXX`` is replaced only when RELION has a field N (its ``RELION_QSUB_EXTRAn`` label is set
  and N <= ``RELION_QSUB_EXTRA_COUNT``); here: only for N in ``extras``. Any other stays literally.
* Numbers are printed by RELION's ``floatToString``: a C ``float`` in ``%g`` style, so 1,000,000 cores
  print as ``1e+06``.
* A line that still holds ``XXXcommandXXX`` after that is written once per command. A command that
  contains ``relion_`` and either ``_mpi``` (the MPI binary inside RELION's backticks) or is run with 1
  MPI process gets the line with the first ``XXXcommandXXX`` replaced by it; any other command is
  written bare on a line of its own, without the line's launcher prefix. With no commands the line
  vanishes.
* One empty line is appended at the end.
"""

from __future__ import annotations

import struct

from ..relion import gui
from ..relion import jobdir as contract

__all__ = [
    "COMMAND",
    "add_pipeline_control",
    "fill",
    "number",
    "placeholders",
    "relion_command",
    "which",
]

COMMAND = gui.COMMAND


def number(value: int) -> str:
    """RELION's ``floatToString(n)``: a C ``float`` printed like ``%g`` (1001000 -> ``1.001e+06``)."""
    as_float32: float = struct.unpack("f", struct.pack("f", float(value)))[0]
    return f"{as_float32:g}"


def placeholders(
    *,
    jobdir: str,
    mpi: int = 1,
    threads: int = 1,
    queue: str = "",
    dedicated: int = 1,
    extras: dict[int, str] | None = None,
) -> dict[str, str]:
    """The placeholder -> value table RELION builds, sorted as RELION applies it (``std::map`` order)."""
    for label, value in (("mpi", mpi), ("threads", threads), ("dedicated", dedicated)):
        if value < 1:
            raise ValueError(f"{label} must be >= 1, got {value}")
    cores = mpi * threads
    nodes = -(-cores // dedicated)  # RELION: CEIL((float)cores / (float)dedicated)
    table = {
        gui.MPINODES: number(mpi),
        gui.THREADS: number(threads),
        gui.CORES: number(cores),
        gui.DEDICATED: number(dedicated),
        gui.NODES: number(nodes),
        gui.NAME: jobdir,
        gui.ERRFILE: jobdir + contract.RUN_ERR,
        gui.OUTFILE: jobdir + contract.RUN_OUT,
        gui.QUEUE: queue,
    }
    for n, extra in (extras or {}).items():
        if n < 1:
            raise ValueError(f"extra fields are numbered from 1, got {n}")
        table[gui.extra(n)] = extra
    return dict(sorted(table.items()))


def _template_lines(template: str) -> list[str]:
    """The lines ``getline(fh, line, '\\n')`` yields: no empty last line for a trailing newline."""
    lines = template.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _gets_template_line(command: str, mpi: int) -> bool:
    return "relion_" in command and ("_mpi`" in command or mpi == 1)


def fill(
    template: str,
    *,
    jobdir: str,
    commands: list[str],
    mpi: int = 1,
    threads: int = 1,
    queue: str = "",
    dedicated: int = 1,
    extras: dict[int, str] | None = None,
) -> str:
    """The ``run_submit.script`` RELION writes from ``template`` (see the module docstring).

    ``jobdir`` is RELION's output name with its trailing slash (``Class2D/job012/``); ``commands`` are
    the job's final commands (``--pipeline_control <jobdir>`` already appended, see
    :func:`add_pipeline_control`); ``mpi``, ``threads``, ``queue``, ``dedicated`` are the Running-tab
    values (1 for a job type without MPI or threads); ``extras`` maps N to the value of the GUI field N,
    for the fields that exist.
    """
    table = placeholders(jobdir=jobdir, mpi=mpi, threads=threads, queue=queue, dedicated=dedicated, extras=extras)
    out: list[str] = []
    for raw in _template_lines(template):
        line = raw
        for key, value in table.items():
            line = line.replace(key, value)
        if COMMAND not in line:
            out.append(line)
            continue
        for command in commands:
            out.append(line.replace(COMMAND, command, 1) if _gets_template_line(command, mpi) else command)
    out.append("")
    return "".join(piece + "\n" for piece in out)


def which(program: str, *, mpi: int = 1, mpi_capable: bool = True) -> str:
    """How RELION names a binary in a command: ``\\`which relion_refine_mpi\\``` with MPI > 1."""
    binary = f"{program}_mpi" if mpi_capable and mpi > 1 else program
    return f"`which {binary}`"


def add_pipeline_control(commands: list[str], jobdir: str) -> list[str]:
    """As ``prepareFinalCommand``: append ``--pipeline_control <jobdir>`` to each ``relion_`` command."""
    return [c + " --pipeline_control " + jobdir if "relion_" in c else c for c in commands]


def relion_command(program: str, args: str, *, jobdir: str, mpi: int = 1, mpi_capable: bool = True) -> str:
    """A RELION-like final command. For example
    ``relion_command("relion_refine", "--o C/job012/run --i p.star", jobdir="C/job012/", mpi=4)`` is
    ``\\`which relion_refine_mpi\\` --o C/job012/run --i p.star --pipeline_control C/job012/``.

    ``args`` is pasted verbatim after one space (RELION's own argument strings carry double spaces and
    trailing blanks: keep them in ``args`` to mimic that).
    """
    if not program.startswith("relion_"):
        raise ValueError(f"not a RELION program: {program!r}")
    if program.endswith("_mpi"):
        raise ValueError(f"give the serial name, the _mpi suffix follows from mpi: {program!r}")
    command = which(program, mpi=mpi, mpi_capable=mpi_capable)
    if args:
        command += " " + args
    return add_pipeline_control([command], jobdir)[0]
