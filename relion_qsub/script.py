"""The script model: a batch script as sbatch sees it, that renders back byte for byte.

sbatch reads directives as follows (src/sbatch/opt.c, ``_opt_batch_script`` and ``_get_argument``):
  * a directive is a line that starts, at column 0 and case-sensitively, with ``#SBATCH`` (so ``#SBATCH--x`` too);
  * every other line whose first non-blank character is ``#`` (or that is blank) is skipped;
  * the first other line is a command and ends the directive block: later ``#SBATCH`` lines are ignored;
  * a directive's text is split into words like a shell would: ``'`` and ``"`` group, a backslash escapes the next
    character, an unquoted ``#`` starts a comment; the words of all directives form one argv for getopt_long.
This module does the same and keeps each line's original text, so that a rule which changes nothing leaves the
script identical. Only lines a rule touched are rendered anew (``#SBATCH --name=value`` form).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

from .errors import ScriptError
from .slurm.options import Parsed, parse_words, site_table

MAGIC = "#SBATCH"
# Looks like a directive but sbatch ignores it: indented, "# SBATCH", "#sbatch". Not "# sbatch --mem=10g job.sh": a
# lower-case word after "# " is prose naming the sbatch command (sites' templates explain options that way).
_LOOKALIKE = re.compile(r"^\s*#(?:\s*SBATCH\b|sbatch\b)")


class Kind(enum.Enum):
    """What a line is to sbatch."""

    SHEBANG = "shebang"
    DIRECTIVE = "directive"
    COMMENT = "comment"  # a blank or comment line inside the directive block
    BODY = "body"


def split_words(text: str) -> tuple[list[str], str | None]:
    """Split a directive's text as sbatch's ``_get_argument`` does; return (words, trailing comment or None)."""
    words: list[str] = []
    current: list[str] = []
    in_word = False
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i + 1])
            in_word = True
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
            else:
                current.append(ch)
        elif ch in "\"'":
            quote = ch
            in_word = True
        elif ch == "#":
            if in_word:
                words.append("".join(current))
            return words, text[i:]
        elif ch.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            current.append(ch)
            in_word = True
        i += 1
    if quote:
        raise ScriptError(f"unterminated {quote} quote in directive {text.strip()!r}: close the quote")
    if in_word:
        words.append("".join(current))
    return words, None


# A shell word of a command line: unquoted characters, backslash escapes, '...' and "..." runs (with $(...) and
# backticks inside a word left as they are). Enough to find word boundaries; nothing is expanded.
_SHELL_WORD = re.compile(r"""(?:[^\s'"\\]|\\.|'[^']*'|"(?:[^"\\]|\\.)*")+""")


def shell_words(text: str) -> list[tuple[int, int, str]]:
    """The words of a command line as (start, end, text), so that a rule can change one word and no other byte."""
    return [(m.start(), m.end(), m.group()) for m in _SHELL_WORD.finditer(text)]


