"""The submit path stays light: `relion-qsub check` imports nothing heavy (issue 19: <= 5x `python -c pass`).

Timing is measured by benchmarks/bench_check.py; this test guards the cause instead, which does not flake: the
modules a check run imports. Plain Python is allowed (typing, dataclasses, enum, argparse; docs/design.md); what
is not: jinja2/psutil/hostlist (templates, launch, doctor), tomllib once the profile is cached, and the modules of
work the check does not do: subprocess (it runs no command), json and hashlib (it writes no record).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"jinja2", "psutil", "hostlist", "subprocess", "json", "hashlib"}
SUBMISSION_ONLY = {"relion_qsub.submit", "relion_qsub.proc", "relion_qsub.watch", "relion_qsub.slurm.client"}

# json is imported only after the modules are counted: imported before, it would never be seen (a check that
# imported it would pass).
PROBE = """
import sys
before = set(sys.modules)
sys.path.insert(0, sys.argv[1])
from relion_qsub.cli import qsub_main
code = qsub_main(["check", "-q", sys.argv[2]])
new = sorted(set(sys.modules) - before)
sys.stdout.flush()
import json
print("\\n" + json.dumps({"code": code, "new": new}))
"""


def modules_imported_by_check(script: Path, cache: Path) -> tuple[int, set[str]]:
    env = {"XDG_CACHE_HOME": str(cache), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-s", "-c", PROBE, str(ROOT), str(script)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["code"], set(result["new"])


def top(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_check_imports_nothing_heavy(tmp_path: Path) -> None:
    script = tmp_path / "Class2D" / "job012" / "run_submit.script"
    script.parent.mkdir(parents=True)
    script.write_text((ROOT / "tests" / "corpus" / "class2d_gpu_v100.script").read_text())
    code, first = modules_imported_by_check(script, tmp_path / "cache")
    assert code == 0
    assert "tomllib" in top(first)  # the first run parses the profile (and caches it)
    code, ours = modules_imported_by_check(script, tmp_path / "cache")
    assert code == 0
    # The submission's own modules: the check prepares a script (prepare.py) and submits nothing.
    assert not ours & SUBMISSION_ONLY, ours & SUBMISSION_ONLY
    assert "relion_qsub.prepare" in ours
    again = top(ours)
    assert not (again & (FORBIDDEN | {"tomllib"})), again & (FORBIDDEN | {"tomllib"})
    assert {"relion_qsub"} <= again  # the probe did run the check
    assert {"dataclasses", "argparse"} <= again  # the probe sees what the check imports (so FORBIDDEN can fail)


def test_job_star_is_read_only_for_a_job_dir_that_has_one(tmp_path: Path) -> None:
    """Issue 21: the checks ask RELION's job.star where a value came from, but only a job dir holding one pays for
    reading it (relion_qsub.relion.jobstar is imported lazily, by checks.core.Context.job_values)."""
    script = tmp_path / "Class2D" / "job012" / "run_submit.script"
    script.parent.mkdir(parents=True)
    script.write_text((ROOT / "tests" / "corpus" / "class2d_gpu_v100.script").read_text())
    modules_imported_by_check(script, tmp_path / "cache")  # the first run caches the profile
    code, without = modules_imported_by_check(script, tmp_path / "cache")
    assert code == 0 and "relion_qsub.relion.jobstar" not in without
    star = (ROOT / "tests" / "data" / "relion" / "class2d-3.1.3.job.star").read_text()
    (script.parent / "job.star").write_text(star)
    code, with_star = modules_imported_by_check(script, tmp_path / "cache")
    assert "relion_qsub.relion.jobstar" in with_star
    assert not (top(with_star) & (FORBIDDEN | {"tomllib"})), top(with_star) & (FORBIDDEN | {"tomllib"})


# What the process entries leave for the interpreter's exit, seen from an atexit hook (which runs before the
# modules are torn down): the collector's state, and whether the objects alive were frozen (so finalization's
# collections skip them).
EXIT_PROBE = """
import atexit, gc, sys
sys.path.insert(0, sys.argv.pop(1))
program, sys.argv[1:] = sys.argv.pop(1), sys.argv[1:]
atexit.register(lambda: print(f"\\nenabled={gc.isenabled()} frozen={gc.get_freeze_count() > 0}"))
import relion_qsub.cli as c
getattr(c, program)()
"""


def program_exit(program: str, *args: str) -> tuple[int, str]:
    argv = [sys.executable, "-s", "-c", EXIT_PROBE, str(ROOT), program, *args]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env={"PATH": "/usr/bin:/bin"})
    return proc.returncode, proc.stdout.strip().splitlines()[-1]


def test_submit_and_check_run_without_the_collector_and_exit_frozen() -> None:
    assert program_exit("qsub_program", "--version") == (0, "enabled=False frozen=True")


def test_subcommands_and_relion_launch_keep_the_collector() -> None:
    # doctor and report read whole projects; relion-launch supervises a job for hours
    assert program_exit("qsub_program", "doctor", "--help") == (0, "enabled=True frozen=True")
    assert program_exit("launch_program", "--version") == (0, "enabled=True frozen=True")
