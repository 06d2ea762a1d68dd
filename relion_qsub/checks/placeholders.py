"""Placeholders and empty boxes: what RELION leaves in a script when a GUI box is empty or has no value.

RELION fills its placeholders in RelionJob::saveJobSubmissionScript (src/pipeline_jobs.cpp); an XXXextraNXXX whose
RELION_QSUB_EXTRAn is unset stays in the script literally, and an empty box leaves ``--opt=`` behind.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..relion import gui
from ..relion.gui import ANY_PLACEHOLDER, RELION_PLACEHOLDER
from ..relion.gui import why_unfilled as _why_relion
from ..script import Line, Script, shell_words
from ..slurm.options import BY_NAME, BY_SHORT, REQUIRED, Parsed, clip, comma_runs, index_of
from .core import Context, Report, body_lines, implements, rewrite, set_body_line


def why_unfilled(found: str) -> str:
    """Why the placeholder ``found`` is left, and the fix; for one RELION never fills, the profile's way too."""
    why = _why_relion(found)
    if RELION_PLACEHOLDER.fullmatch(found) or (found[3:8] == "extra" and found[8:-3].isdigit()):
        return why
    return f"{why}, or declare it in the site profile's [placeholders.{found[3:-3]}] to have relion-qsub fill it"


# NAME=value before a command: the shell's environment prefix.
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=\S*")


@implements("unfilled_placeholder")
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

    return rewrite(script, visit)


@implements("empty_directive")
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

    out = rewrite(script, visit)
    bare = [line for _, line in out.directives() if not line.options and not line.comment]
    if bare and report.repairs:
        # sbatch itself ignores a bare "#SBATCH"; drop them so that the script says only what it means.
        for line in bare:
            report.fixed(line.number, gui.BARE_DIRECTIVE)
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


@implements("partly_empty")
def partly_empty(script: Script, ctx: Context, report: Report) -> Script:
    def visit(line: Line, parsed: Parsed) -> list[Parsed] | None:
        value = parsed.value
        if (
            parsed.option is not None
            and value
            and value.endswith(",")
            and index_of(line.options, parsed) in comma_runs(line.options)
        ):
            return None  # no empty box: a space after the comma (the typo check says so, once)
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

    return rewrite(script, visit)


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


def environment_prefix(word: str) -> bool:
    """``NAME=value`` before a command (the shell's environment prefix)."""
    return _ASSIGNMENT.fullmatch(word) is not None


def launcher_option_words(text: str, launchers: Sequence[str]) -> list[tuple[int, int, str]]:
    """The launcher's own option words on a command line (empty when the line's program is no launcher).

    They run from the word after the launcher to its first operand: the program it starts. An option's separate
    argument (``srun -n 4``) is skipped by sbatch's table (srun shares sbatch's resource options), so ``4`` does not
    end the scan; an option srun has and sbatch lacks (``--mpi=pmix``) is always written attached.
    """
    words = shell_words(text)
    i = 0
    while i < len(words) and (words[i][2] in _PREFIX_WORDS or environment_prefix(words[i][2])):
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
    return bool(eq) and name.startswith("--") and gui.unset_value(value) is not None


@implements("launcher_options")
def launcher_options(script: Script, ctx: Context, report: Report) -> Script:
    launchers = (*ctx.site.launchers, "srun")
    for index, line in body_lines(script):
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
            script = set_body_line(script, index, text)
    return script


@implements("body_placeholder")
def body_placeholders(script: Script, ctx: Context, report: Report) -> Script:
    for _, line in body_lines(script):
        match = ANY_PLACEHOLDER.search(line.text)
        if match and not line.text.lstrip().startswith("#"):
            report.problem(line.number, f"{match.group()} is unfilled in a command: {why_unfilled(match.group())}")
    return script
