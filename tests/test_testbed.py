"""The testbed itself: a real Slurm cluster with Biowulf-like nodes, GPUs, PMIx MPI and per-node /lscratch, as
strict as a production site: cgroups confine memory (OOM kills) and GPU devices, slurmdbd keeps accounting.

These run real jobs (no mocks). Every wait has a deadline; see tests/slurmtools.py. The two slow endings (a time
limit, a job the controller forgets after MinJobAge) are submitted when this module starts and checked at its end,
so their minute-long waits overlap the other tests.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.slurmtools import (
    JobResult,
    cancel,
    is_finished,
    job_env,
    job_info,
    run,
    sbatch,
    submit_and_wait,
    wait_for_job,
    wait_for_sacct,
    wait_until,
)

pytestmark = pytest.mark.slurm

JOB_TIMEOUT = 120  # seconds; a trivial job here starts within ~1 s
ROOT = Path(__file__).resolve().parent.parent
TESTBED = ROOT / "testbed" / "testbed"

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
    assert sorted(nodes) == [*(f"cn{i}" for i in range(1, 7)), "svc1"]
    assert (nodes["svc1"]["CPUTot"], nodes["svc1"]["Partitions"]) == ("2", "service")  # tiny service jobs
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


# ------------------------------------------------------------------------------------------ strict: memory (OOM)

# Touches every page of 500 MB (b"x" * n writes them all), five times the job's --mem=100M.
HOG = "python3 -c 'x = b\"x\" * (500 << 20)'"


def test_job_over_its_memory_is_killed_and_accounted_out_of_memory(tmp_path: Path) -> None:
    # In the batch step itself: the kernel kills the program (137), the script goes on and exits 0, and Slurm still
    # records the job as OUT_OF_MEMORY (slurmstepd saw the cgroup's oom-kill event). The limit is set on the job's
    # cgroup (its task cgroups below have none of their own).
    script = f"""#!/bin/bash
cg=$(grep -E '^[0-9]+:memory:' /proc/self/cgroup | cut -d: -f3)
echo "LIMIT $(cat "/sys/fs/cgroup/memory${{cg%%/step_*}}/memory.limit_in_bytes")"
{HOG}
echo "HOG EXIT $?"
"""
    result = submit_and_wait(script, tmp_path, "--mem=100M", env=job_env(), timeout=JOB_TIMEOUT)
    assert "LIMIT 104857600" in result.output, result.output  # --mem=100M is the cgroup's hard limit
    assert "HOG EXIT 137" in result.output, result.output
    assert "oom-kill event" in result.output, result.output
    assert result.state == "OUT_OF_MEMORY", result
    rows = wait_for_sacct(result.job_id)
    assert rows[result.job_id]["State"] == "OUT_OF_MEMORY", rows
    assert rows[f"{result.job_id}.batch"]["State"] == "OUT_OF_MEMORY", rows
    assert rows[result.job_id]["ExitCode"] == "0:125", rows  # Slurm's "killed for memory" code


def test_step_over_its_memory_is_killed_and_accounted_out_of_memory(tmp_path: Path) -> None:
    # Under srun (as relion-launch runs RELION): srun reports the task's OOM and exits 1, the job FAILS, the step is
    # OUT_OF_MEMORY in sacct.
    script = f"""#!/bin/bash
srun {HOG}
echo "SRUN EXIT $?"
exit 1
"""
    result = submit_and_wait(script, tmp_path, "--mem=100M", env=job_env(), timeout=JOB_TIMEOUT)
    assert "SRUN EXIT 1" in result.output, result.output
    assert "Out Of Memory" in result.output, result.output
    rows = wait_for_sacct(result.job_id)
    assert rows[f"{result.job_id}.0"]["State"] == "OUT_OF_MEMORY", rows
    assert rows[result.job_id]["State"] == "FAILED", rows


# ------------------------------------------------------------------------------------------ strict: GPU devices

# Opens each fake GPU of the node and says what the device cgroup allowed: ENXIO = allowed (no driver behind the
# device), EPERM = denied by the job's device cgroup.
PROBE_GPUS = """
import errno, os, sys
for path in sys.argv[1:]:
    try:
        os.close(os.open(path, os.O_RDONLY))
        what = "opened"
    except OSError as e:
        what = errno.errorcode.get(e.errno, str(e.errno))
    print("DEV", os.path.basename(path), what, flush=True)
