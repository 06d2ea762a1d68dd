"""RELION's Running tab: the placeholders it fills in a queue template, its boxes, and which box filled which line.

RELION fills a template line by line (``RelionJob::saveJobSubmissionScript``, pipeline_jobs.cpp): each line is
copied with its placeholders replaced, and only the line holding XXXcommandXXX is repeated, once per command. Every
line before it, so every ``#SBATCH`` line, therefore has the same number in the filled script as in the template.
RELION runs the Queue submit command from its own process, so the template's path (``RELION_QSUB_TEMPLATE``) and the
labels of the extra boxes (``RELION_QSUB_EXTRAn``) are in our environment too. An ``XXXextraNXXX`` whose
``RELION_QSUB_EXTRAn`` is unset stays in the script literally; a box left empty leaves an empty value.

Here: the placeholder names and the one ``XXX...XXX`` pattern; the boxes by placeholder and by the sbatch option
RELION's own template fills from them; the template lines (:class:`Boxes`); the words of a message naming a box
(formerly blame); which repairs a correct job's user is spared (formerly quiet); and :func:`unset_value`, the one test
of an option value a box left empty or unfilled (the launcher-line rule and relion-launch both drop such options).
Imports nothing of the package; ``re`` only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path
    from typing import Protocol

    from .jobstar import JobStar

    class _Change(Protocol):
        @property
        def action(self) -> str: ...
        @property
        def message(self) -> str: ...

    class _Option(Protocol):
        @property
        def name(self) -> str | None: ...
        @property
        def value(self) -> str | None: ...
        @property
        def spelled(self) -> str: ...

    class _Line(Protocol):
        @property
        def number(self) -> int: ...
        @property
        def text(self) -> str: ...
        @property
        def options(self) -> Sequence[_Option]: ...

    class _Directives(Protocol):
        def directives(self) -> Iterable[tuple[int, _Line]]: ...

    class _Site(Protocol):
        def field_labels(self) -> Iterable[tuple[str, str]]: ...

    class _Context(Protocol):
        @property
        def site(self) -> _Site: ...
        @property
        def boxes(self) -> Boxes: ...
        def cli_has(self, name: str) -> bool: ...
        def box_for(self, number: int, text: str | None = None) -> str | None: ...


# ---- placeholders (RelionJob::saveJobSubmissionScript) -----------------------------------------------------------


def placeholder(name: str) -> str:
    """``mpinodes`` -> ``XXXmpinodesXXX``."""
    return f"XXX{name}XXX"


MPINODES, THREADS, CORES, DEDICATED, NODES = (
    placeholder(n) for n in ("mpinodes", "threads", "cores", "dedicated", "nodes")
)
NAME, ERRFILE, OUTFILE, QUEUE, COMMAND = (placeholder(n) for n in ("name", "errfile", "outfile", "queue", "command"))


def extra(n: int) -> str:
    """The placeholder of the n-th extra box (RELION_QSUB_EXTRAn)."""
    return placeholder(f"extra{n}")


# The placeholders RELION fills.
RELION_PLACEHOLDER = re.compile(
    r"XXX(?:mpinodes|threads|cores|dedicated|nodes|name|errfile|outfile|queue|command|extra\d+)XXX"
)
# Any XXXwordXXX: a template for a patched RELION may carry one RELION never fills (XXXqosXXX). The one pattern for
# "a placeholder is left in": the rules and relion-launch both use it.
ANY_PLACEHOLDER = re.compile(r"XXX[a-z]\w*?XXX")


def why_unfilled(found: str) -> str:
    """Why RELION left the placeholder ``found`` in the script, and what to do about it."""
    name = found[3:-3]
    if name.startswith("extra") and name[5:].isdigit():
        return (
            f"RELION_QSUB_{name.upper()} is not set in RELION's environment, so RELION shows no box for it and "
            f"leaves {found} (set it, e.g. with `module load relion-qsub`, or remove {found} from the template)"
        )
    if RELION_PLACEHOLDER.fullmatch(found):
        return f"RELION fills {found} in every script it writes, so this one was not written by RELION's Run"
    return (
        f"{found} is not a placeholder RELION fills (a template for a patched RELION?): put a value there, "
        "or a box of its own (XXXextraNXXX with RELION_QSUB_EXTRAn set)"
    )


EMPTY = ""  # unset_value's answer for a value the box left empty


def unset_value(value: str) -> str | None:
    """Whether an option's value is no value: None when it is one; :data:`EMPTY` when the GUI box was left blank
    (``--mem-per-cpu=``, or only quotes or blanks); the placeholder when RELION left one unfilled."""
    if not value.strip().strip("\"'").strip():
        return EMPTY
    match = ANY_PLACEHOLDER.search(value)
    return match.group() if match else None


# ---- the boxes -----------------------------------------------------------------------------------------------------

# The fixed boxes of RELION's Running tab, by placeholder name.
FIXED = {
    "queue": "'Queue name'",
    "mpinodes": "'Number of MPI procs'",
    "threads": "'Number of threads'",
    "cores": "'Number of MPI procs' x 'Number of threads'",
    "dedicated": "'Minimum dedicated cores per node'",
    "nodes": "'Number of MPI procs' x 'Number of threads' / 'Minimum dedicated cores per node'",
}
# The sbatch options RELION's own templates fill from its fixed boxes, and the boxes' labels.
RELION_BOXES = {"ntasks": "Number of MPI procs", "cpus-per-task": "Number of threads", "partition": "Queue name"}
DIRECTIVES = "SBATCH Directives"
_ANY = re.compile(r"XXX([a-z]\w*?)XXX")


def box_name(name: str, labels: Mapping[int, str]) -> str:
    """The GUI box behind placeholder ``name`` (``extra2`` -> "the 'Memory' box (RELION_QSUB_EXTRA2)")."""
    if name.startswith("extra") and name[5:].isdigit():
        n = int(name[5:])
        label_ = labels.get(n)
        return f"the '{label_}' box (RELION_QSUB_EXTRA{n})" if label_ else f"RELION_QSUB_EXTRA{n} (not set)"
    if name in FIXED:
        return f"the {FIXED[name]} box"
    if RELION_PLACEHOLDER.fullmatch(placeholder(name)):
        return placeholder(name)  # XXXcommandXXX, XXXnameXXX, ...: RELION's, no box
    # A patched RELION's placeholder (XXXtimelimitXXX): relion-qsub filled it as the site profile declares.
    return f"the profile's [placeholders.{name}] ({placeholder(name)})"


class Boxes(NamedTuple):
    """The template RELION filled the script from (its lines and path), the extra boxes' labels, and, when the job
    dir has a job.star, the boxes the job's Running tab really has with their values (``values``; None without one).

    ``recorded``: the template is the one job.star names (``qsubscript``, what RELION really filled), not
    RELION_QSUB_TEMPLATE (only the default the GUI started with)."""

    template: list[str] | None
    labels: Mapping[int, str]
    path: str | None = None
    recorded: bool = False
    values: Mapping[str, str] | None = None

    def for_line(self, number: int, text: str | None = None) -> str | None:
        """The box(es) whose value went into script line ``number`` (checked against ``text`` when given)."""
        line = self._line(number, text)
        names = _ANY.findall(line) if line is not None else []
        return " or ".join(dict.fromkeys(box_name(name, self.labels) for name in names)) if names else None

    def fixed_line(self, number: int, text: str | None = None) -> str | None:
        """ "the template (<path>, line N)" when script line ``number`` is a template line that no box filled."""
        line = self._line(number, text)
        if line is None or _ANY.search(line):
            return None
        return self.where(number)

    def where(self, number: int | None = None) -> str:
        """The template in a message's words: "the template (<path>, line N)"."""
        at = f", line {number}" if number else ""
        return f"the template ({self.path}{at})" if self.path else "the template"

    def _line(self, number: int, text: str | None) -> str | None:
        if not self.template or not 0 < number <= len(self.template):
            return None
        line = self.template[number - 1].rstrip("\r")
        if text is not None and _filled(line, text) is None:
            return None  # not the template this script was filled from
        return line

    def edited(self, number: int, text: str) -> bool:
        """Whether script line ``number`` holds a box's value other than job.star's: RELION filled it from this
        template line, so someone changed it after RELION wrote the script (False when that cannot be known)."""
        line = self._line(number, text)
        found = _filled(line, text) if line is not None and self.values is not None else None
        for name, value in (found or {}).items():
            variable = _VARIABLE_OF.get(name) or (f"qsub_{name}" if name.startswith("extra") else None)
            held = self.values.get(variable) if variable and self.values is not None else None
            if held is not None and held.strip() != value.strip():
                return True
        return False

    def for_option(self, name: str) -> str | None:
        """The box the template fills ``--name`` from; "" when the template has none; None when it is unknown."""
        if self.template is None:
            return None
        whole = None  # a box the template puts on an #SBATCH line of its own takes any option
        for number, line in enumerate(self.template, 1):
            if line.startswith("#SBATCH") and re.search(rf"--{re.escape(name)}[= ]\S*XXX[a-z]\w*?XXX", line):
                return self.for_line(number) or ""
            if whole is None and re.fullmatch(r"#SBATCH\s+XXX[a-z]\w*?XXX\s*", line.rstrip("\r")):
                whole = self.for_line(number)
        return whole or ""

    def uses(self, name: str) -> bool | None:
        """Whether the template holds placeholder ``name`` (``queue``); None when the template is unknown."""
        if self.template is None:
            return None
        return any(placeholder(name) in line for line in self.template)

    def has_box(self, variable: str) -> bool | None:
        """Whether the job's Running tab has the box ``variable`` (``nr_mpi``, ``nr_threads``, ``use_gpu``): RELION
        writes into job.star exactly the boxes of the job's type (RelionJob::initialise: ``has_mpi``,
        ``has_thread``); None without a job.star."""
        return None if self.values is None else variable in self.values


