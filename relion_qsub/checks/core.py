"""What every check works with: the context of a submission, the findings it reports, and the script edits it makes.

A check is a small pure function from a script to a script; what it does when it fires is the site's policy for
its key (:class:`~relion_qsub.checks.registry.Action`): "fix" repairs and says so, "warn" repairs where a repair
exists (and otherwise only says so), "error" refuses the script with the fix in one sentence and repairs nothing,
"off" does nothing. A check never reads another key's policy, so each key alone switches its behaviour (issue 11).
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..profile import Site
from ..relion import gui
from ..relion.gui import Boxes
from ..script import Kind, Line, Script, directive_line
from ..slurm.options import BY_NAME, Parsed
from . import registry
from .registry import Action

if TYPE_CHECKING:
    from ..relion.jobstar import JobStar


class Outcome(enum.StrEnum):
    """What became of one finding (the first word of its line in the report)."""

    FIXED = "fixed"
    WARNING = "warning"
    ERROR = "error"


class Change(NamedTuple):
    rule: str
    action: Outcome
    line: int  # line number in the original script; 0 when it concerns the whole script
    message: str
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{self.action}: {where}{self.message} [{self.rule}: {self.reason}]"


@dataclass(slots=True)
class Context:
    site: Site
    cli_options: tuple[Parsed, ...] = ()  # sbatch options given on relion-qsub's command line: they win
    given_boxes: Boxes | None = None  # which GUI box filled which line; from job.star or the environment on first use
    jobdir: Path | None = None  # the RELION job dir of the script (None: a standalone script)
    # The action of every check: the defaults, overridden by the profile's [policy] (validated here).
    policy: dict[str, Action] = field(init=False)

    def __post_init__(self) -> None:
        self.policy = registry.policy(self.site.policy, self.site.path)

    @property
    def boxes(self) -> Boxes:
        """The GUI's boxes: from the job dir's job.star when it has one (RELION wrote it before it ran the Queue
        submit command: the template it really filled and every box's value), else from RELION's environment
        (RELION_QSUB_TEMPLATE is only the GUI's starting default)."""
        if self.given_boxes is None:
            self.given_boxes = gui.of_job_dir(self.jobdir, os.environ)
        return self.given_boxes

    @property
    def job_values(self) -> Mapping[str, str] | None:
        """Every box of the job's Running tab and other tabs with its value, as job.star holds them; None for a
        standalone script, a job dir without job.star, or a job.star RELION did not write (then the script alone
        is judged)."""
        job = self.job_star
        return job.options if job is not None else None

    @property
    def job_star(self) -> JobStar | None:
        """The job dir's job.star (relion.gui.job_star: only a job dir with one pays the import)."""
        return gui.job_star(self.jobdir)

    def job_value(self, variable: str) -> str | None:
        """A box's value as job.star holds it (``nr_mpi``); None without a job.star or when the job has no such box."""
        values = self.job_values if self.given_boxes is None else self.boxes.values
        return values.get(variable) if values is not None else None

    def box_for(self, number: int, text: str | None = None) -> str | None:
        """The GUI box that filled script line ``number``, by the template's own labels, if that can be known."""
        return self.boxes.for_line(number, text)

    def cli_value(self, name: str) -> str | None:
        found = [p.value for p in self.cli_options if p.name == name]
        return found[-1] if found else None

    def cli_has(self, name: str) -> bool:
        return any(p.name == name for p in self.cli_options)


@dataclass(slots=True)
class Report:
    """What one check found, written against its policy."""

    rule: str
    reason: str
    action: Action
    changes: list[Change] = field(default_factory=list)

    def fixed(self, line: int, message: str, refused: str | None = None) -> None:
        """A repair; under "error" it is a refusal instead, worded ``refused`` (the driver then drops the repair)."""
        if self.action is Action.ERROR:
            self._add(Outcome.ERROR, line, refused or message)
        else:
            self._add(Outcome.WARNING if self.action is Action.WARN else Outcome.FIXED, line, message)

    def problem(self, line: int, message: str) -> None:
        """A finding with no repair: an error or a warning, as the policy says."""
        self._add(Outcome.ERROR if self.action is Action.ERROR else Outcome.WARNING, line, message)

    def note(self, line: int, message: str) -> None:
        """A warning whatever the policy says short of "off": a finding that must never refuse a job by itself."""
        self._add(Outcome.WARNING, line, message)

    def refuse(self, line: int, message: str) -> None:
        """A finding sbatch (or the job) cannot survive, whatever the policy says short of "off"."""
        self._add(Outcome.ERROR, line, message)

    @property
    def repairs(self) -> bool:
        return self.action in (Action.FIX, Action.WARN)

    def _add(self, outcome: Outcome, line: int, message: str) -> None:
        self.changes.append(Change(self.rule, outcome, line, message, self.reason))


class Result(NamedTuple):
    script: Script
    changes: tuple[Change, ...]

    @property
    def errors(self) -> list[Change]:
        return [c for c in self.changes if c.action is Outcome.ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors


# A normalisation rule returns the script (repaired or not); a fit check returns None: it only reports.
CheckFunc = Callable[[Script, Context, Report], Script | None]
# key -> the function that implements it (relion_qsub.checks.engine runs them in the registry's order).
FUNCTIONS: dict[str, CheckFunc] = {}


def implements(key: str) -> Callable[[CheckFunc], CheckFunc]:
    """Attach the decorated function to the check declared as ``key`` in the registry."""
    if key not in registry.BY_KEY:
        raise ValueError(f"{key!r}: not declared in relion_qsub/checks/registry.py")
    if key in FUNCTIONS:
        raise ValueError(f"{key!r}: implemented twice ({FUNCTIONS[key].__module__}.{FUNCTIONS[key].__name__})")

    def attach(func: CheckFunc) -> CheckFunc:
        FUNCTIONS[key] = func
        return func

    return attach


# ---------------------------------------------------------------------------------------------- reading the job


def effective(script: Script, ctx: Context, name: str) -> str | None:
    """The value sbatch will use for ``name``: the command line wins over the script, the last directive wins."""
    if ctx.cli_has(name):
        return ctx.cli_value(name)
    return script.last(name)


_LEADING_DIGITS = re.compile(r"\s*([0-9]+)")


def as_int(value: str | None) -> int | None:
    """An integer option value; a node range "2-4" counts as its minimum."""
    match = _LEADING_DIGITS.match(value or "")
    return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class Gres:
    name: str
    type: str | None
    count: int | None
    text: str = field(compare=False)

    @classmethod
    def parse(cls, text: str) -> Gres:
        # --gres=name[[:type]:count]; a count may carry a K/M/G suffix, which we keep verbatim.
        parts = text.split(":")
        number = int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else None
        if number is not None:
            parts = parts[:-1]
        return cls(parts[0], parts[1] if len(parts) > 1 else None, number, text)

    def render(self) -> str:
        return ":".join([self.name, *([self.type] if self.type else []), *([str(self.count)] if self.count else [])])


def gres_entries(script: Script, ctx: Context) -> list[Gres]:
    value = effective(script, ctx, "gres")
    if not value or value == "none":
        return []
    return [Gres.parse(item) for item in value.split(",") if item]


def body_lines(script: Script) -> Iterable[tuple[int, Line]]:
    for index in range(script.body_start, len(script.lines)):
        yield index, script.lines[index]


def profile_box(ctx: Context, option: str) -> str | None:
    """The site profile's own GUI field for ``--option`` ("": its first directives box), as "the 'Label' box"."""
    found = next((lab for lab, opt in ctx.site.field_labels() if opt == option and lab), None)
    if found is None:
        return None
    return gui.label(found)


# ---------------------------------------------------------------------------------------------- editing the script


def rewrite(script: Script, visit: Callable[[Line, Parsed], list[Parsed] | None]) -> Script:
    """Apply ``visit`` to each directive option; it returns None to keep it or the options to put instead.

    A directive left with no option disappears (its trailing comment, if any, stays as a comment line).
    """
    lines: list[Line] = []
    for line in script.lines:
        if line.kind != Kind.DIRECTIVE:
            lines.append(line)
            continue
        kept: list[Parsed] = []
        touched = False
        for parsed in line.options:
            result = visit(line, parsed)
            if result is None:
                kept.append(parsed)
            else:
                kept.extend(result)
                touched = True
        if not touched:
            lines.append(line)
        elif kept:
            lines.append(line.with_options(kept))
        elif line.comment:
            lines.append(line.as_comment())
    return script.replace_lines(lines)


def append_directive(script: Script, options: Sequence[Parsed]) -> Script:
    """Add a directive after the last one (or after the shebang): sbatch reads only the leading block."""
    lines = list(script.lines)
    last = max((i for i, _ in script.directives()), default=0 if lines and lines[0].kind == Kind.SHEBANG else -1)
    lines.insert(last + 1, directive_line(options))
    return script.replace_lines(lines)


def new_option(name: str, value: str | None) -> Parsed:
    return Parsed(f"--{name}", BY_NAME[name], value)


def set_body_line(script: Script, index: int, text: str) -> Script:
    lines = list(script.lines)
    lines[index] = lines[index].with_text(text)
    return script.replace_lines(lines)


def set_gres(script: Script, entries: Sequence[Gres]) -> Script:
    """The job's --gres set to ``entries``: in the first --gres directive (dropping any other), else a new one."""
    value = ",".join(g.render() for g in entries)
    if not script.has("gres"):
        return append_directive(script, [new_option("gres", value)])
    done = False

    def visit(line: Line, parsed: Parsed) -> list[Parsed] | None:
        nonlocal done
        if parsed.name != "gres":
            return None
        if done:
            return []
        done = True
        return [new_option("gres", value)]

    return rewrite(script, visit)
