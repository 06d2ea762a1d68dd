"""One finding of `relion-qsub doctor`: where, what, the fix, and an optional safe repair."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

LEVELS = ("ok", "warning", "error")


@dataclass
class Finding:
    level: str  # "ok", "warning", "error"
    where: str  # a path relative to the project ("default_pipeline.star", "Class2D/job001/run.err:12")
    what: str
    fix: str = ""
    check: str = ""  # "pipeline", "lock", "images", "job"
    # A safe repair ``--fix`` may perform; returns what it did (one sentence). Raises OSError on failure.
    repair: Callable[[], str] | None = field(default=None, repr=False, compare=False)
    fixed: bool = False

    def __str__(self) -> str:
        text = f"{self.level}: {self.where}: {self.what}"
        return f"{text} — {self.fix}" if self.fix else text

    def as_dict(self) -> dict[str, object]:
        return {
            "level": self.level,
            "where": self.where,
            "what": self.what,
            "fix": self.fix,
            "check": self.check,
            "fixed": self.fixed,
        }
