"""Synthetic RELION projects for `relion-qsub report` tests and benchmarks/bench_report.py.

The sacct output is the real one: ``tests/data/report/sacct-22.05.txt`` was recorded on the testbed (Slurm 22.05.8,
slurmdbd, jobacct_gather/cgroup) with ``report.sacct.argv``'s format for four jobs: 111 an srun step killed by the
cgroup OOM handler (job FAILED 1:0, step OUT_OF_MEMORY 0:125), 112 a rank that exited 3 under ``srun -K1``, 113 a job
that hit its 1-minute time limit, 114 a 2-task GPU job that completed. A synthetic job copies one of them with its
own job id and times, so every line has the shape Slurm printed.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

RECORDED = Path(__file__).resolve().parent / "data" / "report" / "sacct-22.05.txt"
KINDS = {"111": "oom", "112": "crash", "113": "timeout", "114": "ok"}
RELION_EXIT = {"oom": "FAILURE", "crash": "FAILURE", "timeout": "FAILURE", "ok": "SUCCESS"}
SCRIPT = """#!/bin/bash
#SBATCH --ntasks=2
#SBATCH --partition={partition}
#SBATCH --cpus-per-task=1
#SBATCH --time={time}
#SBATCH --gres={gres}
#SBATCH --error=Class2D/job001/run.err
`which relion_refine_mpi` --o Class2D/job001/run --j 1 --pipeline_control Class2D/job001/
"""
ERR = {
    "oom": "srun: error: cn5: task 0: Out Of Memory\nslurmstepd-cn5: error: Detected 1 oom-kill event(s) in "
    "StepId=111.0. Some of your processes may have been killed by the cgroup out-of-memory handler.\n",
    "crash": "srun: error: cn6: task 1: Exited with exit code 3\n",
    "timeout": "slurmstepd-cn5: error: *** JOB 113 ON cn5 CANCELLED AT 2026-12-01T22:39:03 DUE TO TIME LIMIT ***\n",
    "ok": "",
}


def recorded() -> dict[str, list[str]]:
    """The recorded lines by job id."""
    groups: dict[str, list[str]] = {}
    for line in RECORDED.read_text().splitlines():
        if line.strip():
            groups.setdefault(line.split("|")[0].split(".")[0], []).append(line)
    return groups


def shifted(lines: list[str], job_id: str, delta: timedelta) -> list[str]:
    """A recorded job's lines with another job id and every timestamp moved by ``delta``."""
    out = []
    for line in lines:
        fields = line.split("|")
        fields[0] = job_id + fields[0][fields[0].index(".") :] if "." in fields[0] else job_id
        for i in (3, 4, 5):
            try:
                fields[i] = (datetime.fromisoformat(fields[i]) + delta).isoformat()
            except ValueError:
                pass
        out.append("|".join(fields))
    return out


def make_project(root: Path, n: int, first_id: int = 5000) -> str:
    """A project with ``n`` Class2D/Refine3D job dirs submitted through relion-qsub; returns sacct's output for
    them (the recorded jobs in turn)."""
    groups = recorded()
    originals = sorted(groups)
    base = datetime.fromisoformat(groups["111"][0].split("|")[3])
    (root / "default_pipeline.star").write_text("data_pipeline_general\n\n_rlnPipeLineJobCounter 1\n")
    sacct_lines: list[str] = []
    for i in range(n):
        original = originals[i % len(originals)]
        kind = KINDS[original]
        job_id = str(first_id + i)
        delta = timedelta(minutes=i)
        jobdir = root / ("Class2D" if i % 3 else "Refine3D") / f"job{i + 1:03d}"
        jobdir.mkdir(parents=True)
        logged = base + delta + timedelta(seconds=1)
        entry = {"time": logged.astimezone().isoformat(), "job_id": job_id, "token": f"relion-qsub:{i:x}"}
        (jobdir / "relion-qsub.jsonl").write_text(json.dumps({**entry, "submitted": True}) + "\n")
        partition = "gpu" if kind == "ok" else "norm"
        gres = "lscratch:5,gpu:p100:1" if kind == "ok" else "lscratch:5"
        (jobdir / "run_submit.slurm").write_text(SCRIPT.format(partition=partition, time="0:10:00", gres=gres))
        (jobdir / f"RELION_JOB_EXIT_{RELION_EXIT[kind]}").touch()
        (jobdir / "run.err").write_text(ERR[kind])
        (jobdir / "scratch_usage.log").write_text(
            "# time host used_kib free_kib dir (lscratch_mon.sh, every 1 s)\n"
            f"2026-12-01T22:37:46 cn5 {1024 * (i % 7)} 9000000 /lscratch/{job_id}\n"
        )
        sacct_lines += shifted(groups[original], job_id, delta)
    return "\n".join(sacct_lines) + "\n"
