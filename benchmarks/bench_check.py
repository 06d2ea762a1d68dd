"""Benchmark (not a test): `relion-qsub check` on a typical RELION script versus `python -c pass`, as a site runs it.

Budget (issue 19): the check costs at most 5x an empty interpreter start of the same venv. A guard against heavy
imports (jinja2, the doctor, a live Slurm query), not a target to contort the code for (docs/design.md says what
the figure is made of). Measured where users run it: a prefix laid out by `relion-qsub module
install` (bin/, the package compiled, venv/ with the runtime dependencies; not the editable developer venv), built
in a temporary directory by that same code. Run: `.venv/bin/python benchmarks/bench_check.py [N]`. The commands run
N times alternately; the medians are compared.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from installed import site_install
from summary import figure

ROOT = Path(__file__).resolve().parent.parent
TYPICAL = ROOT / "tests" / "corpus" / "class2d_gpu_v100.script"
SITE = "biowulf"
BUDGET = 5.0


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - start


def measure(python: str, qsub: str, script: Path, env: dict[str, str], n: int) -> tuple[float, float]:
    """Median seconds of ``python -c pass`` and of ``relion-qsub check SCRIPT``, run alternately ``n`` times."""
    commands = {"pass": [python, "-c", "pass"], "check": [qsub, "check", str(script)]}
    check = subprocess.run(commands["check"], env=env, capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise SystemExit(f"relion-qsub check failed ({check.returncode}): {check.stderr}")
    times: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():  # warm the page cache
        timed(argv, env)
    for _ in range(n):
        for name, argv in commands.items():
            times[name].append(timed(argv, env))
    return statistics.median(times["pass"]), statistics.median(times["check"])


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        dest = site_install(tmp, SITE)
        # What the modulefile sets (RELION_QSUB_SITE), a cache of the user's own (the parsed profile), nothing else.
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "XDG_CACHE_HOME": str(tmp / "cache")}
        env["RELION_QSUB_SITE"] = str(dest / "etc" / f"{SITE}.toml")
        script = tmp / "Class2D" / "job012" / "run_submit.script"
        script.parent.mkdir(parents=True)
        script.write_text(TYPICAL.read_text())
        installed = (str(dest / "venv" / "bin" / "python"), str(dest / "bin" / "relion-qsub"))
        venvs = {
            "installed venv (module install)": installed,
            # For comparison only: the editable install's path hook makes every start of this venv slower.
            "developer venv (editable)": (str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "bin" / "relion-qsub")),
        }
        results = {label: measure(python, qsub, script, env, n) for label, (python, qsub) in venvs.items()}
    print(f"{'venv':34s} {'python -c pass':>15s} {'check':>9s} {'ratio':>7s}   ({n} runs each, ms medians)")
    for label, (base, check) in results.items():
        print(f"{label:34s} {base * 1000:15.1f} {check * 1000:9.1f} {check / base:7.2f}")
    base, check = results["installed venv (module install)"]
    dev_base, dev_check = results["developer venv (editable)"]
    figure("check", "python -c pass (installed venv)", base * 1000, "ms", "-", None)
    figure("check", "relion-qsub check (installed venv)", check * 1000, "ms", "-", None)
    figure("check", "relion-qsub check / python -c pass (developer venv)", dev_check / dev_base, "x", "-", None)
    figure("check", "relion-qsub check / python -c pass", check / base, "x", f"<= {BUDGET:g}", check / base <= BUDGET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