# The job.star variable behind each fixed placeholder whose value a script line shows (RelionJob::initialise).
_VARIABLE_OF = {"mpinodes": "nr_mpi", "threads": "nr_threads", "queue": "queuename"}


def _filled(line: str, text: str) -> dict[str, str] | None:
    """The value each placeholder of template ``line`` has in script line ``text``; None when ``text`` is not that
    line filled (the first of a repeated placeholder)."""
    parts = _ANY.split(line)
    pattern = "".join("(.*?)" if i % 2 else re.escape(part) for i, part in enumerate(parts))
    match = re.fullmatch(pattern, text.rstrip("\r"), re.DOTALL)
    if match is None:
        return None
    out: dict[str, str] = {}
    for name, value in zip(parts[1::2], match.groups(), strict=True):
        out.setdefault(name, value)
    return out


def _read_template(path: str) -> list[str] | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(1 << 20).split("\n")
    except OSError:
        return None  # a hint, never a failure


def _labels(environ: Mapping[str, str]) -> dict[int, str]:
    labels = {}
    for key, value in environ.items():
        if key.startswith("RELION_QSUB_EXTRA") and key[17:].isdigit():
            labels[int(key[17:])] = value
    return labels


def from_environment(environ: Mapping[str, str]) -> Boxes:
    path = environ.get("RELION_QSUB_TEMPLATE")
    return Boxes(_read_template(path) if path else None, _labels(environ), path or None)