"""


@dataclass(frozen=True)
class GpuView:
    node: str
    job_gpus: str  # SLURM_JOB_GPUS: the node's ids of the allocated GPUs
    cuda: str  # CUDA_VISIBLE_DEVICES as Slurm set it ("unset" if not)
    devices: dict[str, str]  # nvidiaN -> "ENXIO" (allowed) / "EPERM" (denied)

    @property
    def allowed(self) -> list[str]:
        return sorted(d for d, what in self.devices.items() if what == "ENXIO")


def gpu_probe_script(testbed_dir: Path, wait_for: str = "") -> str:
    devices = " ".join(str(testbed_dir / "dev" / f"nvidia{i}") for i in range(4))
    wait = (
        f"touch started-$SLURM_JOB_ID\nfor _ in $(seq 600); do [ -e {wait_for} ] && break; sleep 0.1; done\n"
        if wait_for
        else ""
    )
    return f"""#!/bin/bash
set -eu
{wait}echo "GPU $SLURMD_NODENAME ${{SLURM_JOB_GPUS:-none}} ${{CUDA_VISIBLE_DEVICES-unset}}"
python3 -c '{PROBE_GPUS}' {devices}
"""


def gpu_view(output: str) -> GpuView:
    match = re.search(r"^GPU (\S+) (\S+) (\S+)$", output, re.MULTILINE)
    assert match, output
    devices = dict(re.findall(r"^DEV (\S+) (\S+)$", output, re.MULTILINE))
    assert sorted(devices) == [f"nvidia{i}" for i in range(4)], output
    return GpuView(match[1], match[2], match[3], devices)


def test_one_gpu_job_opens_only_its_own_gpu(tmp_path: Path, testbed_dir: Path) -> None:
    # Two 1-GPU jobs side by side on one node: each gets a different GPU and can open only that one, and Slurm
    # renumbers CUDA_VISIBLE_DEVICES from 0 inside the device cgroup (SLURM_JOB_GPUS keeps the node's id).
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    go = tmp_path / "go"
    script = gpu_probe_script(testbed_dir, wait_for=str(go))
    opts = ("-p", "gpu", "--gres=gpu:p100:1", "-n1")
    (tmp_path / "a" / "job.sh").write_text(script)
    first = sbatch(tmp_path / "a" / "job.sh", f"--chdir={tmp_path / 'a'}", "--output=job.out", *opts, env=job_env())
    jobs = [first]
    try:
        wait_until("the first GPU job started", lambda: (tmp_path / "a" / f"started-{first}").exists(), JOB_TIMEOUT)
        node = job_info(first)["NodeList"]
        (tmp_path / "b" / "job.sh").write_text(script)
        second = sbatch(
            tmp_path / "b" / "job.sh", f"--chdir={tmp_path / 'b'}", "--output=job.out", f"--nodelist={node}", *opts,
            env=job_env(),
        )  # fmt: skip
        jobs.append(second)
        wait_until(
            "the second GPU job started beside the first",
            lambda: (tmp_path / "b" / f"started-{second}").exists(),
            JOB_TIMEOUT,
        )
    finally:
        go.touch()
    views = []
    for job_id, sub in zip(jobs, ("a", "b"), strict=True):
        info = wait_for_job(job_id, timeout=JOB_TIMEOUT)
        output = (tmp_path / sub / "job.out").read_text()
        assert (info["JobState"], info["ExitCode"]) == ("COMPLETED", "0:0"), output
        views.append(gpu_view(output))
    a, b = views
    assert a.node == b.node
    assert a.job_gpus != b.job_gpus, (a, b)  # both ran at once: two different GPUs of the node
    for view in views:
        assert view.cuda == "0", view  # renumbered: the job's only GPU is device 0 to CUDA
        assert view.allowed == [f"nvidia{view.job_gpus}"], view  # its own device, by the node's id
        assert set(view.devices.values()) == {"ENXIO", "EPERM"}, view
    assert a.devices[f"nvidia{b.job_gpus}"] == "EPERM" and b.devices[f"nvidia{a.job_gpus}"] == "EPERM"
    # GPU allocations are accounted (AccountingStorageTRES=gres/gpu).
    rows = wait_for_sacct(first)
    assert "gres/gpu=1" in rows[first]["AllocTRES"], rows


def test_job_without_gpus_opens_none(tmp_path: Path, testbed_dir: Path) -> None:
    result = submit_and_wait(
        gpu_probe_script(testbed_dir), tmp_path, "-p", "gpu", "-n1", env=job_env(), timeout=JOB_TIMEOUT
    )
    assert_ok(result)
    view = gpu_view(result.output)
    assert (view.job_gpus, view.cuda) == ("none", "unset"), view
    assert view.allowed == [], view


def test_srun_pmix_with_gpus_and_cgroups_across_two_nodes(tmp_path: Path, mpi_hello: Path) -> None:
    # One MPI world over two GPU nodes with every confinement on: each rank lives in its own node's step cgroup.
    script = f"""#!/bin/bash
