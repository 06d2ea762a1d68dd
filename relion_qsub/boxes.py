"""Which RELION GUI box filled which line of a script, named by the template's own field labels.

RELION fills a template line by line (``RelionJob::saveJobSubmissionScript``): each line is copied with its
placeholders replaced, and only the line holding XXXcommandXXX is repeated, once per command. Every line before it,
so every ``#SBATCH`` line, therefore has the same number in the filled script as in the template. RELION runs the
Queue submit command from its own process, so the template's path (``RELION_QSUB_TEMPLATE``) and the labels of the
extra boxes (``RELION_QSUB_EXTRAn``) are in our environment too. Read only when a message needs a box's name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# The fixed boxes of RELION's Running tab, by placeholder.
FIXED = {
    "queue": "'Queue name'",
    "mpinodes": "'Number of MPI procs'",
    "threads": "'Number of threads'",
    "cores": "'Number of MPI procs' x 'Number of threads'",
    "dedicated": "'Minimum dedicated cores per node'",
    "nodes": "'Number of MPI procs' x 'Number of threads' / 'Minimum dedicated cores per node'",
}
_ANY = re.compile(r"XXX([a-z]\w*?)XXX")


def box_name(placeholder: str, labels: Mapping[int, str]) -> str:
    """The GUI box behind ``placeholder`` (``extra2`` -> "the 'Memory' box (RELION_QSUB_EXTRA2)")."""
    if placeholder.startswith("extra") and placeholder[5:].isdigit():
        n = int(placeholder[5:])
        label = labels.get(n)
        return f"the '{label}' box (RELION_QSUB_EXTRA{n})" if label else f"RELION_QSUB_EXTRA{n} (not set)"
    return f"the {FIXED[placeholder]} box" if placeholder in FIXED else f"XXX{placeholder}XXX"


class Boxes:
    __slots__ = ("labels", "template")

    def __init__(self, template: list[str] | None, labels: Mapping[int, str]) -> None:
        self.template, self.labels = template, labels

    def for_line(self, number: int, text: str | None = None) -> str | None:
        """The box(es) whose value went into script line ``number`` (checked against ``text`` when given)."""
        if not self.template or not 0 < number <= len(self.template):
            return None
        line = self.template[number - 1].rstrip("\r")
        names = _ANY.findall(line)
        if not names:
            return None
        if text is not None:
            pattern = "".join("(.*?)" if i % 2 else re.escape(part) for i, part in enumerate(_ANY.split(line)))
            if re.fullmatch(pattern, text, re.DOTALL) is None:
                return None  # not the template this script was filled from
        return " or ".join(dict.fromkeys(box_name(name, self.labels) for name in names))

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


def from_environment(environ: Mapping[str, str]) -> Boxes:
    labels = {}
    for key, value in environ.items():
        if key.startswith("RELION_QSUB_EXTRA") and key[17:].isdigit():
            labels[int(key[17:])] = value
    path = environ.get("RELION_QSUB_TEMPLATE")
    template = None
    if path:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                template = fh.read(1 << 20).split("\n")
        except OSError:
            template = None  # a hint, never a failure
    return Boxes(template, labels)
