"""Benchmark (not a test) on the real testbed: submissions through relion-qsub against bare sbatch.

1. Exactly once under load: 200 RELION job dirs submitted 8 at a time through bin/relion-qsub, and 200 through bare
   sbatch, every job kept from running (relion-qsub: the user's own ``--hold`` on the command line; sbatch:
   ``--hold``), then counted in squeue by a per-run job name (0 lost, 0 duplicated) and cancelled (the watchers
   first, so none of them runs).
2. Serial overhead: the median of N serial relion-qsub submissions minus the medians of ``python -c pass`` and of a
   bare ``sbatch --hold`` (target <= 20 ms; issue 13).
3. slurmctld RPCs per submission (the headline: Slurm 23.02+ rate-limits them per user, a bucket of 30 refilled 2
   per second): ``sdiag``'s "Remote Procedure Call statistics by message type", read around each of RPC_RUNS
   serial submissions of each kind, the median per type. The kinds: a RELION job's first run; the same job dirs
   again, as Continue does; a csh template, which has no guard and so goes in held and is released, as every job did
   before; bare ``sbatch``. Made trustworthy four ways: the readings are taken holding the testbed's EXCLUSIVE
   lock (/tmp/rq-testbed.lock, which every cluster test holds shared), so no other test submits meanwhile; only the
   message types a client command sends are counted (a running job's slurmd traffic and sdiag's own
   REQUEST_STATS_INFO are not); the median of the runs drops a stray call from outside the lock; and an idle window
   as long as the longest run, read the same way, must count 0 (the noise, printed).

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
RPC_TARGET = 2.0  # slurmctld RPCs per RELION job submission on the happy path (issue 20)
LOCK = Path("/tmp/rq-testbed.lock")  # the testbed's lock: cluster tests hold it shared, a bench reading sdiag exclusive
SCRIPT = """#!/bin/bash
#SBATCH --partition=norm --ntasks=1 --time=0:05:00 --mem-per-cpu=1g --job-name={name}
#SBATCH --output={job}/run.out --error={job}/run.err
true
"""
# The message types a client command sends (sbatch, scontrol, squeue, scancel, sacct goes to slurmdbd); the rest
# come from slurmd/slurmstepd (registrations, job and step completions) or are sdiag's own REQUEST_STATS_INFO.
RPCS = (
    "REQUEST_SUBMIT_BATCH_JOB",
    "REQUEST_UPDATE_JOB",
    "REQUEST_JOB_INFO",
    "REQUEST_JOB_INFO_SINGLE",
    "REQUEST_JOB_USER_INFO",
    "REQUEST_FED_INFO",
    "REQUEST_KILL_JOB",
    "REQUEST_CANCEL_JOB_STEP",
    "REQUEST_PARTITION_INFO",
    "REQUEST_NODE_INFO",
    "REQUEST_BUILD_INFO",
)


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
    """sdiag's RPC counts by message type, only the types in RPCS."""
    out = subprocess.run(["sdiag"], capture_output=True, text=True, check=True).stdout
    section = out.split("Remote Procedure Call statistics by message type", 1)[-1].split("by user", 1)[0]
    counts = {}
    for match in re.finditer(r"^\s*(REQUEST_\w+)\s+\(\s*\d+\)\s+count:(\d+)", section, re.MULTILINE):
        if match.group(1) in RPCS:
            counts[match.group(1)] = int(match.group(2))
    return counts


def exclusive(timeout: float = 300) -> int | None:
    """The testbed's lock, held exclusively (an open fd; closing it releases the lock), or None after ``timeout``
    (then the figures are read without it and say so)."""
    import fcntl

    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(1)


def counted(argvs: list[list[str]]) -> tuple[dict[str, float], float]:
    """The RPCs of one command of ``argvs`` (run one after another, sdiag read around each), by type: the median
    over the runs, so that a stray call from outside the lock in one window does not count; and the seconds taken."""
    runs: list[dict[str, int]] = []
    seconds = 0.0
    for argv in argvs:
        before = rpc_counts()
        seconds += timed(argv)[0]
        after = rpc_counts()
        runs.append({k: after.get(k, 0) - before.get(k, 0) for k in after})
    kinds = {k for run in runs for k in run}
    return {k: float(statistics.median(run.get(k, 0) for run in runs)) for k in kinds}, seconds


def idle(seconds: float) -> dict[str, float]:
    before = rpc_counts()
    time.sleep(seconds)
    after = rpc_counts()
    return {k: float(after.get(k, 0) - before.get(k, 0)) for k in after}


def rpc_kinds(base: Path, name: str) -> dict[str, list[list[str]]]:
    """The argvs of each kind of submission, RPC_RUNS each, every job kept from running by the user's --hold."""
    jobs = job_dirs(base, name, RPC_RUNS)
    held = job_dirs(base, name + "-csh", RPC_RUNS)
    for job in held:  # no guard in csh (prepare.guarded): the job goes in held and is released, as all did before
        script = job / "run_submit.script"
        script.write_text(script.read_text().replace("#!/bin/bash", "#!/bin/csh").replace("true", "exit 0"))
    bare_script = base / "bare-rpc.sh"
    bare_script.write_text("#!/bin/sh\ntrue\n")
    bare = ["sbatch", "--hold", f"--job-name={name}", "-p", "norm", "-t", "5", "-o", "/dev/null", str(bare_script)]
    qsub = [[QSUB, str(job / "run_submit.script"), "--hold"] for job in jobs]
    return {
        "relion-qsub, a RELION job": qsub,
        "relion-qsub, the same job dir again (Continue)": qsub,
        "relion-qsub, a csh template (held, released)": [[QSUB, str(j / "run_submit.script"), "--hold"] for j in held],
        "bare sbatch": [bare] * RPC_RUNS,
    }