set -eu
srun --mpi=pmix {mpi_hello}
srun bash -c 'echo "CG $SLURMD_NODENAME $(grep -E "^[0-9]+:memory:" /proc/self/cgroup | cut -d: -f3)"'
"""
    result = submit_and_wait(
        script, tmp_path, "-N2", "--ntasks-per-node=2", "-p", "gpu", "--gres=gpu:p100:2", "--mem=2G",
        env=mpi_env(), timeout=JOB_TIMEOUT,
    )  # fmt: skip
    assert_ok(result)
    world = ranks(result.output)
    assert [rank for rank, _, _, _ in world] == [0, 1, 2, 3], result.output
    assert {size for _, size, _, _ in world} == {4} and {total for _, _, _, total in world} == {6}
    assert len({node for _, _, node, _ in world}) == 2, result.output
    cgroups = re.findall(r"^CG (\S+) (\S+)$", result.output, re.MULTILINE)
    assert len(cgroups) == 4, result.output
    for node, path in cgroups:
        assert re.fullmatch(rf"/slurm_{node}/uid_\d+/job_{result.job_id}/step_1(/task_\d+)?", path), path


# ------------------------------------------------------------------------------------------ strict: slow endings


@dataclass(frozen=True)
class SlowJobs:
    workdir: Path
    timeout_job: str  # --time=1 (a minute, Slurm's smallest limit), sleeps far longer
    short_job: str  # ends at once; the controller forgets it after MinJobAge, sacct must not


@pytest.fixture(scope="module", autouse=True)
def slow_jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlowJobs]:
    """Submitted when this module starts, checked by the last tests: their waits overlap the others'."""
    workdir = tmp_path_factory.mktemp("slow")
    timeout_script = workdir / "timeout.sh"
    # `sleep & wait`: the trap runs as soon as SIGTERM arrives, not after the sleep.
    timeout_script.write_text(
        "#!/bin/bash\ntrap 'echo \"TRAP TERM\"; exit 143' TERM\necho STARTED\nsleep 600 & wait\necho NOT KILLED\n"
    )
    short_script = workdir / "short.sh"
    short_script.write_text("#!/bin/bash\necho SHORT\n")
    common = (f"--chdir={workdir}", "--output=%x-%j.out", "-n1")
    jobs = SlowJobs(
        workdir,
        sbatch(timeout_script, *common, "--job-name=timeout", "--time=1", env=job_env()),
        sbatch(short_script, *common, "--job-name=short", env=job_env()),
    )
    yield jobs
    cancel(jobs.timeout_job)


def test_time_limit_ends_timeout(slow_jobs: SlowJobs) -> None:
    # slurmctld checks time limits every 30 s: a 1-minute job ends 60-90 s after it starts, plus KillWait.
    info = wait_for_job(slow_jobs.timeout_job, timeout=240, poll=1)
    output = (slow_jobs.workdir / f"timeout-{slow_jobs.timeout_job}.out").read_text()
    assert info["JobState"] == "TIMEOUT", (info, output)
    assert "DUE TO TIME LIMIT" in output and "TRAP TERM" in output, output  # SIGTERM first, the trap ran
    assert "NOT KILLED" not in output
    rows = wait_for_sacct(slow_jobs.timeout_job)
    assert rows[slow_jobs.timeout_job]["State"] == "TIMEOUT", rows


def min_job_age() -> int:
    for line in run(["scontrol", "show", "config"]).stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MinJobAge":
            return int(value.split()[0])
    raise AssertionError("scontrol show config has no MinJobAge")


