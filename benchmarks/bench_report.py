"""Benchmark (not a test): ``relion-qsub report`` on a project of N RELION jobs (default 1,000; budget 2 s).

The project is synthetic (tests/reportdata.py: job dirs with relion-qsub.jsonl, exit files, the normalised script,
the scratch monitor's log, run.err), the sacct output is the one recorded on the testbed, given each job's own id.
Measured, warm page cache, medians of R runs:

- in process: ``report.main.report`` with the recorded output handed over at the proc seam (the runner);
- the whole CLI, start-up included: ``bin/relion-qsub report PROJECT`` with a ``sacct`` on PATH that prints the
  recorded output, so the one call really goes through proc.run and a subprocess.

Run: ``.venv/bin/python benchmarks/bench_report.py [N] [R]``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from summary import figure  # noqa: E402

from relion_qsub import proc  # noqa: E402
from relion_qsub.report import main as report_main  # noqa: E402
from tests.reportdata import make_project  # noqa: E402

BUDGET = 2.0


def in_process(project: Path, output: str) -> tuple[float, int]:
    calls: list[list[str]] = []

    def runner(argv: list[str], **_: object) -> proc.Result:
        calls.append(argv)
        return proc.Result(tuple(argv), 0, output, "")

    args = report_main._parser().parse_args([str(project), "--site", "testbed"])
    start = time.perf_counter()
    report_main.report(args, {}, False, runner)
    return time.perf_counter() - start, len(calls)


def cli(project: Path, bindir: Path) -> float:
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "RELION_QSUB_SITE": "testbed"}
    start = time.perf_counter()
    done = subprocess.run(
        [str(ROOT / "bin" / "relion-qsub"), "report", str(project)], env=env, capture_output=True, check=False
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"relion-qsub report exited {done.returncode}: {done.stderr.decode()}")
    return seconds


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with tempfile.TemporaryDirectory() as tmp:
        project, bindir = Path(tmp) / "project", Path(tmp) / "bin"
        project.mkdir()
        bindir.mkdir()
        output = make_project(project, n)
        (bindir / "sacct.out").write_text(output)
        fake = bindir / "sacct"
        fake.write_text(f"#!/bin/sh\nexec cat {bindir / 'sacct.out'}\n")
        fake.chmod(0o755)
        runs = [in_process(project, output) for _ in range(repeat)]
        assert all(calls == 1 for _, calls in runs), "more than one sacct call"
        inside = statistics.median(s for s, _ in runs)
        whole = statistics.median(cli(project, bindir) for _ in range(repeat))
    lines = output.count("\n")
    print(f"{n} jobs ({lines} sacct lines, 1 sacct call), median of {repeat}:")
    print(f"  in process (report.main.report):       {inside:.3f} s")
    print(f"  bin/relion-qsub report (CLI, start-up): {whole:.3f} s  (budget {BUDGET:.1f} s)")
    figure("report", f"relion-qsub report, {n} jobs (CLI)", whole, "s", f"<= {BUDGET:g}", whole <= BUDGET)
    if whole > BUDGET:
        raise SystemExit(f"over budget: {whole:.3f} s > {BUDGET} s")


if __name__ == "__main__":
    main()
