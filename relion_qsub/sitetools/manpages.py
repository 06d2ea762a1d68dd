"""Man pages for relion-qsub, each subcommand and relion-launch, generated from their own ``--help`` (issue 22).

A page is the program's help as the installed program prints it, so it cannot drift from the parsers: ``usage:``
lines become the SYNOPSIS, the first sentence after them the NAME line, every unindented ``heading:`` line a
section, the rest stays as the help lays it out (no-fill). ``module install`` writes them under
``PREFIX/relion-qsub/<version>/share/man/man1`` (the module prepends that to MANPATH); ``relion-qsub module man -o
DIR`` writes them anywhere (the easyconfig's postinstallcmds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from .. import __version__
from ..fsio import atomic_write

# relion-qsub's subcommands with a --help of their own (cli.SUBCOMMANDS; tests/test_manpages.py keeps them equal).
SUBCOMMANDS = ("templates", "recommend", "module", "doctor", "report", "site")

# (program, arguments) -> the help text it prints
HelpRunner = Callable[[str, Sequence[str]], str]


def _escape(line: str) -> str:
    text = line.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


def _heading(line: str) -> str | None:
    """``options:`` / ``Exit status: ...`` at column 0: a section (its words before the colon, upper case)."""
    head, colon, rest = line.partition(":")
    if not colon or line[:1].isspace() or len(head.split()) > 3 or head.startswith("usage"):
        return None
    return head.upper() if not rest.strip() or head.istitle() or head.islower() else None


def _split(text: str) -> tuple[list[str], list[str]]:
    """(usage lines, the rest)."""
    lines = text.rstrip("\n").splitlines()
    usage: list[str] = []
    while lines and (lines[0].startswith("usage:") or (usage and lines[0][:1].isspace())):
        usage.append(lines.pop(0).removeprefix("usage:").strip())
    return usage, lines


def summary(rest: Sequence[str]) -> str:
    paragraph: list[str] = []
    for line in rest:
        if not line.strip():
            if paragraph:
                break
            continue
        paragraph.append(line.strip())
    sentence = " ".join(paragraph).split(". ")[0].rstrip(".")
    return sentence or "RELION queue submission for Slurm"


def page(name: str, help_text: str) -> str:
    """The roff source of ``name``(1) from its --help."""
    usage, rest = _split(help_text)
    out = [
        f'.TH {name.upper()} 1 "" "relion-qsub {__version__}" "User Commands"',
        ".SH NAME",
        f"{_escape(name)} \\- {_escape(summary(rest))}",
    ]
    if usage:
        out += [".SH SYNOPSIS", ".nf", *map(_escape, usage), ".fi"]
    out += [".SH DESCRIPTION", ".nf"]
    for line in rest:
        heading = _heading(line)
        if heading and not line.partition(":")[2].strip():
            out += [".fi", f".SH {_escape(heading)}", ".nf"]
        else:
            out.append(_escape(line))
    out.append(".fi")
    see = ["relion-qsub", *(f"relion-qsub-{s}" for s in SUBCOMMANDS), "relion-launch"]
    out += [".SH SEE ALSO", ", ".join(f"\\fB{_escape(s)}\\fR(1)" for s in see if s != name)]
    return "\n".join(out) + "\n"


def pages(run_help: HelpRunner) -> dict[str, str]:
    """File name (``relion-qsub.1``) -> roff, for every page."""
    out = {"relion-qsub.1": page("relion-qsub", run_help("relion-qsub", ["--help"]))}
    for sub in SUBCOMMANDS:
        out[f"relion-qsub-{sub}.1"] = page(f"relion-qsub-{sub}", run_help("relion-qsub", [sub, "--help"]))
    out["relion-launch.1"] = page("relion-launch", run_help("relion-launch", ["--help"]))
    return out


def write(mandir: Path, run_help: HelpRunner) -> list[Path]:
    """``mandir/man1/*.1``; returns the files written."""
    written = []
    (mandir / "man1").mkdir(parents=True, exist_ok=True)
    for name, text in pages(run_help).items():
        path = mandir / "man1" / name
        atomic_write(path, text, 0o644)
        written.append(path)
    return written