def job_star(jobdir: Path | None) -> JobStar | None:
    """The job.star RELION wrote in ``jobdir`` (relion.jobstar.of_job_dir), the reader imported only for a dir that
    has one: the submit path of a standalone script, or of a job dir without one, pays nothing for it."""
    from .jobdir import JOB_STAR  # here: relion-launch's layout imports this module for MPINODES alone

    if jobdir is None or not (jobdir / JOB_STAR).is_file():
        return None
    from . import jobstar

    return jobstar.of_job_dir(jobdir)


def of_job_dir(jobdir: Path | None, environ: Mapping[str, str]) -> Boxes:
    """A job's boxes: from its job.star when RELION wrote one (the template it really filled, every box's value:
    RELION writes job.star before it runs the Queue submit command), else from RELION's environment
    (RELION_QSUB_TEMPLATE is only the GUI's starting default)."""
    job = job_star(jobdir)
    if job is not None and jobdir is not None:
        return from_job(job.options, str(jobdir.parent.parent), environ)
    return from_environment(environ)


def from_job(values: Mapping[str, str], project: str, environ: Mapping[str, str]) -> Boxes:
    """The boxes of a job whose job.star holds ``values``: the template is the one it names (``qsubscript``, relative
    to the project directory RELION ran in), the extra boxes' labels are RELION's environment's (job.star keeps only
    their values)."""
    path = values.get("qsubscript") or None
    full = path if path is None or path.startswith("/") else f"{project.rstrip('/')}/{path}"
    return Boxes(_read_template(full) if full else None, _labels(environ), path, True, values)


