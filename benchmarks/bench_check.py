"""Benchmark (not a test): `relion-qsub check` on a typical RELION script versus `python -c pass`.

Target (issue 19; issue 4 had 1.3x): the check costs at most 5x an empty interpreter start with the same
interpreter: generous enough for plain Python (dataclasses, enum, typing), tight enough to keep heavy imports off the
submit path. Run: `.venv/bin/python benchmarks/bench_check.py [N]`. Both commands run N times alternately; the
medians are compared.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from summary import figure

ROOT = Path(__file__).resolve().parent.parent
TYPICAL = ROOT / "tests" / "corpus" / "class2d_gpu_v100.script"
BUDGET = 5.0  # x `python -c pass`


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - start


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    python = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
    env = dict(os.environ, RELION_QSUB_PYTHON=python)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "Class2D" / "job012" / "run_submit.script"
        script.parent.mkdir(parents=True)
        script.write_text(TYPICAL.read_text())
        commands = {
            "python -c pass": [python, "-c", "pass"],
            "bin/relion-qsub check": [str(ROOT / "bin" / "relion-qsub"), "check", str(script)],
            "python -m relion_qsub check": [python, "-s", "-m", "relion_qsub", "check", str(script)],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for argv in commands.values():  # warm the page cache and the .pyc files
            timed(argv, env)
        for _ in range(n):
            for name, argv in commands.items():
                times[name].append(timed(argv, env))
    base = statistics.median(times["python -c pass"])
    print(f"{'command':32s} {'median ms':>10s} {'ratio':>7s}   ({n} runs each, {python})")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:32s} {median * 1000:10.1f} {median / base:7.2f}")
    ratio = statistics.median(times["bin/relion-qsub check"]) / base
    figure("check", "relion-qsub check / python -c pass", ratio, "x", f"<= {BUDGET}", ratio <= BUDGET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
