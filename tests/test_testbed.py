"""The testbed itself: a real Slurm cluster with Biowulf-like nodes, GPUs, PMIx MPI and per-node /lscratch.

These run real jobs (no mocks). Every wait has a deadline; see tests/slurmtools.py.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.slurmtools import (
    JobResult,
    is_finished,
    job_env,
    run,
    sbatch,
    submit_and_wait,
    wait_for_job,
    wait_until,
)

pytestmark = pytest.mark.slurm

JOB_TIMEOUT = 120  # seconds; a trivial job here starts within ~1 s

MPI_HELLO_C = r"""
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

/* Each rank reports its place in the world; the allreduce proves the ranks really talk to each other. */
int main(int argc, char **argv) {
    int rank, size, sum = 0;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    const char *node = getenv("SLURMD_NODENAME");
    printf("RANK %d SIZE %d NODE %s SUM %d\n", rank, size, node ? node : "?", sum);
    fflush(stdout);
    MPI_Finalize();
    return 0;
}
"""

RANK_LINE = re.compile(r"^RANK (\d+) SIZE (\d+) NODE (\S+) SUM (\d+)$", re.MULTILINE)


def mpi_env() -> dict[str, str]:
    # OpenMPI's shared-memory transport crashes between virtual nodes of one host: TCP over loopback.
    return job_env(OMPI_MCA_btl="self,tcp")


@pytest.fixture(scope="module")
def mpi_hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("mpicc") is None:
        pytest.fail("mpicc is missing: run `make deps` (libopenmpi-dev)", pytrace=False)
    src = tmp_path_factory.mktemp("mpi") / "mpi_hello.c"
    src.write_text(MPI_HELLO_C)
    exe = src.with_suffix("")
    run(["mpicc", "-O1", "-o", str(exe), str(src)], timeout=120)
    return exe


def ranks(output: str) -> list[tuple[int, int, str, int]]:
    """(rank, size, node, sum) per MPI rank, sorted by rank."""
    return sorted((int(r), int(s), n, int(t)) for r, s, n, t in RANK_LINE.findall(output))


def assert_ok(result: JobResult) -> None:
    assert result.ok, f"job {result.job_id} ended {result.state} {result.exit_code}:\n{result.output}"


def test_nodes_look_like_a_small_biowulf() -> None:
    nodes = {}
    for line in run(["scontrol", "show", "node", "-o"]).stdout.splitlines():
        fields = dict(f.partition("=")[::2] for f in line.split() if "=" in f)
        nodes[fields["NodeName"]] = fields
    assert sorted(nodes) == [f"cn{i}" for i in range(1, 7)]
    for name in ("cn1", "cn2", "cn3", "cn4"):
        node = nodes[name]
        assert (node["CPUTot"], node["RealMemory"]) == ("16", "64000")
        assert node["Gres"] == "gpu:p100:4,lscratch:800"
        assert node["AvailableFeatures"] == "gpup100"
        assert node["Partitions"] == "gpu"
    for name in ("cn5", "cn6"):
        node = nodes[name]
        assert (node["CPUTot"], node["RealMemory"]) == ("32", "128000")
        assert node["Gres"] == "lscratch:400"
        assert node["AvailableFeatures"] == "x2695"
        assert set(node["Partitions"].split(",")) == {"multinode", "norm"}
    partitions = run(["sinfo", "-h", "-o", "%P"]).stdout.split()
    assert "norm*" in partitions  # the default partition


@pytest.mark.parametrize(
    ("options", "accepted"),
    [
        (["-p", "gpu", "--gres=lscratch:800"], True),
        (["-p", "gpu", "--gres=lscratch:801"], False),
        (["-p", "norm", "--gres=gpu:p100:1"], False),
        (["-p", "gpu", "--constraint=x2695"], False),
    ],
    ids=["lscratch-fits", "lscratch-too-big", "no-gpu-on-norm", "wrong-feature"],
)
def test_resources_are_enforced_at_submission(options: list[str], accepted: bool) -> None:
    proc = run(["sbatch", "--test-only", *options, "--wrap=true"], env=job_env(), check=False)
    assert (proc.returncode == 0) == accepted, f"{options}: {proc.stdout} {proc.stderr}"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["-p", "multinode"], {"cn5", "cn6"}),
        (["-p", "gpu", "--nodelist=cn[2,4]"], {"cn2", "cn4"}),
    ],
    ids=["multinode", "gpu-nodelist"],
)
def test_multinode_job_runs_on_requested_nodes(tmp_path: Path, options: list[str], expected: set[str]) -> None:
    script = """#!/bin/bash
