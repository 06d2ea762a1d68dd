"""Normalisation rules: small pure functions from a script to a script plus the changes they made.

Each rule serves exactly one site policy key and is named after it (``scratch_job_id`` -> rule ``scratch-job-id``);
the name and a one-line reason are shown with every change it reports. What a rule does when it fires is the
site's policy for its key (``site.Site.action``): "fix" repairs and says so, "warn" repairs where a repair exists (and
otherwise only says so), "error" refuses the script with the fix in one sentence and repairs nothing, "off" does
nothing. A rule never reads another key's policy, so each key alone switches its behaviour (issue 11).
Rules are idempotent: normalising a normalised script changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from . import gpus, quiet
from .script import Kind, Line, Script, directive_line, foreign_directives, lookalikes, shell_words
from .site import Site
from .slurm.options import BY_NAME, BY_SHORT, NONE, REQUIRED, Parsed, clip, nearest, parse_words, site_table

TYPE_CHECKING = False  # not typing's: importing typing costs the submit path ~2 ms
if TYPE_CHECKING:
    from .boxes import Boxes

FIXED, WARNING, ERROR = "fixed", "warning", "error"

# RELION's placeholders (RelionJob::saveJobSubmissionScript); an XXXextraNXXX whose RELION_QSUB_EXTRAn is unset
# stays in the script literally.
# (A pattern string, compiled by re's cache on first use: only a message needs it, and the submit path's start-up
# is the budget.)
RELION_PLACEHOLDER = r"XXX(?:mpinodes|threads|cores|dedicated|nodes|name|errfile|outfile|queue|command|extra\d+)XXX"
# Any XXXwordXXX: a template for a patched RELION may carry one RELION never fills (XXXqosXXX).
ANY_PLACEHOLDER = re.compile(r"XXX[a-z]\w*?XXX")


def why_unfilled(placeholder: str) -> str:
    """Why RELION left ``placeholder`` in the script, and what to do about it."""
    name = placeholder[3:-3]
    if name.startswith("extra") and name[5:].isdigit():
        return (
            f"RELION_QSUB_{name.upper()} is not set in RELION's environment, so RELION shows no box for it and "
            f"leaves {placeholder} (set it, e.g. with `module load relion-qsub`, or remove {placeholder} from the "
            "template)"
        )
    if re.fullmatch(RELION_PLACEHOLDER, placeholder):
        return f"RELION fills {placeholder} in every script it writes, so this one was not written by RELION's Run"
    return (
        f"{placeholder} is not a placeholder RELION fills (a template for a patched RELION?): put a value there, "
        "or a box of its own (XXXextraNXXX with RELION_QSUB_EXTRAn set)"
    )


MEMORY = ("mem", "mem-per-cpu", "mem-per-gpu")
# relion_refine(_mpi) is the only RELION program that takes --scratch_dir (RELION 3.1-5.0).
REFINE = re.compile(r"(?:(?<=^)|(?<=[\s`/]))relion_refine(?:_mpi)?(?=[\s`;]|$)`?")


# Slotted classes, not dataclasses: importing dataclasses (and with it inspect) would cost the submit path more
# start-up time than all of its work (benchmarks/bench_check.py).


class Change:
    __slots__ = ("action", "line", "message", "reason", "rule")

    def __init__(self, rule: str, action: str, line: int, message: str, reason: str) -> None:
        self.rule = rule
        self.action = action  # FIXED, WARNING or ERROR
        self.line = line  # line number in the original script; 0 when it concerns the whole script
        self.message = message
        self.reason = reason

    def __repr__(self) -> str:
        return f"Change({self.rule!r}, {self.action!r}, {self.line}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Change):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[str, str, int, str]:
        return (self.rule, self.action, self.line, self.message)

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{self.action}: {where}{self.message} [{self.rule}: {self.reason}]"


class Context:
    __slots__ = ("_boxes", "cli_options", "site")

    def __init__(self, site: Site, cli_options: tuple[Parsed, ...] = (), boxes: Boxes | None = None) -> None:
        self.site = site
        self.cli_options = cli_options  # sbatch options given on relion-qsub's command line: they win
        self._boxes = boxes  # which GUI box filled which line; from the environment on first use

    @property
    def boxes(self) -> Boxes:
        if self._boxes is None:
            import os

            from .boxes import from_environment

            self._boxes = from_environment(os.environ)
        return self._boxes

    def box_for(self, number: int, text: str | None = None) -> str | None:
        """The GUI box that filled script line ``number``, by the template's own labels, if that can be known."""
        return self.boxes.for_line(number, text)

    def cli_value(self, name: str) -> str | None:
        found = [p.value for p in self.cli_options if p.name == name]
        return found[-1] if found else None

    def cli_has(self, name: str) -> bool:
        return any(p.name == name for p in self.cli_options)


