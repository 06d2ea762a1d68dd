"""relion-qsub's submission record: one JSON line per submission in ``<jobdir>relion-qsub.jsonl``.

One type (:class:`Record`), one writer (:func:`append`, used by the submit path) and one reader (:func:`read`, used
by doctor and report). The file outlives versions of relion-qsub and is appended to by every run of the job, so the
reader takes what it can: a damaged or truncated line (a full disk, an old writer) is skipped, a field of another
type is coerced or left at its default, a field it does not know is ignored, and a line of another writer's shape
(``{"job_id": 123}``) still gives its job id. Imports nothing of the package.
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

Json = dict[str, object]


@dataclass(frozen=True, slots=True)
class Record:
    """One line of relion-qsub.jsonl, its keys in the order they are written. The submission's outcome fields are
    None (and left out of the line) when the submission never reached that point: a refused script has no
    ``sbatch_argv``, a failed sbatch no ``job_id``."""

    time: str = ""  # ISO 8601 with the UTC offset, when the line was written
    original: str = ""  # the script RELION wrote (path as given)
    original_sha256: str = ""
    normalised: str = ""  # the script sbatch got
    normalised_sha256: str = ""
    changes: tuple[Json, ...] = ()  # {"rule", "action", "line", "message"} per finding
    submitted: bool | None = None
    job_id: str | None = None
    sbatch_argv: tuple[str, ...] | None = None
    token: str | None = None  # the comment that finds the job in squeue when sbatch's answer was lost
    attempts: tuple[Json, ...] | None = None
    watcher: str | None = None  # the end-watcher's job id
    released: bool | None = None
    error: str | None = None  # why it was not submitted (or not started)
    held: bool | None = None  # the job went in held (then released); failed: every request that went out was held
    run: str | None = None  # which run of the job dir (runs.Stamp.encode): the script as RELION last wrote it
    # Slurm refused the end-watcher: the warning (also in the job's note, jobdir.UNWATCHED, printed into run.out and
    # run.err when it starts) saying which endings RELION will not be told of.
    unwatched: str | None = None

    @property
    def when(self) -> datetime | None:
        from datetime import datetime

        try:
            return datetime.fromisoformat(self.time)
        except ValueError:
            return None

    @property
    def failure(self) -> str:
        """Why there is no job: "" when there is one."""
        return "" if self.job_id else self.error or "not submitted"

    def to_json(self) -> str:
        line: Json = {}
        for f in fields(self):
            name, value = f.name, getattr(self, f.name)
            if value is not None:
                line[name] = list(value) if isinstance(value, tuple) else value
        return json.dumps(line, sort_keys=False)


_STR = ("time", "original", "original_sha256", "normalised", "normalised_sha256")


def from_mapping(entry: Mapping[str, object]) -> Record:
    """A Record from one decoded line, of any age or shape (unknown keys ignored, odd types coerced or dropped)."""
    out: dict[str, object] = {name: str(entry[name]) for name in _STR if isinstance(entry.get(name), str)}
    out["changes"] = _dicts(entry.get("changes")) or ()
    for name in ("submitted", "released", "held"):
        if isinstance(entry.get(name), bool):
            out[name] = entry[name]
    for name in ("job_id", "token", "watcher", "error", "run", "unwatched"):
        value = entry.get(name)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            out[name] = str(value)
    argv = entry.get("sbatch_argv")
    if isinstance(argv, list):
        out["sbatch_argv"] = tuple(str(word) for word in argv)
    out["attempts"] = _dicts(entry.get("attempts"))
    return Record(**out)  # type: ignore[arg-type]  # each value's type is checked above


def _dicts(value: object) -> tuple[Json, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(item for item in value if isinstance(item, dict))


def read(text: str) -> list[Record]:
    """Every readable line of a relion-qsub.jsonl, in order (what is not a JSON object is skipped)."""
    out = []
    for raw in text.splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(from_mapping(entry))
    return out


def last_job_id(records: list[Record]) -> str | None:
    """The job id of the last submission that has one (a later refusal does not hide the job still running)."""
    return next((r.job_id for r in reversed(records) if r.job_id), None)


def append(path: Path, record: Record) -> str:
    """Append ``record`` as one line in one write(2) with O_APPEND, or not at all; "" on success, else why not.

    A short or failed write (full disk, quota) is cut back off, so the file never holds half a line.
    """
    data = (record.to_json() + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        size = os.fstat(fd).st_size
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:
            try:
                os.ftruncate(fd, size)  # a half line would be one more damaged line for every reader
            except OSError:
                pass
            return exc.strerror or str(exc)
    finally:
        os.close(fd)
    return ""