set -eu
echo "NODELIST $SLURM_JOB_NODELIST"
echo "BATCH $SLURMD_NODENAME"
srun --ntasks-per-node=1 bash -c 'echo "STEP $SLURMD_NODENAME $SLURM_PROCID"'
"""
    result = submit_and_wait(script, tmp_path, "-N2", *options, env=job_env(), timeout=JOB_TIMEOUT)
    assert_ok(result)
    listed = run(["scontrol", "show", "hostnames", result.info["NodeList"]]).stdout.split()
    assert set(listed) == expected
    assert f"NODELIST {result.info['NodeList']}" in result.output
    steps = re.findall(r"^STEP (\S+) (\d+)$", result.output, re.MULTILINE)
    assert {node for node, _ in steps} == expected, result.output
    assert sorted(rank for _, rank in steps) == ["0", "1"]
    # The batch script runs on the first node of the allocation.
    assert re.findall(r"^BATCH (\S+)$", result.output, re.MULTILINE) == [listed[0]], result.output


def test_gpu_job_sees_four_gpus_per_node(tmp_path: Path) -> None:
    script = """#!/bin/bash
set -eu
echo "BATCH $SLURMD_NODENAME ${SLURM_JOB_GPUS:-none} ${CUDA_VISIBLE_DEVICES:-none}"
srun --ntasks-per-node=1 bash -c \
  'echo "STEP $SLURMD_NODENAME ${SLURM_STEP_GPUS:-none} ${CUDA_VISIBLE_DEVICES:-none}"'
"""
    result = submit_and_wait(
        script, tmp_path, "-N2", "-p", "gpu", "--gres=gpu:p100:4", env=job_env(), timeout=JOB_TIMEOUT
    )
    assert_ok(result)
    batch = re.findall(r"^BATCH (\S+) (\S+) (\S+)$", result.output, re.MULTILINE)
    assert [(gpus, cvd) for _, gpus, cvd in batch] == [("0,1,2,3", "0,1,2,3")], result.output
    steps = re.findall(r"^STEP (\S+) (\S+) (\S+)$", result.output, re.MULTILINE)
    assert len(steps) == 2, result.output
    assert len({node for node, _, _ in steps}) == 2
    assert all(node in {"cn1", "cn2", "cn3", "cn4"} for node, _, _ in steps)
    assert all((gpus, cvd) == ("0,1,2,3", "0,1,2,3") for _, gpus, cvd in steps), result.output


def test_srun_pmix_forms_one_mpi_world_across_two_nodes(tmp_path: Path, mpi_hello: Path) -> None:
    script = f"""#!/bin/bash
set -eu
srun --mpi=pmix {mpi_hello}
"""
    result = submit_and_wait(
        script, tmp_path, "-N2", "--ntasks-per-node=2", "-p", "multinode", env=mpi_env(), timeout=JOB_TIMEOUT
    )
    assert_ok(result)
    world = ranks(result.output)
    n = 4
    assert [rank for rank, _, _, _ in world] == list(range(n)), result.output
    assert {size for _, size, _, _ in world} == {n}
    assert {total for _, _, _, total in world} == {n * (n - 1) // 2}  # the allreduce crossed both nodes
    assert sorted(node for _, _, node, _ in world) == ["cn5", "cn5", "cn6", "cn6"]


@pytest.mark.parametrize(
    "order",
    [[0, 0, 0, 0, 0, 1, 1, 1, 1], [0, 1, 0, 1, 0, 1, 0, 1, 0]],
    ids=["blocked", "interleaved"],
)
def test_arbitrary_hostfile_gives_5_plus_4_layout_in_file_order(
    tmp_path: Path, mpi_hello: Path, order: list[int]
) -> None:
    # A RELION-style layout: 2 nodes x 5 slots, but 9 ranks (the leader's node gives one slot more).
    script = f"""#!/bin/bash
