"""Which GUI box a value sbatch will use came from, for the fit rules' one-sentence messages (issue 14).

First the template itself (``boxes``: RELION_QSUB_TEMPLATE and the RELION_QSUB_EXTRAn labels, exact when RELION
filled the script from it). Without it, the script and the profile tell: RELION fills ``--ntasks=XXXmpinodesXXX``,
``--cpus-per-task=XXXthreadsXXX`` and ``--partition=XXXqueueXXX`` from its fixed boxes and ``--<option>=XXXextraNXXX``
from the box ``[[fields]]`` N labels, each on a line of its own; a line with several options was pasted from an
"SBATCH Directives" box (``#SBATCH XXXextraNXXX``). A fully filled template (``templates build``) writes its own
sizes and ignores the boxes: what it asks is the template's. Imported only when a message needs a box's name.
"""

from __future__ import annotations

from .options import Parsed
from .script import Kind, Line, Script
from .site import Site

TYPE_CHECKING = False  # not typing's: importing typing costs the submit path ~2 ms
if TYPE_CHECKING:
    from .checks.core import Context

RELION_BOXES = {"ntasks": "Number of MPI procs", "cpus-per-task": "Number of threads", "partition": "Queue name"}
DIRECTIVES = "SBATCH Directives"


def label(name: str) -> str:
    return f"the '{name}' box"


def directives_label(site: Site) -> str:
    return next((lab for lab, option in site.field_labels() if not option and lab), DIRECTIVES)


def guess(site: Site, line: Line, name: str, filled: bool = False) -> str:
    """The box that wrote ``--name`` on ``line``, from the line's shape and the profile's field labels."""
    if filled:
        return "the template"
    if len(line.options) == 1:
        if name in RELION_BOXES:
            return label(RELION_BOXES[name])
        found = next((lab for lab, option in site.field_labels() if option == name and lab), None)
        if found:
            return label(found)
    if any(not option for _, option in site.field_labels()):
        return label(directives_label(site))
    return "the template"


def box(ctx: Context, script: Script, name: str, filled: bool = False) -> str:
    """The box the value sbatch uses for ``--name`` came from (the command line wins, then the last directive);
    ``filled``: the script is a fully filled template (checks.fit.size_guard)."""
    if ctx.cli_has(name):
        return "the relion-qsub command line"
    found = [line for _, line in script.directives() if any(p.name == name for p in line.options)]
    if not found:
        return "the template"
    line = found[-1]
    exact = ctx.box_for(line.number, line.text) if line.number else None
    return exact or guess(ctx.site, line, name, filled)


def stray_word_hint(site: Site, line: Line, parsed: Parsed, box_name: str | None) -> str:
    """For a word sbatch reads as no option. A box whose value has a space (Walltime ``2 days``) is named with the
    value that works; a word pasted into an SBATCH Directives box is named as that."""
    first = line.options[0] if line.kind == Kind.DIRECTIVE and line.options else None
    if first is not None and first is not parsed and first.name is not None:
        where = box_name or guess(site, line.with_options([first]), first.name)
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
