"""The one row format every benchmark reports its headline figures in, for `make bench` (benchmarks/run.py).

A benchmark prints its own detail as it likes and calls :func:`figure` for each figure that has a target; run.py
collects those rows (JSON lines in $BENCH_SUMMARY) and prints one table. Run alone, a benchmark just prints.
"""

from __future__ import annotations

import json
import os


def figure(bench: str, name: str, value: float, unit: str, target: str, met: bool | None) -> None:
    """Record one headline figure: ``met`` None when the figure has no target (shown as '-')."""
    path = os.environ.get("BENCH_SUMMARY")
    if not path:
        return
    row = {"bench": bench, "figure": name, "value": value, "unit": unit, "target": target, "met": met}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