def test_sacct_answers_after_the_controller_forgot_the_job(slow_jobs: SlowJobs) -> None:
    # After MinJobAge the controller purges the job (on its once-a-minute timer): scontrol and squeue no longer
    # know it, and only the accounting database can say how it ended.
    job_id = slow_jobs.short_job
    age = min_job_age()
    assert 0 < age <= 120, f"MinJobAge={age}: this test would wait too long"
    # No wait_for_job first: the job ends at once, and when the module's other tests take longer than MinJobAge the
    # controller has already forgotten it (scontrol then knows no state to wait for). Exactly this answer: a
    # controller that is briefly unreachable (another test stalls it) is no forgotten job.
    wait_until(
        f"the controller forgot job {job_id}",
        lambda: "Invalid job id" in run(["scontrol", "show", "job", job_id], check=False).stderr,
        timeout=age + 90,
        poll=1,
    )
    rows = wait_for_sacct(job_id)
    assert (rows[job_id]["State"], rows[job_id]["ExitCode"]) == ("COMPLETED", "0:0"), rows
    assert rows[f"{job_id}.batch"]["State"] == "COMPLETED", rows


# ------------------------------------------------------------------------------------------ up, up, down, up

# Run by `make test` only (it sets this): it restarts the shared cluster, which would kill the jobs of anyone else
# running tests against it. The owner of the testbed is whoever runs `make test`, which restarts it anyway.
OWNER = os.environ.get("RELION_QSUB_TESTBED_OWNER") == "1"


def run_testbed(*args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    proc = subprocess.run([str(TESTBED), *args], capture_output=True, text=True, timeout=timeout, check=False)
    return proc, time.monotonic() - t0


def recorded_pids(testbed_dir: Path) -> dict[str, int]:
    """The daemons `up` recorded (run/*.pid) that are still alive, by file name."""
    pids = {}
    for f in (testbed_dir / "run").glob("*.pid"):
        text = f.read_text().strip()
        if text.isdigit() and Path(f"/proc/{text}").exists():
            pids[f.stem] = int(text)
    return pids


def our_cgroups() -> list[str]:
    names = {f"slurm_cn{i}" for i in range(1, 7)}
    return sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/slurm_cn*") if p.name in names)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True


@pytest.mark.skipif(not OWNER, reason="restarts the shared testbed: only `make test` runs it")
def test_up_twice_down_up(tmp_path: Path, testbed_dir: Path) -> None:
    assert os.geteuid() == 0, "testbed up/down need root"
    for _ in range(2):
        proc, took = run_testbed("up")
        assert proc.returncode == 0, proc.stderr
        assert "already up" in proc.stderr, proc.stderr  # warm: a no-op
        assert took < 5, f"warm up took {took:.1f} s"
    before = recorded_pids(testbed_dir)
    assert {"mariadbd", "slurmdbd", "slurmctld", "slurmd-cn1", "slurmd-cn6"} <= set(before), before
    proc, took_down = run_testbed("down")
    assert proc.returncode == 0, proc.stderr
    try:
        assert not [name for name, pid in before.items() if alive(pid)], "daemons survived down"
        assert our_cgroups() == [], "down left cgroup dirs"
        assert not (testbed_dir / "mysql").exists(), "down kept the accounting database"
    finally:
        proc, took_up = run_testbed("up")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "initialising MariaDB" in proc.stderr, proc.stderr  # a cold start, first init included
    assert took_up < 30, f"cold up took {took_up:.1f} s (budget 15 s on an idle 2-core machine)"
    print(f"down {took_down:.1f} s, cold up {took_up:.1f} s")
    # The new cluster runs jobs and accounts for them.
    result = submit_and_wait("#!/bin/bash\necho BACK\n", tmp_path, env=job_env(), timeout=JOB_TIMEOUT)
    assert_ok(result)
    assert wait_for_sacct(result.job_id)[result.job_id]["State"] == "COMPLETED"


def test_daemons_work_in_the_state_dir(testbed_dir: Path) -> None:
    """slurmstepd inherits slurmd's working directory: once that is gone (a pytest tmp dir that ran `up`), every step
    prints "unable to get current working directory" into the job's stderr. `up` starts the daemons in the state dir
    (mariadbd and munged choose their own: the datadir and /)."""
    cwds: dict[str, list[str]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            if name in ("slurmctld", "slurmd", "slurmdbd", "mariadbd"):
                cwds.setdefault(name, []).append(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            continue
    assert set(cwds) == {"slurmctld", "slurmd", "slurmdbd", "mariadbd"}, cwds
    assert all(os.path.isdir(cwd) for found in cwds.values() for cwd in found), cwds  # "(deleted)" is no dir
    assert set(cwds["slurmd"] + cwds["slurmctld"] + cwds["slurmdbd"]) == {str(testbed_dir)}, cwds