def rpc_figures(base: Path, tag: str) -> tuple[dict[str, dict[str, float]], dict[str, float], bool]:
    """RPCs per submission of each kind, the idle window's counts (the noise), and whether the lock was held."""
    name = f"brpc-{tag}"
    kinds = rpc_kinds(base, name)
    fd = exclusive()
    try:
        rpcs, longest = {}, 0.0
        for kind, argvs in kinds.items():
            rpcs[kind], seconds = counted(argvs)
            longest = max(longest, seconds)
        noise = idle(longest)
    finally:
        if fd is not None:
            os.close(fd)
    entries = records(sorted({Path(argv[1]).parent for argvs in kinds.values() for argv in argvs if argv[0] == QSUB}))
    cancel_all([str(e["watcher"]) for e in entries if e.get("watcher")])
    cancel_all(squeue_ids(name) + squeue_ids(name + "-csh"))
    return rpcs, noise, fd is not None


def serial(base: Path, tag: str, n: int) -> tuple[dict[str, float], list[dict[str, object]]]:
    python = str(ROOT / ".venv" / "bin" / "python")
    name = f"bserial-{tag}"
    jobs = job_dirs(base, name, n)
    bare_script = base / "bare-serial.sh"
    bare_script.write_text("#!/bin/sh\ntrue\n")
    bare = ["sbatch", "--hold", f"--job-name={name}", "-p", "norm", "-t", "5", "-o", "/dev/null", str(bare_script)]
    times: dict[str, list[float]] = {"python -c pass": [], "sbatch --hold": [], "relion-qsub": []}
    for job in jobs:
        times["python -c pass"].append(timed([python, "-c", "pass"])[0])
        times["sbatch --hold"].append(timed(bare)[0])
        times["relion-qsub"].append(timed([QSUB, str(job / "run_submit.script"), "--hold"])[0])
    entries = records(jobs)
    cancel_all([str(e["watcher"]) for e in entries if e.get("watcher")])
    cancel_all(squeue_ids(name))
    medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
    return medians, entries


def report_rpcs(rpcs: dict[str, dict[str, float]], noise: dict[str, float], locked: bool) -> None:
    how = "holding the testbed's exclusive lock" if locked else "WITHOUT the exclusive lock (it was busy)"
    print(
        f"slurmctld RPCs per submission (sdiag by message type around each of {RPC_RUNS} serial runs, median; {how}):"
    )
    for kind, by_type in rpcs.items():
        total = sum(by_type.values())
        print(f"  {kind:48s} {total:5.2f}: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(by_type.items()) if v))
    print(f"  {'idle window as long as the longest run (noise)':48s} {sum(noise.values()):5.0f}")
    trusted = locked and not any(noise.values())
    first = sum(rpcs["relion-qsub, a RELION job"].values())
    figure("submit", "slurmctld RPCs per submission (RELION job)", first, "", f"<= {RPC_TARGET:g}", first <= RPC_TARGET)
    figure("submit", "slurmctld RPCs per submission (bare sbatch)", sum(rpcs["bare sbatch"].values()), "", "-", None)
    again = sum(rpcs["relion-qsub, the same job dir again (Continue)"].values())
    figure("submit", "slurmctld RPCs per re-run (Continue)", again, "", "-", None)
    held = sum(rpcs["relion-qsub, a csh template (held, released)"].values())
    figure("submit", "slurmctld RPCs per held submission (csh)", held, "", "-", None)
    figure("submit", "RPC figures read alone (lock held, noise 0)", float(trusted), "", "= 1", trusted)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    tag = f"{os.getpid():x}"
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        base = Path(tmp)
        start = time.perf_counter()
        counts = flood(base, tag)
        flood_s = time.perf_counter() - start
        medians, entries = serial(base, tag, n)
        rpcs, noise, locked = rpc_figures(base, tag)
    for key, value in counts.items():
        print(f"{key:40s} {value:6d}")
    print(f"flood: {2 * TOTAL} submissions, {PARALLEL} at a time, in {flood_s:.1f} s")
    for key, ms in medians.items():
        print(f"median {key:33s} {ms:8.1f} ms   ({n} serial runs)")
    overhead = medians["relion-qsub"] - medians["python -c pass"] - medians["sbatch --hold"]
    print(f"relion-qsub overhead over python -c pass + sbatch: {overhead:.1f} ms")
    commands = sum(1 + bool(e.get("watcher")) + bool(e.get("released")) for e in entries) / len(entries)
    print(f"commands per relion-qsub submission: {commands:.2f} (sbatch, the watcher's sbatch, a release if held)")
    report_rpcs(rpcs, noise, locked)
    ok = counts["relion-qsub jobs in squeue"] == counts["relion-qsub distinct jobs"] == TOTAL
    ok = ok and counts["sbatch jobs in squeue"] == TOTAL and counts["relion-qsub records = squeue"] == 1
    figure("submit", "relion-qsub jobs of 200 (8 parallel)", counts["relion-qsub jobs in squeue"], "", "= 200", ok)
    figure("submit", "bare sbatch jobs of 200 (8 parallel)", counts["sbatch jobs in squeue"], "", "= 200", ok)
    figure("submit", "relion-qsub overhead over python+sbatch", overhead, "ms", "<= 20", overhead <= 20)
    figure("submit", "commands per submission (happy path)", commands, "", "-", None)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