class Report:
    """What one rule found, written against its policy."""

    __slots__ = ("action", "changes", "reason", "rule")

    def __init__(self, rule: str, reason: str, action: str) -> None:
        self.rule, self.reason, self.action = rule, reason, action
        self.changes: list[Change] = []

    def fixed(self, line: int, message: str, refused: str | None = None) -> None:
        """A repair; under "error" it is a refusal instead, worded ``refused`` (the driver then drops the repair)."""
        if self.action == "error":
            self.changes.append(Change(self.rule, ERROR, line, refused or message, self.reason))
            return
        self.changes.append(Change(self.rule, WARNING if self.action == "warn" else FIXED, line, message, self.reason))

    def problem(self, line: int, message: str) -> None:
        """A finding with no repair: an error or a warning, as the policy says."""
        self.changes.append(Change(self.rule, ERROR if self.action == "error" else WARNING, line, message, self.reason))

    def refuse(self, line: int, message: str) -> None:
        """A finding sbatch (or the job) cannot survive, whatever the policy says short of "off"."""
        self.changes.append(Change(self.rule, ERROR, line, message, self.reason))

    @property
    def repairs(self) -> bool:
        return self.action in ("fix", "warn")


RuleFunc = Callable[[Script, Context, Report], Script]


class Rule:
    __slots__ = ("check", "func", "name", "reason")

    def __init__(self, name: str, check: str, reason: str, func: RuleFunc) -> None:
        self.name = name  # the policy key with dashes (tests/test_policy_keys.py holds every rule to it)
        self.check = check  # the one site policy key this rule serves
        self.reason = reason
        self.func = func


# The registry, in the order the rules run: repairs of the script's text first, then the checks of what it asks.
RULES: list[Rule] = []


def rule(name: str, check: str, reason: str) -> Callable[[RuleFunc], RuleFunc]:
    """Register a rule for policy key ``check`` (a key of ``site.DEFAULT_POLICY``); appended to :data:`RULES`."""

    def register(func: RuleFunc) -> RuleFunc:
        RULES.append(Rule(name, check, reason, func))
        return func

    return register


# ---------------------------------------------------------------------------------------------- helpers


def _rewrite(script: Script, visit: Callable[[Line, Parsed], list[Parsed] | None]) -> Script:
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


def _append_directive(script: Script, options: Sequence[Parsed]) -> Script:
    """Add a directive after the last one (or after the shebang): sbatch reads only the leading block."""
    lines = list(script.lines)
    last = max((i for i, _ in script.directives()), default=0 if lines and lines[0].kind == Kind.SHEBANG else -1)
    lines.insert(last + 1, directive_line(options))
    return script.replace_lines(lines)


def _option(name: str, value: str | None) -> Parsed:
    return Parsed(f"--{name}", BY_NAME[name], value)


def effective(script: Script, ctx: Context, name: str) -> str | None:
    """The value sbatch will use for ``name``: the command line wins over the script, the last directive wins."""
    if ctx.cli_has(name):
        return ctx.cli_value(name)
    return script.last(name)


def _assignment(word: str) -> bool:
    """``NAME=value`` before a command (the shell's environment prefix). String tests, not a regex: each pattern
    compiled costs the submit path ~0.1 ms, and this runs on every job."""
    name, eq, value = word.partition("=")
    return (
        bool(eq)
        and name[:1].isascii()
        and (name[:1].isalpha() or name[:1] == "_")
        and not any(c.isspace() for c in value)
        and all(c == "_" or (c.isascii() and c.isalnum()) for c in name)
    )


def _int(value: str | None) -> int | None:
    """An integer option value; a node range "2-4" counts as its minimum."""
    if value is None:
        return None
    digits = value.lstrip()
    end = next((i for i, c in enumerate(digits) if not ("0" <= c <= "9")), len(digits))  # no regex: see _assignment
    return int(digits[:end]) if end else None


class Gres:
    __slots__ = ("count", "name", "text", "type")

    def __init__(self, name: str, type: str | None, count: int | None, text: str) -> None:
        self.name, self.type, self.count, self.text = name, type, count, text

    def __repr__(self) -> str:
        return f"Gres({self.text!r})"

    @classmethod
    def parse(cls, text: str) -> Gres:
        # --gres=name[[:type]:count]; a count may carry a K/M/G suffix, which we keep verbatim.
        parts = text.split(":")
        count = int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else None
        if count is not None:
            parts = parts[:-1]
        return cls(parts[0], parts[1] if len(parts) > 1 else None, count, text)

    def render(self) -> str:
        return ":".join([self.name, *([self.type] if self.type else []), *([str(self.count)] if self.count else [])])


def gres_entries(script: Script, ctx: Context) -> list[Gres]:
    value = effective(script, ctx, "gres")
    if not value or value == "none":
        return []
    return [Gres.parse(item) for item in value.split(",") if item]


def _body_lines(script: Script) -> Iterable[tuple[int, Line]]:
    for index in range(script.body_start, len(script.lines)):
        yield index, script.lines[index]


def _set_body_line(script: Script, index: int, text: str) -> Script:
    lines = list(script.lines)
    lines[index] = lines[index].with_text(text)
    return script.replace_lines(lines)


# ---------------------------------------------------------------------------------------------- rules


@rule(
    "ignored-directive",
    "ignored_directive",
    "sbatch reads #SBATCH only at column 0, before the first command",
)
def ignored_directives(script: Script, ctx: Context, report: Report) -> Script:
    for line in lookalikes(script):
        where = "after the first command" if line.kind == Kind.BODY else "not written exactly '#SBATCH' at column 0"
        report.problem(
            line.number,
            f"{clip(line.text.strip(), 120)!r} is {where}, so sbatch ignores it; move it into the directive block "
            "at the top",
        )
    return script