set -eu
nodes=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))
hostfile=$PWD/hostfile.$SLURM_JOB_ID
for i in {" ".join(map(str, order))}; do echo "${{nodes[$i]}}"; done > "$hostfile"
sed 's/^/HOSTFILE /' "$hostfile"
export SLURM_HOSTFILE=$hostfile SLURM_DISTRIBUTION=arbitrary
unset SLURM_NTASKS_PER_NODE
srun --mpi=pmix {mpi_hello}
"""
    result = submit_and_wait(
        script, tmp_path, "-N2", "--ntasks-per-node=5", "-p", "multinode", env=mpi_env(), timeout=JOB_TIMEOUT
    )
    assert_ok(result)
    hostfile = re.findall(r"^HOSTFILE (\S+)$", result.output, re.MULTILINE)
    assert len(hostfile) == 9 and sorted(set(hostfile)) == ["cn5", "cn6"], result.output
    world = ranks(result.output)
    assert [rank for rank, _, _, _ in world] == list(range(9)), result.output
    assert {size for _, size, _, _ in world} == {9}
    assert {total for _, _, _, total in world} == {36}
    assert [node for _, _, node, _ in world] == hostfile  # rank i runs on hostfile line i
    assert sorted(hostfile.count(node) for node in set(hostfile)) == [4, 5]


def test_lscratch_is_private_per_node_and_removed_after_the_job(tmp_path: Path, testbed_dir: Path) -> None:
    # The job writes one file per node into /lscratch/$SLURM_JOB_ID, reports what each node sees, then waits
    # for the host to look at the per-node backing dirs before it ends.
    script = """#!/bin/bash
set -eu
srun --ntasks-per-node=1 bash -c 'echo "$SLURMD_NODENAME" > "/lscratch/$SLURM_JOB_ID/from-$SLURMD_NODENAME"'
srun --ntasks-per-node=1 bash -c \
  'echo "SEES $SLURMD_NODENAME $(stat -c %U "/lscratch/$SLURM_JOB_ID") $(ls -A "/lscratch/$SLURM_JOB_ID")"'
touch written
for _ in $(seq 600); do [ -e go ] && exit 0; sleep 0.1; done
echo "the host never said go" >&2
exit 1
"""
    (tmp_path / "job.sh").write_text(script)
    job_id = sbatch(
        tmp_path / "job.sh",
        f"--chdir={tmp_path}",
        f"--output={tmp_path}/job-%j.out",
        "-N2",
        "-p",
        "multinode",
        env=job_env(),
    )
    backing = {node: testbed_dir / "nodes" / node / "lscratch" / job_id for node in ("cn5", "cn6")}
    try:
        wait_until(
            "the job wrote its scratch files",
            lambda: (tmp_path / "written").exists() or is_finished(job_id),
            timeout=JOB_TIMEOUT,
        )
        output = (tmp_path / f"job-{job_id}.out").read_text()
        assert (tmp_path / "written").exists(), output
        # Inside the job: each node saw only its own file, in a dir owned by the job's user.
        sees = sorted(re.findall(r"^SEES (\S+) (\S+) (.*)$", output, re.MULTILINE))
        assert sees == [("cn5", "root", "from-cn5"), ("cn6", "root", "from-cn6")], output
        # On the host: the files landed in the per-node backing dirs, not in the host's /lscratch.
        for node, path in backing.items():
            assert sorted(p.name for p in path.iterdir()) == [f"from-{node}"]
        assert not Path("/lscratch", job_id).exists()
    finally:
        (tmp_path / "go").touch()
    info = wait_for_job(job_id, timeout=JOB_TIMEOUT)
    assert (info["JobState"], info["ExitCode"]) == ("COMPLETED", "0:0"), info
    # The epilog removes the dirs when the job ends (it may still be running just after the job's last state).
    wait_until("the epilog removed the job's scratch dirs", lambda: not any(p.exists() for p in backing.values()))