def quote_word(word: str) -> str:
    """Quote a word so that ``split_words`` gives it back unchanged."""
    if word and not re.search(r"[\s'\"\\#]", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_option(parsed: Parsed) -> str:
    """The canonical text of one option: ``--name=value`` (or ``--name``), as the user's spelling if unknown."""
    name = f"--{parsed.option.name}" if parsed.option else parsed.spelled
    if parsed.value is None:
        return quote_word(name)
    return quote_word(f"{name}={parsed.value}")


class Line(NamedTuple):
    """One line of the script; rules build new lines with the ``with_*`` methods."""

    kind: Kind
    text: str  # without the line terminator
    end: str  # "\n", "\r\n" or "" for a last line without a newline
    options: tuple[Parsed, ...] = ()  # for DIRECTIVE lines
    comment: str | None = None  # a directive's trailing "# ..." text
    number: int = 0  # 1-based line number in the original script; 0 for lines a rule added

    def __repr__(self) -> str:
        return f"Line({self.kind}, {self.text!r}, line {self.number})"

    def with_text(self, text: str) -> Line:
        return Line(self.kind, text, self.end, self.options, self.comment, self.number)

    def with_options(self, options: Sequence[Parsed]) -> Line:
        """This directive with other options; its text is rendered anew (the user's comment is kept)."""
        text = " ".join([MAGIC, *(render_option(p) for p in options)])
        if self.comment:
            text += "  " + self.comment
        return Line(self.kind, text, self.end, tuple(options), self.comment, self.number)

    def as_comment(self) -> Line:
        """A directive whose options all went away, leaving the user's trailing comment."""
        return Line(Kind.COMMENT, self.comment or "", self.end, (), None, self.number)


def directive_line(options: Sequence[Parsed], end: str = "\n") -> Line:
    return Line(Kind.DIRECTIVE, "", end).with_options(options)


class Script(NamedTuple):
    """A parsed batch script: its lines in order, each keeping its original text."""

    lines: tuple[Line, ...]
    path: str | None = None

    def __repr__(self) -> str:
        return f"Script({self.path!r}, {len(self.lines)} lines)"

    def render(self) -> str:
        return "".join(line.text + line.end for line in self.lines)

    def directives(self) -> Iterator[tuple[int, Line]]:
        for index, line in enumerate(self.lines):
            if line.kind == Kind.DIRECTIVE:
                yield index, line

    def options(self) -> Iterator[tuple[int, int, Parsed]]:
        """Every option of every directive as (line index, position in line, option), in sbatch's order."""
        for index, line in self.directives():
            for position, parsed in enumerate(line.options):
                yield index, position, parsed

    def values(self, name: str) -> list[str | None]:
        """The values given for option ``name`` in order; sbatch uses the last."""
        return [p.value for _, _, p in self.options() if p.name == name]

    def last(self, name: str) -> str | None:
        """The value sbatch will use for ``name`` (the last one), or None when absent or valueless."""
        found = self.values(name)
        return found[-1] if found else None

    def has(self, name: str) -> bool:
        return any(p.name == name for _, _, p in self.options())

    @property
    def body_start(self) -> int:
        """Index of the first body line (len(lines) when there is none)."""
        for index, line in enumerate(self.lines):
            if line.kind == Kind.BODY:
                return index
        return len(self.lines)

    def body(self) -> list[str]:
        return [line.text for line in self.lines[self.body_start :]]

    def replace_lines(self, lines: Sequence[Line]) -> Script:
        return Script(tuple(lines), self.path)


def _lines(text: str) -> list[tuple[str, str]]:
    # str.splitlines() treats \x0b, \x1c, \u2028 ... as line breaks, sbatch only '\n'. Split on '\n' ourselves.
    out: list[tuple[str, str]] = []
    parts = text.split("\n")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if last and part == "":
            break
        if part.endswith("\r") and not last:
            out.append((part[:-1], "\r\n"))
        else:
            out.append((part, "" if last else "\n"))
    return out


def parse(
    text: str, path: str | None = None, max_distance: int = 2, site_options: Mapping[str, str] | None = None
) -> Script:
    """Parse a batch script. Never fails on option problems: they are recorded for the rules to judge.

    ``site_options``: the site's plugin options (profile ``[site_options]``), which sbatch there accepts too.
    """
    extra = site_table(site_options) if site_options else None
    lines: list[Line] = []
    in_header = True
    for number, (body, end) in enumerate(_lines(text), 1):
        if in_header and number == 1 and body.startswith("#!"):
            lines.append(Line(Kind.SHEBANG, body, end, number=number))
        elif in_header and body.startswith(MAGIC):
            words, comment = split_words(body[len(MAGIC) :])
            options = tuple(parse_words(words, max_distance, extra))
            lines.append(Line(Kind.DIRECTIVE, body, end, options, comment, number))
        elif in_header and (body.strip() == "" or body.lstrip().startswith("#")):
            lines.append(Line(Kind.COMMENT, body, end, number=number))
        else:
            in_header = False
            lines.append(Line(Kind.BODY, body, end, number=number))
    return Script(tuple(lines), path)


# Other batch systems' directive prefixes, at column 0 as their own parsers want them. sbatch skips "#$" lines as
# comments, and reads "#PBS"/"#BSUB" lines only partly, translating a few options (man sbatch: --ignore-pbs).
FOREIGN = (("#$", "SGE (Grid Engine)"), ("#PBS", "PBS/Torque"), ("#BSUB", "LSF"))


def foreign_directives(script: Script) -> list[tuple[Line, str]]:
    """Directive lines of another batch system in the header block, with the system's name."""
    found = []
    for line in script.lines[: script.body_start]:
        if line.kind == Kind.COMMENT:
            system = next((name for prefix, name in FOREIGN if line.text.startswith(prefix)), None)
            if system is not None:
                found.append((line, system))
    return found


def lookalikes(script: Script) -> list[Line]:
    """Lines that look like directives but that sbatch ignores (indented, lower case, or after the first command)."""
    found = []
    for line in script.lines:
        if line.kind == Kind.DIRECTIVE:
            continue
        if _LOOKALIKE.match(line.text) and not (line.kind == Kind.COMMENT and line.text.startswith(MAGIC)):
            found.append(line)
    return found
