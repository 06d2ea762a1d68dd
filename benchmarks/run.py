"""`make bench`: run every benchmarks/bench_*.py and print their headline figures as one table.

Each benchmark runs as its own process (start-up figures must not share an interpreter) with BENCH_SUMMARY pointing
at a file where it records its figures (benchmarks/summary.py). Exit status 1 when a figure misses its target or a
benchmark fails, so the table can gate a release. Run: `.venv/bin/python benchmarks/run.py [NAME ...]`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_one(script: Path, summary: Path) -> tuple[int, float]:
    start = time.perf_counter()
    env = dict(os.environ, BENCH_SUMMARY=str(summary))
    done = subprocess.run([sys.executable, str(script)], env=env, stdout=sys.stderr, check=False)
    return done.returncode, time.perf_counter() - start


def table(rows: list[dict[str, object]], failed: list[str]) -> str:
    head = f"{'benchmark':14s} {'figure':44s} {'value':>12s}  {'target':14s} met"
    lines = [head, "-" * len(head)]
    for r in rows:
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]  # type: ignore[index]
        value = f"{r['value']:,.2f} {r['unit']}"
        lines.append(f"{r['bench']!s:14s} {r['figure']!s:44s} {value:>12s}  {r['target']!s:14s} {met}")
    lines += [f"{name:14s} FAILED (see its output above)" for name in failed]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in argv or s.stem in argv]
    rows: list[dict[str, object]] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for script in scripts:
            summary = Path(tmp) / f"{script.stem}.jsonl"
            code, seconds = run_one(script, summary)
            print(f"{script.name}: exit {code} after {seconds:.1f} s", file=sys.stderr)
            if code != 0:
                failed.append(script.stem.removeprefix("bench_"))
            if summary.exists():
                rows += [json.loads(line) for line in summary.read_text().splitlines()]
    print(table(rows, failed))
    return 1 if failed or any(r["met"] is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
