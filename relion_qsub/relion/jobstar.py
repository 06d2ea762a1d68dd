"""``<jobdir>job.star``: the settings RELION saved for a job, as RELION 3.1, 4.0 and 5.0 write them.

``RelionJob::write`` (pipeline_jobs.cpp) writes two blocks. ``data_job`` is a list: the job type, ``_rlnJobIsContinue``
(0/1) and, from 4.0 on, ``_rlnJobIsTomo``. 3.1 writes the type as an integer code (``_rlnJobType 8``), 4.0 and 5.0 as
a label (``_rlnJobTypeLabel relion.class2d``); ``RelionJob::read`` takes the label when there is one and the code
otherwise, and so does :func:`read`. ``data_joboptions_values`` is a loop of ``_rlnJobOptionVariable`` /
``_rlnJobOptionValue``: every box of the job's tabs by its variable name (``nr_mpi``, ``queuename``, ``qsub_extra1``),
the value as the GUI shows it (booleans "Yes"/"No", numbers as typed; a string with a space is double-quoted, an
empty one is ``""``). Read only, never written: the file is RELION's.

Imports only ``errors`` and ``relion.jobdir`` of the package; only :func:`read` opens anything, and
:func:`of_job_dir` is what the checks ask (once per job dir and process).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from .jobdir import JOB_STAR, is_job_dir_name

if TYPE_CHECKING:
    from collections.abc import Mapping

# RELION 4.0's proc_type2labelnew (pipeline_jobs.h): the label of each of 3.1's integer job types.
LABELS = {
    0: "relion.import",
    1: "relion.motioncorr",
    2: "relion.ctffind",
    3: "relion.manualpick",
    4: "relion.autopick",
    5: "relion.extract",
    7: "relion.select",
    8: "relion.class2d",
    9: "relion.class3d",
    10: "relion.refine3d",
    12: "relion.maskcreate",
    13: "relion.joinstar",
    14: "relion.subtract",
    15: "relion.postprocess",
    16: "relion.localres",
    18: "relion.initialmodel",
    19: "relion.multibody",
    20: "relion.polish",
    21: "relion.ctfrefine",
    99: "relion.external",
}
# A value as escapeStringForSTAR (strings.cpp) writes it: "" for an empty string; one with a blank or a leading quote
# in double quotes, where an inner quote that a blank (or the closing quote) follows gets a \a before it.
_WORD = re.compile(r'"((?:[^"]|(?<=\a)"|"(?![ \t]|$))*)"(?=[ \t]|$)|\'([^\']*)\'(?=[ \t]|$)|(\S+)')
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True, slots=True)
class JobStar:
    """One job.star. ``type`` is the 4.0+ label (3.1's integer code translated; "" for a code RELION 4.0 does not
    know), ``type_code`` the integer 3.1 wrote (None from 4.0 on). ``options`` holds every joboption as written."""

    path: Path
    type: str
    type_code: int | None
    is_continue: bool
    is_tomo: bool
    options: Mapping[str, str] = field(repr=False)

    def text(self, name: str) -> str | None:
        """A joboption's value; None when the job type has no such box."""
        return self.options.get(name)

    def number(self, name: str) -> int | None:
        """A numeric box (RELION's ``JobOption::getNumber``: sscanf %f); None when absent, not a number, or a
        scheduler variable (``$$name``, 4.0+)."""
        value = self.options.get(name, "").strip()
        match = _NUMBER.match(value)
        return int(float(match.group())) if match and not value.startswith("$$") else None

    def flag(self, name: str) -> bool | None:
        """A Yes/No box (``JobOption::getBoolean``: exactly "Yes" is true); None when absent."""
        value = self.options.get(name)
        return None if value is None else value == "Yes"

    @property
    def nr_mpi(self) -> int | None:
        return self.number("nr_mpi")

    @property
    def nr_threads(self) -> int | None:
        return self.number("nr_threads")

    @property
    def min_dedicated(self) -> int | None:
        return self.number("min_dedicated")

    @property
    def use_gpu(self) -> bool | None:
        return self.flag("use_gpu")

    @property
    def do_queue(self) -> bool | None:
        return self.flag("do_queue")

    @property
    def do_preread_images(self) -> bool | None:
        return self.flag("do_preread_images")

    @property
    def extras(self) -> dict[int, str]:
        """The extra Running-tab boxes (``qsub_extraN``, which exist only where RELION_QSUB_EXTRAn was set)."""
        out = {}
        for name, value in self.options.items():
            if name.startswith("qsub_extra") and name[10:].isdigit():
                out[int(name[10:])] = value
        return dict(sorted(out.items()))


