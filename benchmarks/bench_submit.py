"""Benchmark (not a test) on the real testbed: submissions through relion-qsub against bare sbatch.

1. Exactly once under load: 200 RELION job dirs submitted 8 at a time through bin/relion-qsub, and 200 through bare
   sbatch, every job kept from running (relion-qsub: the user's own ``--hold`` on the command line; sbatch:
   ``--hold``), then counted in squeue by a per-run job name (0 lost, 0 duplicated) and cancelled (the watchers
   first, so none of them runs).
2. Serial overhead: the median of N serial relion-qsub submissions minus the medians of ``python -c pass`` and of a
   bare ``sbatch --hold`` (target <= 20 ms; issue 13).
3. slurmctld calls per submission on the happy path: the commands relion-qsub runs (from its record) and the RPCs
   slurmctld counted (``sdiag`` before/after the serial run; other users of the shared testbed add noise, so this
   is an upper bound).

Run: ``source <(testbed/testbed env) && .venv/bin/python benchmarks/bench_submit.py [N_SERIAL]``.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from summary import figure

ROOT = Path(__file__).resolve().parent.parent
QSUB = str(ROOT / "bin" / "relion-qsub")
TOTAL, PARALLEL = 200, 8
RPC_RUNS = 10  # submissions of each kind between two sdiag readings
SCRIPT = """#!/bin/bash
#SBATCH --partition=norm --ntasks=1 --time=0:05:00 --mem-per-cpu=1g --job-name={name}
#SBATCH --output={job}/run.out --error={job}/run.err
true
"""
RPCS = ("REQUEST_FED_INFO", "REQUEST_SUBMIT_BATCH_JOB", "REQUEST_UPDATE_JOB", "REQUEST_JOB_INFO", "REQUEST_CANCEL")


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") or k == "SLURM_CONF"}
    out["RELION_QSUB_SITE"] = "testbed"
    return out


def job_dirs(base: Path, name: str, n: int) -> list[Path]:
    jobs = []
    for i in range(n):
        job = base / name / "Class2D" / f"job{i + 1:03d}"
        job.mkdir(parents=True)
        (job / "run_submit.script").write_text(SCRIPT.format(name=name, job=job))
        jobs.append(job)
    return jobs


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env(), timeout=300, check=False)
    return time.perf_counter() - start, done


def squeue_ids(name: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True, check=True).stdout
    return out.split()


def cancel_all(ids: list[str]) -> None:
    for start in range(0, len(ids), 100):
        subprocess.run(["scancel", *ids[start : start + 100]], check=False)


def records(jobs: list[Path]) -> list[dict[str, object]]:
    out = []
    for job in jobs:
        lines = (job / "relion-qsub.jsonl").read_text().splitlines() if (job / "relion-qsub.jsonl").exists() else []
        out += [json.loads(line) for line in lines]
    return out


def flood(base: Path, tag: str) -> dict[str, int]:
    """200 through relion-qsub and 200 through bare sbatch, 8 at a time; each counted, then cancelled."""
    q_name, s_name = f"bq-{tag}", f"bs-{tag}"
    q_jobs = job_dirs(base, q_name, TOTAL)
    with ThreadPoolExecutor(PARALLEL) as pool:
        q_runs = list(pool.map(lambda j: timed([QSUB, str(j / "run_submit.script"), "--hold"])[1], q_jobs))
        s_script = base / "bare.sh"
        s_script.write_text("#!/bin/sh\ntrue\n")
        bare = ["sbatch", "--hold", f"--job-name={s_name}", "-p", "norm", "-t", "5", "-o", "/dev/null", str(s_script)]
        s_runs = list(pool.map(lambda _: timed(bare)[1], range(TOTAL)))
    entries = records(q_jobs)
    watchers = [str(e["watcher"]) for e in entries if e.get("watcher")]
    q_ids, s_ids = squeue_ids(q_name), squeue_ids(s_name)
    cancel_all(watchers)  # first: a cancelled job would start its watcher
    cancel_all(q_ids + s_ids)
    recorded = [str(e["job_id"]) for e in entries if e.get("job_id")]
    return {
        "relion-qsub exit 0": sum(r.returncode == 0 for r in q_runs),
        "relion-qsub jobs in squeue": len(q_ids),
        "relion-qsub distinct jobs": len(set(q_ids)),
        "relion-qsub records with a job id": len(recorded),
        "relion-qsub records = squeue": int(sorted(recorded) == sorted(q_ids)),
        "watchers": len(watchers),
        "sbatch exit 0": sum(r.returncode == 0 for r in s_runs),
        "sbatch jobs in squeue": len(s_ids),
    }


def rpc_counts() -> dict[str, int]:
    out = subprocess.run(["sdiag"], capture_output=True, text=True, check=True).stdout
    section = out.split("Remote Procedure Call statistics by message type", 1)[-1].split("by user", 1)[0]
    counts = {}
    for match in re.finditer(r"^\s*(REQUEST_\w+)\s+\(\s*\d+\)\s+count:(\d+)", section, re.MULTILINE):
        counts[match.group(1)] = int(match.group(2))
    return counts


def serial(
    base: Path, tag: str, n: int
) -> tuple[dict[str, float], dict[str, dict[str, float]], list[dict[str, object]]]:
    python = str(ROOT / ".venv" / "bin" / "python")
    name = f"bserial-{tag}"
    jobs = job_dirs(base, name, n + RPC_RUNS)
    bare_script = base / "bare-serial.sh"
    bare_script.write_text("#!/bin/sh\ntrue\n")
    bare = ["sbatch", "--hold", f"--job-name={name}", "-p", "norm", "-t", "5", "-o", "/dev/null", str(bare_script)]
    times: dict[str, list[float]] = {"python -c pass": [], "sbatch --hold": [], "relion-qsub": []}
    for job in jobs[:n]:
        times["python -c pass"].append(timed([python, "-c", "pass"])[0])
        times["sbatch --hold"].append(timed(bare)[0])
        times["relion-qsub"].append(timed([QSUB, str(job / "run_submit.script"), "--hold"])[0])
    rpcs = {}
    for tool, argvs in (
        ("relion-qsub", [[QSUB, str(job / "run_submit.script"), "--hold"] for job in jobs[n:]]),
        ("sbatch", [bare] * RPC_RUNS),
    ):
        before = rpc_counts()
        for argv in argvs:
            timed(argv)
        after = rpc_counts()
        rpcs[tool] = {k: (after.get(k, 0) - before.get(k, 0)) / RPC_RUNS for k in after if k.startswith(RPCS)}
    entries = records(jobs)
    cancel_all([str(e["watcher"]) for e in entries if e.get("watcher")])
    cancel_all(squeue_ids(name))
    medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
    return medians, rpcs, entries


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    tag = f"{os.getpid():x}"
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        base = Path(tmp)
        start = time.perf_counter()
        counts = flood(base, tag)
        flood_s = time.perf_counter() - start
        medians, rpcs, entries = serial(base, tag, n)
    for key, value in counts.items():
        print(f"{key:40s} {value:6d}")
    print(f"flood: {2 * TOTAL} submissions, {PARALLEL} at a time, in {flood_s:.1f} s")
    for key, ms in medians.items():
        print(f"median {key:33s} {ms:8.1f} ms   ({n} serial runs)")
    overhead = medians["relion-qsub"] - medians["python -c pass"] - medians["sbatch --hold"]
    print(f"relion-qsub overhead over python -c pass + sbatch: {overhead:.1f} ms")
    commands = 2 + sum(1 for e in entries if e.get("watcher")) / len(entries)  # sbatch, release, the watcher's sbatch
    print(f"commands per relion-qsub submission: {commands:.2f} (sbatch, the watcher's sbatch, scontrol update)")
    print(f"slurmctld RPCs per submission (sdiag around {RPC_RUNS} serial runs each; other users add noise):")
    for tool, counts_of in rpcs.items():
        total = sum(counts_of.values())
        print(f"  {tool:12s} {total:5.2f}: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(counts_of.items()) if v))
    figure("submit", "slurmctld RPCs per relion-qsub submission", sum(rpcs["relion-qsub"].values()), "", "-", None)
    ok = counts["relion-qsub jobs in squeue"] == counts["relion-qsub distinct jobs"] == TOTAL
    ok = ok and counts["sbatch jobs in squeue"] == TOTAL and counts["relion-qsub records = squeue"] == 1
    figure("submit", "relion-qsub jobs of 200 (8 parallel)", counts["relion-qsub jobs in squeue"], "", "= 200", ok)
    figure("submit", "bare sbatch jobs of 200 (8 parallel)", counts["sbatch jobs in squeue"], "", "= 200", ok)
    figure("submit", "relion-qsub overhead over python+sbatch", overhead, "ms", "<= 20", overhead <= 20)
    figure("submit", "commands per submission (happy path)", commands, "", "-", None)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