# ---- which box a value came from, in a message's words (issue 14) ---------------------------------------------------
# First the template itself (Boxes: exact when RELION filled the script from it). Without it, the script and the
# profile tell: RELION fills ``--ntasks=XXXmpinodesXXX``, ``--cpus-per-task=XXXthreadsXXX`` and
# ``--partition=XXXqueueXXX`` from its fixed boxes and ``--<option>=XXXextraNXXX`` from the box ``[[fields]]`` N
# labels, each on a line of its own; a line with several options was pasted from an "SBATCH Directives" box
# (``#SBATCH XXXextraNXXX``). A fully filled template (``templates build``) writes its own sizes and ignores the
# boxes: what it asks is the template's.


def label(name: str) -> str:
    return f"the '{name}' box"


def directives_label(site: _Site) -> str:
    return next((lab for lab, option in site.field_labels() if not option and lab), DIRECTIVES)


def guess(site: _Site, line: _Line, name: str, filled: bool = False) -> str:
    """The box that wrote ``--name`` on ``line``, from the line's shape and the profile's field labels."""
    return _guess(site, len(line.options), name, filled)


def _guess(site: _Site, options: int, name: str, filled: bool = False) -> str:
    if filled:
        return "the template"
    if options == 1:
        if name in RELION_BOXES:
            return label(RELION_BOXES[name])
        found = next((lab for lab, option in site.field_labels() if option == name and lab), None)
        if found:
            return label(found)
    if any(not option for _, option in site.field_labels()):
        return label(directives_label(site))
    return "the template"


def box(ctx: _Context, script: _Directives, name: str, filled: bool = False) -> str:
    """Where the value sbatch uses for ``--name`` came from (the command line wins, then the last directive): the box
    that filled its template line, "the template (<path>, line N)" for a fixed template line, else a guess from the
    line's shape; ``filled``: the script is a fully filled template (fit.size_guard)."""
    if ctx.cli_has(name):
        return "the relion-qsub command line"
    found = [line for _, line in script.directives() if any(p.name == name for p in line.options)]
    if not found:
        return ctx.boxes.where()
    line = found[-1]
    if line.number:
        exact = ctx.box_for(line.number, line.text) or ctx.boxes.fixed_line(line.number, line.text)
        if exact and ctx.boxes.edited(line.number, line.text):
            return f"line {line.number} of the script"  # edited after RELION filled the box's value in
        if exact:
            return exact
        if ctx.boxes.recorded and ctx.boxes.template is not None:
            # RELION filled this script from the template job.star names, and this line is not that template's: the
            # script was edited after RELION wrote it, so no box of the GUI is behind it.
            return f"line {line.number} of the script"
    guessed = guess(ctx.site, line, name, filled)
    if line.number and not _possible(ctx, guessed, line, name):
        return ctx.boxes.where(line.number) if ctx.boxes.path else f"line {line.number} of the script"
    return guessed


# The job.star variable of the fixed box RELION's own templates fill each option from (RELION_BOXES).
_VARIABLES = {"ntasks": "nr_mpi", "cpus-per-task": "nr_threads", "partition": "queuename"}