def read(path: Path) -> JobStar | None:
    """The job.star at ``path`` (a job dir or the file itself); None when there is none. A file that is not a job.star
    RELION wrote raises InputError naming it."""
    file = path / JOB_STAR if path.is_dir() else path
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"{file}: cannot read RELION's job.star: {exc.strerror}") from None
    try:
        return parse(raw.decode("utf-8"), file)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(
            f"{file}: not a job.star as RELION writes it ({exc}); RELION writes it anew when the job is run or "
            "saved from the GUI"
        ) from None


def parse(text: str, path: Path) -> JobStar:
    """The two blocks of a job.star; ValueError saying what is missing or malformed."""
    blocks = _blocks(text)
    head = _pairs(blocks.get("job"), "data_job")
    if "_rlnJobTypeLabel" in head:
        label, code = head["_rlnJobTypeLabel"], None
    elif "_rlnJobType" in head and head["_rlnJobType"].lstrip("-").isdigit():
        code = int(head["_rlnJobType"])
        label = LABELS.get(code, "")
    else:
        raise ValueError("data_job has no _rlnJobTypeLabel or integer _rlnJobType")
    return JobStar(path, label, code, _bool(head, "_rlnJobIsContinue"), _bool(head, "_rlnJobIsTomo"), _options(blocks))


def _blocks(text: str) -> dict[str, list[str]]:
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("data_"):
            current = blocks.setdefault(stripped[5:], [])
        elif stripped and not stripped.startswith("#") and current is not None:
            current.append(stripped)
    return blocks


def _words(line: str) -> list[str]:
    return [next(g for g in m.groups() if g is not None).replace("\a", "") for m in _WORD.finditer(line)]


def _pairs(lines: list[str] | None, name: str) -> dict[str, str]:
    if lines is None:
        raise ValueError(f"no {name} block")
    out = {}
    for line in lines:
        words = _words(line)
        if len(words) != 2 or not words[0].startswith("_"):
            raise ValueError(f"{name}: {line[:60]!r} is not '_label value'")
        out[words[0]] = words[1]
    return out


def _bool(head: dict[str, str], label: str) -> bool:
    value = head.get(label, "0")  # RELION 3.1 writes no _rlnJobIsTomo
    if value not in ("0", "1"):
        raise ValueError(f"data_job: {label} is {value!r}, not 0 or 1")
    return value == "1"


def _options(blocks: dict[str, list[str]]) -> dict[str, str]:
    lines = blocks.get("joboptions_values")
    if lines is None:
        raise ValueError("no data_joboptions_values block")
    columns: list[str] = []
    out = {}
    for line in lines:
        if line == "loop_":
            continue
        if line.startswith("_"):
            columns.append(line.split()[0])
            continue
        words = _words(line)
        if columns[:2] != ["_rlnJobOptionVariable", "_rlnJobOptionValue"] or len(words) != 2:
            raise ValueError(f"data_joboptions_values: {line[:60]!r} is not 'variable value'")
        out[words[0]] = words[1]
    return out


_SEEN: dict[tuple[Path, int, int, int], JobStar | None] = {}


def of_job_dir(jobdir: Path) -> JobStar | None:
    """The job.star RELION wrote in ``jobdir`` (a ``<Type>/jobNNN/`` dir, where RELION runs the Queue submit command
    after writing it: src/pipeliner.cpp runJob); None for any other dir, a job dir without one, or a file RELION did
    not write (then the script alone is judged). Every check of a submission asks: the file is read once per version
    (inode, size, mtime; RELION writes it anew on each run)."""
    try:
        st = (jobdir / JOB_STAR).stat()
    except OSError:
        return None
    version = (jobdir, st.st_ino, st.st_size, st.st_mtime_ns)
    if version not in _SEEN:
        found = None
        if is_job_dir_name(jobdir.name):
            try:
                found = read(jobdir)
            except InputError:
                found = None
        _SEEN[version] = found
    return _SEEN[version]