_SLURM_TEMPLATE = (
    "#SBATCH --ntasks=XXXmpinodesXXX --cpus-per-task=XXXthreadsXXX --partition=XXXqueueXXX "
    "--output=XXXoutfileXXX --error=XXXerrfileXXX"
)


@rule(
    "foreign-scheduler",
    "foreign_scheduler",
    "sbatch reads only #SBATCH lines: a job written for another batch system runs on 1 CPU, its output in "
    "slurm-N.out, and RELION shows it Running forever",
)
def foreign_scheduler(script: Script, ctx: Context, report: Report) -> Script:
    found = foreign_directives(script)
    if not found or any(True for _ in script.directives()):
        return script
    line, system = found[0]
    default = " (RELION's default qsub.csh)" if "-pe" in line.text and script.lines[0].text.endswith("csh") else ""
    report.problem(
        line.number,
        f"this is a template for {system}{default}, not Slurm ({clip(line.text.strip())!r} and no #SBATCH line): "
        f"set 'Standard submission script' (RELION_QSUB_TEMPLATE) to a Slurm template, e.g. one with "
        f"'{_SLURM_TEMPLATE}'",
    )
    return script


@rule(
    "foreign-directive",
    "foreign_directive",
    "sbatch ignores #$ lines and translates only some #PBS/#BSUB options (man sbatch, --ignore-pbs)",
)
def foreign_directive(script: Script, ctx: Context, report: Report) -> Script:
    found = foreign_directives(script)
    if not found or not any(True for _ in script.directives()):
        return script  # no Slurm directive at all: foreign_scheduler's finding
    line, system = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    report.problem(
        line.number,
        f"{clip(line.text.strip())!r}{more} is {'an' if system[0] in 'AEIOSL' else 'a'} {system} directive in a Slurm "
        "script; write what it asks as "
        "#SBATCH options (or delete it)",
    )
    return script


@rule(
    "unfilled-placeholder",
    "unfilled_placeholder",
    "RELION leaves a placeholder it does not fill in the script literally (XXXextraNXXX when RELION_QSUB_EXTRAn is "
    "not set; XXXqosXXX of a patched RELION's template always)",
)
def unfilled_directives(script: Script, ctx: Context, report: Report) -> Script:
    def visit(line: Line, parsed: Parsed) -> list[Parsed] | None:
        text = parsed.spelled + ("=" + parsed.value if parsed.value is not None and parsed.option else "")
        match = ANY_PLACEHOLDER.search(text)
        if match is None:
            return None
        if report.repairs:
            report.fixed(line.number, f"dropped {clip(text)!r}: {why_unfilled(match.group())}")
            return []
        report.problem(line.number, f"{clip(text)!r} is left unfilled: {why_unfilled(match.group())}")
        return None

    return _rewrite(script, visit)


@rule(
    "empty-directive",
    "empty_directive",
    "an option with no value makes sbatch fail (e.g. --gres= is an invalid TRES specification, relion issue 877)",
)
def empty_directives(script: Script, ctx: Context, report: Report) -> Script:
    def visit(line: Line, parsed: Parsed) -> list[Parsed] | None:
        if parsed.option is None or parsed.option.arg is not REQUIRED or parsed.value is None:
            return None
        if parsed.value.strip():
            return None
        report.fixed(
            line.number,
            f"dropped the empty '--{parsed.option.name}=' (the GUI field was left empty)",
            f"'--{parsed.option.name}=' is empty (the GUI field was left empty): give it a value or remove it",
        )
        return []

    out = _rewrite(script, visit)
    bare = [line for _, line in out.directives() if not line.options and not line.comment]
    if bare and report.repairs:
        # sbatch itself ignores a bare "#SBATCH"; drop them so that the script says only what it means.
        for line in bare:
            report.fixed(line.number, quiet.BARE_DIRECTIVE)
        out = out.replace_lines([line for line in out.lines if all(line is not b for b in bare)])
    return out


# Options whose value holds a number (a count, a size, a duration): one without any digit lost it to an empty box
# (`--mem=XXXextra2XXXGB` with the box cleared is `--mem=GB`), and so did one that starts or ends with its separator
# (`--time=XXXextra1XXX:00:00` -> `:00:00`). A --gres list loses an item: `--gres=gpu:XXXextra4XXX` -> `gpu:`.
# Only what sbatch 22.05 refuses ("Invalid --mem specification", "Invalid generic resource (gres) specification";
# tests/test_sites.py asks the real sbatch): a trailing "," in --partition or "&" in --constraint it accepts.
_NUMERIC = frozenset(
    (
        "mem", "mem-per-cpu", "mem-per-gpu", "tmp", "time", "time-min", "ntasks", "nodes", "ntasks-per-node",
        "cpus-per-task", "cpus-per-gpu", "mincpus", "gpus", "gpus-per-node", "gpus-per-task", "ntasks-per-gpu",
    )
)  # fmt: skip


def _lost_part(name: str, value: str) -> bool:
    if name in _NUMERIC:
        return not any(ch.isdigit() for ch in value) or value.startswith(":") or value.endswith((":", "-"))
    gap = (
        value.startswith((":", ",")) or value.endswith((":", ",")) or any(p in value for p in ("::", ",,", ":,", ",:"))
    )
    return name == "gres" and gap