def _possible(ctx: _Context, guessed: str, line: _Line, name: str) -> bool:
    """Whether the box ``guessed`` can have filled ``--name`` on ``line``, by job.star (None: no job.star, anything
    is): RELION writes there every box the job's Running tab has (an extra box only where RELION_QSUB_EXTRAn was
    set) with its value, so a box job.star lacks, or whose value is not the option's, did not fill it."""
    values = ctx.boxes.values
    if values is None:
        return True
    value = next((p.value for p in line.options if p.name == name), None)
    for option, box_label in RELION_BOXES.items():
        if guessed == label(box_label):
            return (values.get(_VARIABLES[option]) or "").strip() == (value or "").strip()
    for n, (box_label, option) in enumerate(ctx.site.field_labels(), 1):
        if box_label and guessed == label(box_label):
            held = values.get(f"qsub_extra{n}")
            return held is not None and (not option or held.strip() == (value or "").strip())
    return True


def set_to(where: str, option: str) -> str:
    """How to change a value, in a message's words: "set <box> to", or "change --option in <the template ...> to"
    when no box filled it."""
    if where.startswith(("the template", "line ")):
        return f"change --{option} in {where} to"
    return f"set {where} to"


def relion_box(boxes: Boxes, variable: str) -> str | None:
    """The Running tab's box ``variable`` (``nr_mpi``, ``nr_threads``, ``queuename``) as "the 'Label' box"; None when
    job.star says this job type has no such box (ModelAngelo has neither MPI nor threads: a message must not ask for
    one)."""
    if boxes.has_box(variable) is False:
        return None
    return label(JOB_BOXES[variable])


# The fixed Running-tab boxes by their job.star variable (RelionJob::initialise, pipeline_jobs.cpp) and label.
JOB_BOXES = {
    "nr_mpi": "Number of MPI procs",
    "nr_threads": "Number of threads",
    "queuename": "Queue name",
    "use_gpu": "Use GPU acceleration?",
    "gpu_ids": "Which GPUs to use",
    "gpu_id": "Which GPUs to use",
}


def stray_word_hint(site: _Site, line: _Line, parsed: _Option, box_name: str | None) -> str:
    """For a word sbatch reads as no option. A box whose value has a space (Walltime ``2 days``) is named with the
    value that works; a word pasted into an SBATCH Directives box is named as that. (Only directive lines have
    options.)"""
    first = line.options[0] if line.options else None
    if first is not None and first is not parsed and first.name is not None:
        where = box_name or _guess(site, 1, first.name)
        if where != label(directives_label(site)):
            words = " ".join([first.value or "", *(p.spelled for p in line.options[1:])]).strip()
            fix = (
                "write it as one word, e.g. 2-00:00:00 for two days"
                if first.name == "time"
                else "write it without spaces"
            )
            reads = f"sbatch reads --{first.name}={first.value} and then {parsed.spelled!r}"
            return f"; {where} holds {words!r}, not one value ({reads}): {fix}"
    if box_name:
        return (
            f"; it came from {box_name}, which the template puts on an #SBATCH line: write it there as an option "
            "(--name=value)"
        )
    return f"; every word in an {directives_label(site)} box must be an option (--name=value)"


# ---- which findings a correct job's user is spared (issue 14: quiet by default on a correct job) --------------------
# Our own templates carry one ``#SBATCH XXXextraNXXX`` line per SBATCH Directives box: a box left empty gives a bare
# ``#SBATCH``, which sbatch ignores (src/sbatch/opt.c reads no option from it). relion-qsub drops it so that the
# script says only what it means; nothing was wrong, so that repair is not echoed into run.out or onto the terminal.
# It stays in relion-qsub.jsonl and ``-v`` prints it. (An empty ``--gres=`` is different: sbatch refuses it, so its
# repair is reported.)

# The one message of that repair (relion_qsub.checks.placeholders.empty_directives writes it).
BARE_DIRECTIVE = "dropped an empty '#SBATCH' line (the GUI field was left empty)"


def harmless(change: _Change) -> bool:
    return change.action == "fixed" and change.message == BARE_DIRECTIVE
