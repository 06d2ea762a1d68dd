"""The one atomic-write helper: a reader never sees half a file, and nothing is written through a symlink.

Used for every file relion-qsub writes whole (the normalised script, templates, modulefiles, a restored pipeline).
Imports nothing of the package.
"""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: Path, data: str | bytes, mode: int | None = None) -> None:
    """Write ``data`` to a new temporary file beside ``path`` and rename it over ``path``.

    A symlink or a file another process holds open at ``path`` is replaced, never written through. ``mode`` sets the
    permissions exactly (templates must be 0755 whatever the umask); None keeps the umask's choice, as a shell
    redirection would (a group-shared RELION project relies on it). An OSError names ``path``, not the temporary.
    """
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666 if mode is None else 0o600)
    except OSError as exc:
        exc.filename = str(path)
        raise
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), mode)
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(exc, OSError):
            exc.filename = str(path)
        raise