@rule(
    "partly-empty",
    "partly_empty",
    "a value the template builds around a GUI box (--mem=XXXextra2XXXGB) is broken when the box is left empty "
    "(--mem=GB), and sbatch refuses it",
)
def partly_empty(script: Script, ctx: Context, report: Report) -> Script:
    def visit(line: Line, parsed: Parsed) -> list[Parsed] | None:
        value = parsed.value
        if parsed.option is None or not value or not value.strip() or not _lost_part(parsed.option.name, value):
            return None
        text = f"--{parsed.option.name}={value}"
        box = ctx.box_for(line.number, line.text)
        report.fixed(
            line.number,
            f"dropped {clip(text)!r}: part of its value is missing, so {box or 'the GUI box that fills it'} was "
            "left empty",
            f"{clip(text)!r} is missing part of its value: fill {box or 'the GUI box that fills it'}",
        )
        return []

    return _rewrite(script, visit)


@rule("typo", "typo", "sbatch stops at the first unknown option ('unrecognized option')")
def typos(script: Script, ctx: Context, report: Report) -> Script:
    def visit(line: Line, parsed: Parsed) -> list[Parsed] | None:
        if parsed.problem is None:
            return None
        if parsed.guess is not None and report.repairs:
            report.fixed(
                line.number, f"'{clip(parsed.spelled)}' is not an sbatch option; read it as '--{parsed.guess.name}'"
            )
            return [Parsed(f"--{parsed.guess.name}", parsed.guess, parsed.value)]
        hint = ""
        box = ctx.box_for(line.number, line.text)
        where = box or profile_box(ctx, "") or "the template (or the GUI box it came from)"
        if parsed.spelled.startswith("--") and parsed.option is None and "ambiguous" not in parsed.problem:
            word = parsed.spelled[2:]
            # Suggest only what a slip of the keyboard could have produced; far matches are noise.
            close = [f"--{name}" for d, name in nearest(word, 3) if d <= max(ctx.site.typo_distance, len(word) // 3)]
            hint = (
                f"; did you mean {' or '.join(close)}?"
                if close
                else f": remove it from {where} (`man sbatch` lists the options sbatch knows; a site plugin's "
                "option belongs in the profile's [site_options])"
            )
        elif "requires an argument" in parsed.problem:
            hint = "; give it a value or remove it"
        elif parsed.spelled and not parsed.spelled.startswith("-"):
            from .blame import stray_word_hint  # only for this message

            hint = stray_word_hint(ctx.site, line, parsed, box)
        report.refuse(line.number, f"{parsed.problem}{hint}")
        return None

    return _rewrite(script, visit)


# Words before the launcher that leave it the program of the line (`exec srun ...`, `OMP_NUM_THREADS=4 srun ...`).
_PREFIX_WORDS = ("exec", "time", "command")


def _is_launcher(word: str, launchers: Sequence[str]) -> bool:
    """``${RELION_STD_LAUNCHER}``, ``"$RELION_STD_LAUNCHER"``, ``/usr/bin/srun``: the word names a launcher."""
    bare = word.strip("\"'")
    if bare.startswith("${") and bare.endswith("}"):
        bare = bare[2:-1]
    elif bare.startswith("$"):
        bare = bare[1:]
    return bare.rsplit("/", 1)[-1] in launchers


def launcher_option_words(text: str, launchers: Sequence[str]) -> list[tuple[int, int, str]]:
    """The launcher's own option words on a command line (empty when the line's program is no launcher).

    They run from the word after the launcher to its first operand: the program it starts. An option's separate
    argument (``srun -n 4``) is skipped by sbatch's table (srun shares sbatch's resource options), so ``4`` does not
    end the scan; an option srun has and sbatch lacks (``--mpi=pmix``) is always written attached.
    """
    words = shell_words(text)
    i = 0
    while i < len(words) and (words[i][2] in _PREFIX_WORDS or _assignment(words[i][2])):
        i += 1
    if i >= len(words) or not _is_launcher(words[i][2], launchers):
        return []
    options = []
    i += 1
    while i < len(words) and words[i][2].startswith("-") and words[i][2] != "--":
        word = words[i][2]
        options.append(words[i])
        name = word[2:] if word.startswith("--") else word[1:2]
        option = BY_NAME.get(name) if word.startswith("--") else BY_SHORT.get(name)
        takes_next = "=" not in word and option is not None and option.arg is REQUIRED
        takes_next = takes_next and (word.startswith("--") or len(word) == 2)
        i += 2 if takes_next else 1
    return options


def _empty_value(word: str) -> bool:
    name, eq, value = word.partition("=")
    return bool(eq) and name.startswith("--") and (not value.strip("\"'") or ANY_PLACEHOLDER.search(value) is not None)


@rule(
    "launcher-options",
    "launcher_options",
    "the launcher line repeats GUI fields (--mem-per-cpu=XXXextra2XXX): an empty or unfilled value makes srun fail",
)
def launcher_options(script: Script, ctx: Context, report: Report) -> Script:
    launchers = (*ctx.site.launchers, "srun")
    for index, line in _body_lines(script):
        text = line.text
        bad = [(start, end, word) for start, end, word in launcher_option_words(text, launchers) if _empty_value(word)]
        for start, end, word in reversed(bad):
            # Remove the word and the blanks before it: every other byte of the line (quotes, spacing) stays.
            before = len(text[:start].rstrip())
            text = text[:before] + text[end:]
            report.fixed(
                line.number,
                f"removed {word!r} from the launcher line (no value)",
                f"{word!r} on the launcher line has no value: fill the GUI field or remove it",
            )
        if bad:
            script = _set_body_line(script, index, text)
    return script


@rule("body-placeholder", "body_placeholder", "a command with RELION's XXX...XXX left in cannot run")
def body_placeholders(script: Script, ctx: Context, report: Report) -> Script:
    for _, line in _body_lines(script):
        match = ANY_PLACEHOLDER.search(line.text)
        if match and not line.text.lstrip().startswith("#"):
            report.problem(line.number, f"{match.group()} is unfilled in a command: {why_unfilled(match.group())}")
    return script


@rule("memory-conflict", "memory_conflict", "Slurm refuses --mem together with --mem-per-cpu or --mem-per-gpu")
def memory(script: Script, ctx: Context, report: Report) -> Script:
    cli = [name for name in MEMORY if ctx.cli_has(name)]
    if cli:
        # Memory options are checked together (sbatch: "--mem, --mem-per-cpu, and --mem-per-gpu are mutually
        # exclusive"), so a command-line one must replace, not override, the script's.
        def drop_all(line: Line, parsed: Parsed) -> list[Parsed] | None:
            if parsed.name not in MEMORY:
                return None
            report.fixed(
                line.number,
                f"dropped --{parsed.name}={parsed.value}: --{cli[-1]} is given on the command line",
                f"--{parsed.name}={parsed.value} conflicts with --{cli[-1]} on the command line: remove one",
            )
            return []

        return _rewrite(script, drop_all)
    has = {name: script.has(name) for name in MEMORY}
    drop: set[str] = set()
    if has["mem"] and (has["mem-per-cpu"] or has["mem-per-gpu"]):
        drop.add("mem")
    if has["mem-per-cpu"] and has["mem-per-gpu"]:
        drop.add("mem-per-gpu")  # RELION's "Memory Per Thread" is --mem-per-cpu: keep the GUI's value
    if not drop:
        return script
    kept = "--mem-per-cpu" if has["mem-per-cpu"] else "--mem-per-gpu"

    def visit(line: Line, parsed: Parsed) -> list[Parsed] | None:
        if parsed.name not in drop:
            return None
        report.fixed(
            line.number,
            f"dropped --{parsed.name}={parsed.value}: {kept} is set",
            f"--{parsed.name}={parsed.value} and {kept} are both set: Slurm refuses the pair; remove one",
        )
        return []

    return _rewrite(script, visit)


@rule("duplicate-gres", "duplicate_gres", "with several --gres sbatch keeps only the last, silently losing the others")
def merge_gres(script: Script, ctx: Context, report: Report) -> Script:
    found = [(index, parsed) for index, _, parsed in script.options() if parsed.name == "gres"]
    if not found:
        return script
    merged: dict[tuple[str, str | None], Gres] = {}
    for _, parsed in found:
        for item in (parsed.value or "").split(","):
            if not item or item == "none":
                continue
            gres = Gres.parse(item)
            key = (gres.name, gres.type)
            old = merged.get(key)
            if old is not None and old.count != gres.count:
                keep = gres if (gres.count or 0) > (old.count or 0) else old
                report.fixed(
                    0,
                    f"--gres asks for {old.text} and {gres.text}; keeping the larger, {keep.text}",
                    f"--gres asks for {old.text} and {gres.text}: keep one",
                )
                gres = keep
            merged[key] = gres
    # "gpu:4" next to "gpu:p100:4": the typed request says more; keep it.
    for name, kind in list(merged):
        if kind is None and any(n == name and t is not None for n, t in merged):
            report.fixed(
                0,
                f"dropped untyped {merged[(name, None)].text}: a typed {name} request is also given",
                f"untyped {merged[(name, None)].text} next to a typed {name} request: keep one",
            )
            del merged[(name, None)]
    value = ",".join(g.render() for g in merged.values())
    if not merged or (len(found) == 1 and value == found[0][1].value):
        return script  # nothing to merge (or an explicit --gres=none): leave the user's text alone
    if len(found) > 1:
        report.fixed(
            script.lines[found[0][0]].number,
            f"merged {len(found)} --gres directives into --gres={value}",
            f"{len(found)} --gres directives: sbatch keeps only the last; write one --gres={value}",
        )
    first = found[0][1]

    def visit(line: Line, parsed: Parsed) -> list[Parsed] | None:
        if parsed.name != "gres":
            return None
        return [_option("gres", value)] if parsed is first else []

    return _rewrite(script, visit)


def _where_given(script: Script, ctx: Context, index: int, parsed: Parsed) -> str:
    line = script.lines[index]
    box = ctx.box_for(line.number, line.text)
    return f"line {line.number}{f' from {box}' if box else ''}: {clip(str(parsed.value), 30)}"


@rule(
    "repeated-option",
    "repeated_option",
    "sbatch keeps only the last of a repeated option, silently dropping the others (--gres is merged by "
    "duplicate_gres); warn, not fix: which value was meant is the user's call",
)
def repeated_option(script: Script, ctx: Context, report: Report) -> Script:
    seen: dict[str, list[tuple[int, Parsed]]] = {}
    for index, _, parsed in script.options():
        option = parsed.option
        if option is None or parsed.problem or option.arg is NONE or option.name == "gres":
            continue
        seen.setdefault(option.name, []).append((index, parsed))
    for name, given in seen.items():
        values = [p.value for _, p in given]
        if len(set(values)) < 2 or ctx.cli_has(name):
            continue  # the same value twice changes nothing; the command line overrides them all anyway
        shown = ", ".join(_where_given(script, ctx, index, p) for index, p in given)
        join = " (or ask for both in one, e.g. --constraint='a&b')" if name == "constraint" else ""
        report.problem(
            script.lines[given[-1][0]].number,
            f"--{name} is given {len(given)} times ({shown}); sbatch uses only the last, "
            f"{clip(str(values[-1]), 30)}: keep the one you mean{join}",
        )
    return script


def _set_gres(script: Script, entries: Sequence[Gres]) -> Script:
    value = ",".join(g.render() for g in entries)
    if not script.has("gres"):
        return _append_directive(script, [_option("gres", value)])
    done = False

    def visit(line: Line, parsed: Parsed) -> list[Parsed] | None:
        nonlocal done
        if parsed.name != "gres":
            return None
        if done:
            return []
        done = True
        return [_option("gres", value)]

    return _rewrite(script, visit)


_SCRATCH_ARG = re.compile(r"(?<!\S)--scratch_dir(?:=|\s+)(\"[^\"]*\"|'[^']*'|\S+)")


_SCRATCH_REASON = "relion_refine copies particles to --scratch_dir; without it every rank reads the shared filesystem"
# Lines that only show a command (an echo of XXXcommandXXX into the log) run nothing: no scratch finding there.
_SHOWS = ("echo", "printf", ":", "logger")


class Refine:
    """One command line that runs relion_refine(_mpi), and what it says about scratch."""

    __slots__ = ("index", "line", "match", "path", "preread")

    def __init__(self, index: int, line: Line, match: re.Match[str], path: str | None, preread: bool) -> None:
        self.index, self.line, self.match, self.path, self.preread = index, line, match, path, preread


def refines(script: Script) -> list[Refine]:
    found = []
    for index, line in _body_lines(script):
        match = REFINE.search(line.text)
        words = line.text.split()
        if match is None or not words or words[0] in _SHOWS:
            continue
        arg = _SCRATCH_ARG.search(line.text)
        found.append(
            Refine(index, line, match, arg.group(1).strip("\"'") if arg else None, "--preread_images" in words)
        )
    return found


def _has_scratch_gres(script: Script, ctx: Context) -> bool:
    return any(g.name == ctx.site.scratch.gres for g in gres_entries(script, ctx))


@rule(
    "scratch-gres",
    "scratch_gres",
    "a --scratch_dir under the site's local scratch is empty unless the job allocates it (gres)",
)
def scratch_gres(script: Script, ctx: Context, report: Report) -> Script:
    site = ctx.site.scratch
    if _has_scratch_gres(script, ctx):
        return script
    for r in refines(script):
        under_root = r.path is not None and (r.path == site.root or r.path.startswith(site.root.rstrip("/") + "/"))
        if under_root and not r.preread:
            entry = Gres(site.gres, None, site.min_gb, f"{site.gres}:{site.min_gb}")
            report.fixed(
                r.line.number,
                f"--scratch_dir is under {site.root} but no {site.gres} was allocated: added --gres "
                f"{site.gres}:{site.min_gb} (the site minimum; allocate more for large data sets)",
                f"--scratch_dir is under {site.root} but no {site.gres} is allocated: add {site.gres}:N (GB) "
                "to the Gres box",
            )
            return _set_gres(script, [*gres_entries(script, ctx), entry])
    return script


@rule(
    "scratch-inject",
    "scratch_inject",
    _SCRATCH_REASON + "; the job allocates local scratch, so relion-qsub can name it",
)
def scratch_inject(script: Script, ctx: Context, report: Report) -> Script:
    site = ctx.site.scratch
    if not _has_scratch_gres(script, ctx):
        return script
    for r in refines(script):
        if r.path is not None or r.preread:
            continue
        text = r.line.text[: r.match.end()] + f" --scratch_dir {site.job_dir}" + r.line.text[r.match.end() :]
        script = _set_body_line(script, r.index, text)
        report.fixed(
            r.line.number,
            f"added --scratch_dir {site.job_dir} to {r.match.group().strip('`')}: the job allocates {site.gres}",
            f"the job allocates {site.gres} but {r.match.group().strip('`')} has no --scratch_dir: set 'Copy "
            f"particles to scratch directory' to {site.job_dir}",
        )
    return script


@rule(
    "scratch-job-id",
    "scratch_job_id",
    "a scratch path without the job id is shared by the jobs on a node: each wipes the other's copy (relion issue 455)",
)
def scratch_job_id(script: Script, ctx: Context, report: Report) -> Script:
    for r in refines(script):
        if r.path is not None and not r.preread and "SLURM_JOB_ID" not in r.path:
            report.problem(
                r.line.number,
                f"--scratch_dir {r.path} has no $SLURM_JOB_ID: two jobs on one node would wipe each other's copy; "
                f"use {ctx.site.scratch.job_dir}",
            )
    return script


@rule("scratch-missing", "scratch_missing", _SCRATCH_REASON + " (the site asks RELION jobs to use local scratch)")
def scratch_missing(script: Script, ctx: Context, report: Report) -> Script:
    site = ctx.site.scratch
    if _has_scratch_gres(script, ctx):
        return script
    bare = [r for r in refines(script) if r.path is None and not r.preread]
    if bare:  # once per script: every command of the job reads the same particles
        report.problem(
            bare[0].line.number,
            f"no local scratch: add {site.gres}:N (GB, at least the particle data) to Gres and "
            f"{site.job_dir} to 'Copy particles to scratch directory'",
        )
    return script


@rule("scratch-preread", "scratch_preread", "relion_refine ignores --scratch_dir when it pre-reads the particles")
def scratch_preread(script: Script, ctx: Context, report: Report) -> Script:
    for r in refines(script):
        if r.path is not None and r.preread:
            report.problem(
                r.line.number,
                "--scratch_dir is ignored with --preread_images (RELION reads the particles into memory instead)",
            )
    return script


@rule("ntasks-mismatch", "ntasks_mismatch", "the MPI layout must add up: --ntasks = --nodes x --ntasks-per-node")
def layout(script: Script, ctx: Context, report: Report) -> Script:
    ntasks = _int(effective(script, ctx, "ntasks"))
    nodes = _int(effective(script, ctx, "nodes"))
    per_node = _int(effective(script, ctx, "ntasks-per-node"))
    if ntasks is not None and nodes is not None and per_node is not None and ntasks != nodes * per_node:
        report.problem(
            0,
            f"--ntasks={ntasks} but --nodes={nodes} x --ntasks-per-node={per_node} = "
            f"{nodes * per_node}: set 'Number of MPI procs' to {nodes * per_node} or change --nodes/--ntasks-per-node "
            f"in {ctx.boxes.for_option('nodes') or profile_box(ctx, '') or 'the template'}",
        )
    return script


def _gpu(script: Script, ctx: Context) -> Gres | None:
    found = next((g for g in gres_entries(script, ctx) if g.name == "gpu"), None)
    asked = gpus.per_node(lambda name: effective(script, ctx, name)) if found is None else None
    return Gres("gpu", *asked) if asked is not None else found  # --gpus* count as GPUs in every GPU rule


def _tasks_per_node(script: Script, ctx: Context) -> int | None:
    per_node = _int(effective(script, ctx, "ntasks-per-node"))
    if per_node is None and _int(effective(script, ctx, "nodes")) == 1:
        per_node = _int(effective(script, ctx, "ntasks"))
    return per_node


@rule(
    "tasks-per-gpu",
    "tasks_per_gpu",
    "more ranks on a node than its GPUs + 1 leader overload the GPUs "
    "(CudaCustomAllocator out of memory; MotionCor2 'All GPUs are in use')",
)
def gpu_tasks(script: Script, ctx: Context, report: Report) -> Script:
    gpu, per_node = _gpu(script, ctx), _tasks_per_node(script, ctx)
    if gpu and gpu.count and per_node and per_node > gpu.count + 1:
        report.problem(
            0,
            f"{per_node} tasks per node but {gpu.count} GPUs per node: use at most {gpu.count + 1} "
            f"(--ntasks-per-node={gpu.count + 1} with 'Number of MPI procs' = nodes x {gpu.count + 1})",
        )
    return script


@rule(
    "threads-per-gpu",
    "threads_per_gpu",
    "too many threads per GPU hang the node (the profile's [gpu_types] safe_threads)",
)
def gpu_threads(script: Script, ctx: Context, report: Report) -> Script:
    gpu = _gpu(script, ctx)
    threads = _int(effective(script, ctx, "cpus-per-task"))
    ranks = _int(effective(script, ctx, "ntasks")) or 1
    if gpu is None or gpu.type is None or not gpu.count or threads is None or ranks < 2:
        # A single process (VDAM, InitialModel, subtomogram de novo) spreads its threads over every GPU of the
        # node; the seed recommends 16-64 threads there. The per-GPU limit is about MPI ranks, one GPU each.
        return script
    limit = ctx.site.gpu_safe_threads.get(gpu.type)
    workers = _tasks_per_node(script, ctx) or ranks
    if workers > gpu.count:
        workers -= 1  # the leader rank of a homogeneous+1 layout gets no GPU
    per_gpu = -(-threads // max(1, gpu.count // max(1, workers)))
    if limit is not None and per_gpu > limit:
        report.problem(
            0,
            f"{threads} threads per MPI rank put {per_gpu} threads on each {gpu.type} GPU; the safe "
            f"limit is {limit}: set 'Number of threads' to {limit * max(1, gpu.count // max(1, workers))}"
            " or fewer",
        )
    return script


@rule(
    "plus-one-launcher",
    "plus_one_launcher",
    "homogeneous+1 (odd --ntasks-per-node > 2 on several GPU nodes) needs the "
    "launcher that puts the leader rank alone-extra on the first node",
)
def plus_one(script: Script, ctx: Context, report: Report) -> Script:
    per_node, nodes = _int(effective(script, ctx, "ntasks-per-node")), _int(effective(script, ctx, "nodes"))
    if (
        _gpu(script, ctx) is None
        or per_node is None
        or nodes is None
        or nodes < 2
        or per_node <= 2
        or per_node % 2 == 0
    ):
        return script
    body = "\n".join(script.body())
    if any(word in body for word in (*ctx.site.launchers, "add_extra_MPI_task")):
        return script
    for _, line in _body_lines(script):
        if REFINE.search(line.text) or "_mpi" in line.text:
            report.problem(
                line.number,
                "this MPI command is not started through ${RELION_STD_LAUNCHER}: the leader "
                "rank will take a GPU slot; start it with ${RELION_STD_LAUNCHER}",
            )
            break
    return script


def _partitions(script: Script, ctx: Context) -> list[str]:
    """The partitions the job asks for (a comma list: Slurm takes the first that can run it)."""
    name = effective(script, ctx, "partition")
    return [p.strip() for p in (name or "").split(",") if p.strip()] if ctx.site.partitions else []


@rule("unknown-partition", "unknown_partition", "a partition the site does not have makes sbatch fail")
def unknown_partition(script: Script, ctx: Context, report: Report) -> Script:
    site = ctx.site
    unknown = [p for p in _partitions(script, ctx) if p not in site.partitions]
    if unknown:
        report.problem(
            0,
            f"partition {unknown[0]!r} is not one of this site's: set 'Queue name' to one of "
            f"{', '.join(sorted(site.partitions))}",
        )
    return script


@rule("gpu-partition", "gpu_partition", "GPUs exist only in the site's GPU partitions")
def gpu_partition(script: Script, ctx: Context, report: Report) -> Script:
    site = ctx.site
    gpu = _gpu(script, ctx)
    if gpu is None:
        return script
    for part_name in _partitions(script, ctx):
        part = site.partitions.get(part_name)
        if part is None:
            continue  # unknown_partition's finding
        if not part.gpu_types:
            report.problem(
                0,
                f"--gres={gpu.text} asks for GPUs but partition {part_name!r} has none: set 'Queue "
                f"name' to {' or '.join(site.gpu_partitions()) or 'a GPU partition'}",
            )
        elif gpu.type and gpu.type not in part.gpu_types:
            report.problem(0, f"partition {part_name!r} has no {gpu.type} GPUs: use one of {', '.join(part.gpu_types)}")
        elif gpu.count and part.gpus_per_node and gpu.count > part.gpus_per_node:
            report.problem(
                0,
                f"--gres={gpu.text} asks for {gpu.count} GPUs per node; partition {part_name!r} nodes "
                f"have {part.gpus_per_node}",
            )
    return script


_GPU_FLAG = r"(?<!\S)--gpu(?=\s|=|$)"  # compiled on first use (re's cache): only a job without GPUs needs it


def profile_box(ctx: Context, option: str) -> str | None:
    """The site profile's own GUI field for ``--option`` ("": its first directives box), as "the 'Label' box"."""
    found = next((lab for lab, opt in ctx.site.field_labels() if opt == option and lab), None)
    if found is None:
        return None
    from .blame import label  # only for a message: blame stays off the submit path otherwise

    return label(found)


def _gres_box(ctx: Context) -> str:
    """Where the user asks for a gres: the template's box for --gres, else the profile's field, else the template."""
    box = ctx.boxes.for_option("gres")
    if box is not None:
        return box or "the template (it has no box for --gres)"
    return profile_box(ctx, "gres") or "the template (or a box it has for #SBATCH options)"


@rule(
    "gpu-without-gres",
    "gpu_without_gres",
    "RELION started with --gpu on a job that allocates no GPU fails ('no CUDA-capable device')",
)
def gpu_without_gres(script: Script, ctx: Context, report: Report) -> Script:
    if _gpu(script, ctx) is not None or effective(script, ctx, "gpus") or effective(script, ctx, "gpus-per-node"):
        return script
    for _, line in _body_lines(script):
        if "relion_" in line.text and re.search(_GPU_FLAG, line.text):
            report.problem(
                line.number,
                f"the command uses --gpu but the job allocates no GPU: ask for --gres=gpu:N in {_gres_box(ctx)} "
                "(and a GPU 'Queue name'), or set 'Use GPU acceleration?' to No",
            )
            break
    return script


# ---------------------------------------------------------------------------------------------- driver


class Result:
    __slots__ = ("changes", "script")

    def __init__(self, script: Script, changes: tuple[Change, ...]) -> None:
        self.script, self.changes = script, changes

    @property
    def errors(self) -> list[Change]:
        return [c for c in self.changes if c.action == ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors


def normalise(script: Script, ctx: Context) -> Result:
    changes: list[Change] = []
    for r in RULES:
        action = ctx.site.action(r.check)
        if action == "off":
            continue
        report = Report(r.name, r.reason, action)
        repaired = r.func(script, ctx, report)
        if action != "error":  # a refusal repairs nothing: `check` shows the refused script as it was written
            script = repaired
        changes.extend(report.changes)
    return Result(script, tuple(changes))


def parse_cli_options(
    words: Sequence[str], max_distance: int = 2, site_options: Mapping[str, str] | None = None
) -> tuple[Parsed, ...]:
    return tuple(parse_words(words, max_distance, site_table(site_options) if site_options else None))
