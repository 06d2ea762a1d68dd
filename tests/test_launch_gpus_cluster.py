"""relion-launch on the real Slurm testbed: RELION's GPU mapping under a homogeneous+1 job on two GPU nodes.

The testbed's GPUs are character devices (gres gpu:p100:4 on cn[1-4]): Slurm allocates them and sets
CUDA_VISIBLE_DEVICES, but no CUDA runs. So a stand-in for relion_refine_mpi does, in every rank, what RELION does
to pick its device and name it (src/ml_optimiser_mpi.cpp MlOptimiserMpi::initialise, the same in 3.1.4, 4.0.2 and
5.0.1), and writes the identifiers the leader would count. The assertion is RELION's own: no "Device <CUDA index>
on <host>" counted by two followers, or each of them gets 1/K of the GPU's memory.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from tests.test_launch_cluster import LAUNCHER, finished, job_nodes, submit

pytestmark = pytest.mark.slurm

STAND_IN = r'''#!/usr/bin/env python3
"""Stand-in for relion_refine_mpi --gpu "" --j N: device choice and identifiers as RELION's
src/ml_optimiser_mpi.cpp MlOptimiserMpi::initialise makes them (automatic mapping only)."""
import os
import sys
import time
from pathlib import Path

args = sys.argv[1:]


def option(name, default):
    return args[args.index(name) + 1] if name in args[:-1] else default


out = Path(option("--o", "."))
threads = int(option("--j", "1"))  # nr_threads
if option("--gpu", "")[:1].isdigit():
    sys.exit("stand-in: only the automatic mapping (--gpu \"\") is modelled")
rank = int(os.environ["SLURM_PROCID"])  # the MPI rank (srun's PMIx numbers the ranks the same way)
size = int(os.environ["SLURM_STEP_NUM_TASKS"])
# MPI_Get_processor_name(): the host name. The testbed's virtual nodes share one host, so the Slurm node name stands
# in for it (on a cluster each node's host name is its own).
host = os.environ["SLURMD_NODENAME"]
if rank == 0:
    sys.exit(0)  # the leader does no GPU work: it only gathers the followers' reports
# accGPUGetDeviceCount(): the devices CUDA enumerates, those named in the rank's own CUDA_VISIBLE_DEVICES
visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
if not visible:
    sys.exit("You have no GPUs compatible with RELION (CUDA/HIP-capable with supported GPU targets")
# Every follower sends the leader its host name; the leader counts followers per host (ranksOnHost). Through
# files here, as there is no MPI: each follower waits for all of them.
(out / f"host-{rank}.tmp").write_text(host)
os.rename(out / f"host-{rank}.tmp", out / f"host-{rank}")
deadline = time.monotonic() + 60
while sum(1 for r in range(1, size) if (out / f"host-{r}").exists()) < size - 1:
    if time.monotonic() > deadline:
        sys.exit("stand-in: not every follower reported its host")
    time.sleep(0.05)
on_host = sum(1 for r in range(1, size) if (out / f"host-{r}").read_text() == host)
ndev = len(visible)
# fullAutomaticMapping: the leader sends each thread of this follower its device index
if on_host > 1:
    ids = [ndev * (((rank - 1) % on_host) * threads + i) // (on_host * threads) for i in range(threads)]
else:
    ids = [ndev * i // threads for i in range(threads)]
devices = list(dict.fromkeys(ids))  # gpuDevices: one bundle per distinct device
# each follower sends "Device <gpuDevices[i]> on <processor name>"; the leader counts equal identifiers
lines = [f"Device {d} on {host}\t{visible[d]}\t{','.join(visible)}\n" for d in devices]
(out / f"ident-{rank}").write_text("".join(lines))
'''


def identifiers(out: Path) -> dict[int, list[tuple[str, str, str]]]:
    """rank -> [(identifier, the CUDA_VISIBLE_DEVICES entry it is, all the rank saw)]."""
    got: dict[int, list[tuple[str, str, str]]] = {}
    for path in out.glob("ident-*"):
        rows = [line.split("\t") for line in path.read_text().splitlines()]
        got[int(path.name.split("-")[1])] = [(r[0], r[1], r[2]) for r in rows]
    return got


@pytest.mark.parametrize(("gres", "per_device"), [("gpu:p100:4", 1), ("gpu:p100:2", 2)], ids=["4-gpus", "2-gpus"])
def test_relion_counts_no_gpu_twice_under_homogeneous_plus_one(tmp_path: Path, gres: str, per_device: int) -> None:
    """2 nodes x 5 tasks: the leader alone-extra on the first node, 4 workers per node. With 4 GPUs per node
    every follower names its own device; with 2, RELION itself puts two followers on each, and the plan says
    exactly which before the step starts."""
    standin = tmp_path / "bin" / "relion_refine_mpi"  # named as RELION's, so relion-launch plans RELION's mapping
    standin.parent.mkdir()
    standin.write_text(STAND_IN)
    standin.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    command = f'{standin} --o {out} --i particles.star --gpu "" --j 1 --pipeline_control Class2D/job001/'
    body = f"{LAUNCHER} --dry-run {command} > {tmp_path / 'plan.txt'}\n{LAUNCHER} {command}\necho launch-rc=$?"
    job = submit(tmp_path, body, "-p", "gpu", f"--gres={gres}", "-N2", "--ntasks-per-node=5", "--mem-per-cpu=500")
    info = finished(job)
    jobdir = tmp_path / "Class2D" / "job001"
    run_out, run_err = (jobdir / "run.out").read_text(), (jobdir / "run.err").read_text()
    assert info["JobState"] == "COMPLETED" and "launch-rc=0" in run_out, run_out + run_err
    first, second = job_nodes(info)
    ngpus = int(gres.rsplit(":", 1)[1])

    reports = identifiers(out)
    assert sorted(reports) == list(range(1, 9))  # 8 followers, the leader reports none
    # every rank sees all the GPUs Slurm gave its node
    assert {seen for rows in reports.values() for _, _, seen in rows} == {",".join(map(str, range(ngpus)))}
    counts = Counter(ident for rows in reports.values() for ident, _, _ in rows)
    assert set(counts.values()) == {per_device}, counts
    assert set(counts) == {f"Device {d} on {node}" for node in (first, second) for d in range(ngpus)}

    # relion-launch's plan predicted RELION's mapping: the same GPU for each rank, the same shared identifiers
    plan = (tmp_path / "plan.txt").read_text()
    planned = {int(r): gpu for r, gpu in re.findall(r"^  rank (\d+) +\S+ +GPU (.+)$", plan, re.MULTILINE)}
    assert planned == {0: "none (leader)", **{r: rows[0][1] for r, rows in reports.items()}}
    warned = set(re.findall(r"warning: (Device \d+ on \S+) \(GPU \d+\) would be shared", run_err))
    assert warned == {ident for ident, n in counts.items() if n > 1}
    summary = run_out.splitlines()[0]
    assert f"| GPUs/rank 1 of {ngpus} visible (leader none" in summary, summary
    assert not (jobdir / "RELION_JOB_EXIT_FAILURE").exists()


# ------------------------------------------------------------------------------ RELION 5's Python programs

FAILING_MODELANGELO = """#!/bin/sh
# stand-in for relion_python_modelangelo: fails the way a missing weight file makes it fail
echo "modelangelo: no weights" >&2
exit 1
"""


@pytest.mark.parametrize("present", [False, True], ids=["not-on-path", "fails"])
def test_modelangelo_job_tells_relion_when_it_cannot_run(tmp_path: Path, present: bool) -> None:
    """src/pipeline_jobs.cpp (5.0.1) runs ModelAngelo as `relion_python_modelangelo build ... --pipeline-control
    <jobdir>` (a dash): a program missing from the compute nodes' PATH is refused before srun, and a failed one
    leaves RELION_JOB_EXIT_FAILURE; either way the GUI stops showing the job Running."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    if present:
        (bindir / "relion_python_modelangelo").write_text(FAILING_MODELANGELO)
        (bindir / "relion_python_modelangelo").chmod(0o755)
    command = "relion_python_modelangelo build -d 0 -o Class2D/job001/ --pipeline-control Class2D/job001/"
    job = submit(tmp_path, f'PATH="{bindir}:$PATH" {LAUNCHER} {command}\necho launch-rc=$?', "-p", "gpu", "-n1",
                 "--gres=gpu:p100:1", "--mem-per-cpu=500")  # fmt: skip
    finished(job)
    jobdir = tmp_path / "Class2D" / "job001"
    run_out, run_err = (jobdir / "run.out").read_text(), (jobdir / "run.err").read_text()
    assert (jobdir / "RELION_JOB_EXIT_FAILURE").exists(), run_out + run_err
    ours = [line for line in run_err.splitlines() if line.startswith("relion-launch:")]
    if present:
        assert "launch-rc=1" in run_out and "modelangelo: no weights" in run_err
        assert len(ours) == 1 and "rank 0 on cn" in ours[0] and "failed first (Exited with exit code 1)" in ours[0]
        assert ours[0].endswith("wrote Class2D/job001/RELION_JOB_EXIT_FAILURE"), run_err
    else:
        assert "launch-rc=69" in run_out, run_out + run_err
        assert ours == [
            "relion-launch: error: relion_python_modelangelo (the job's command) is not on PATH inside the job: it "
            "must be on PATH on the compute nodes (load RELION's module or conda environment in the queue template "
            "before the launcher line, or give its full path in the job's executable box)"
        ], run_err
