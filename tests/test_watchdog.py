"""The stall watchdog (relion_qsub/launch/watchdog.py): settings, what it reads, the judgement, real processes.

Real processes stand in for ranks here: a ``sleep`` blocks without CPU (as a rank blocked in a read or a
non-spinning wait does); a Python loop burns CPU without writing (a slow iteration between progress-bar ticks).
The real-cluster tests (job cgroup on the batch node, srun, a real relion_refine_mpi) are in
tests/test_watchdog_cluster.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from relion_qsub.launch import watchdog
from relion_qsub.launch.watchdog import Settings, Watch

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "bin" / "relion-launch"


@pytest.mark.parametrize(
    "env,seconds,end,warned",
    [
        ({}, 3600.0, False, False),
        ({"RELION_LAUNCH_STALL_MINUTES": "30"}, 1800.0, False, False),
        ({"RELION_LAUNCH_STALL_MINUTES": "0.5", "RELION_LAUNCH_STALL_END": "yes"}, 30.0, True, False),
        ({"RELION_LAUNCH_STALL_MINUTES": "soon"}, 3600.0, False, True),
        ({"RELION_LAUNCH_STALL_MINUTES": "-5"}, 3600.0, False, True),
        ({"RELION_LAUNCH_STALL_MINUTES": "nan"}, 3600.0, False, True),
    ],
)
def test_settings(env: dict[str, str], seconds: float, end: bool, warned: bool) -> None:
    conf, warning = watchdog.settings(env)
    assert conf == Settings(seconds, end)
    assert (warning is not None) == warned
    if warning:
        assert "RELION_LAUNCH_STALL_MINUTES" in warning and "60" in warning


@pytest.mark.parametrize("word", ["0", "off", "no", "OFF"])
def test_site_can_turn_it_off(word: str) -> None:
    assert watchdog.settings({"RELION_LAUNCH_STALL_MINUTES": word}) == (None, None)


def test_poll_is_a_tenth_of_the_stall_time_within_bounds() -> None:
    assert Settings(3600, False).poll == 60
    assert Settings(6, False).poll == pytest.approx(0.6)
    assert Settings(0.5, False).poll == 0.2


def test_job_cgroup_v1_as_the_testbed_shows_it() -> None:
    text = (  # /proc/self/cgroup of a task in step 0 of job 7 on virtual node cn5 (testbed, Slurm 22.05, v1)
        "9:name=systemd:/\n8:pids:/\n6:freezer:/slurm_cn5/uid_0/job_7/step_0\n"
        "4:memory:/slurm_cn5/uid_0/job_7/step_0/task_0\n2:cpuacct:/slurm_cn5/uid_0/job_7/step_0/task_0\n1:cpu:/\n0::/\n"
    )
    assert watchdog.job_cgroup_usage_file(text, "/cg") == Path("/cg/cpuacct/slurm_cn5/uid_0/job_7/cpuacct.usage")
    both = "3:cpu,cpuacct:/slurm/uid_1000/job_42/step_batch/task_0\n"
    assert watchdog.job_cgroup_usage_file(both, "/cg") == Path("/cg/cpuacct/slurm/uid_1000/job_42/cpuacct.usage")


def test_job_cgroup_v2_and_outside_slurm() -> None:
    v2 = "0::/system.slice/slurmstepd.scope/job_42/step_batch/user/task_0\n"
    assert watchdog.job_cgroup_usage_file(v2, "/cg") == Path("/cg/system.slice/slurmstepd.scope/job_42/cpu.stat")
    assert watchdog.job_cgroup_usage_file("0::/user.slice/user-0.slice/session-1.scope\n") is None
    assert watchdog.job_cgroup_usage_file("") is None


def test_read_usage_both_formats(tmp_path: Path) -> None:
    v1 = tmp_path / "cpuacct.usage"
    v1.write_text("8108878000\n")
    assert watchdog.read_usage(v1) == pytest.approx(8.108878)
    v2 = tmp_path / "cpu.stat"
    v2.write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    assert watchdog.read_usage(v2) == pytest.approx(2.5)
    assert watchdog.read_usage(tmp_path / "missing" / "cpuacct.usage") is None


# ---------------------------------------------------------------------------------------------- the judgement


def test_quiet_for_the_stall_time_speaks_once_then_rearms() -> None:
    w = Watch(seconds=60, last_time=0, last_cpu=10.0, last_size=100, quiet_since=0)
    assert not any(w.observe(t, 10.0, 100) for t in range(10, 60, 10))
    assert w.observe(60, 10.0, 100)  # 60 s without CPU or output
    assert not w.observe(70, 10.0, 100)  # once per stall
    assert not w.observe(80, 10.0, 101)  # run.out grew: working again
    assert not w.observe(130, 10.0, 101)
    assert w.observe(140, 10.0, 101)


def test_slow_but_working_is_never_named() -> None:
    w = Watch(seconds=60, last_time=0, last_cpu=0.0, last_size=100, quiet_since=0)
    cpu = 0.0
    for t in range(10, 3600, 10):  # an hour without a byte of output, but using CPU (3% of a core)
        cpu += 0.3
        assert not w.observe(t, cpu, 100)


def test_idle_cpu_below_the_threshold_counts_as_idle() -> None:
    w = Watch(seconds=60, last_time=0, last_cpu=0.0, last_size=0, quiet_since=0)
    cpu, spoken = 0.0, []
    for t in range(10, 70, 10):
        cpu += 0.01  # 0.1% of a core: srun's and relion-launch's own ticks are of this order
        spoken.append(w.observe(t, cpu, 0))
    assert spoken[-1] and not any(spoken[:-1])


def test_unknown_cpu_never_speaks() -> None:
    w = Watch(seconds=1, last_time=0, last_cpu=None, last_size=0, quiet_since=0)
    assert not any(w.observe(t, None, 0) for t in range(1, 100))


# ---------------------------------------------------------------------------------------------- real processes


def _watch(child: subprocess.Popen[bytes], seconds: float, run_out: Path) -> tuple[list[float], watchdog.Watchdog]:
    meter = watchdog.cpu_meter(child.pid, in_step=False)
    assert meter is not None
    spoken: list[float] = []
    dog = watchdog.Watchdog(Settings(seconds, False), meter, run_out, lambda: spoken.append(time.monotonic()))
    dog.start()
    return spoken, dog


def test_a_meter_of_a_process_that_ended_says_unknown() -> None:
    """The watched program may end between two samples: psutil's children() then raises NoSuchProcess (it looks the
    process up again); the meter says "not seen" (None, never a stall) instead of killing the watchdog's thread."""
    child = subprocess.Popen(["sleep", "30"])
    meter = watchdog.cpu_meter(child.pid, in_step=False)
    assert meter is not None and meter() is not None
    child.kill()
    child.wait()
    assert meter() is None


def test_a_blocked_process_tree_is_named_within_the_stall_time(tmp_path: Path) -> None:
    run_out = tmp_path / "run.out"
    run_out.write_text("started\n")
    # A rank blocked without CPU, one level down; its own process group, so the cleanup ends the whole tree.
    child = subprocess.Popen(["sh", "-c", "sleep 600 & wait"], start_new_session=True)
    try:
        start = time.monotonic()
        spoken, dog = _watch(child, 1.5, run_out)
        while not spoken and time.monotonic() - start < 10:
            time.sleep(0.05)
        dog.stop()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert len(spoken) == 1
    assert 1.5 <= spoken[0] - start < 1.5 + 2 * Settings(1.5, False).poll + 1


def test_a_busy_process_tree_without_output_is_not_named(tmp_path: Path) -> None:
    run_out = tmp_path / "run.out"
    run_out.write_text("started\n")
    busy = "import time\nend = time.time() + 4\nwhile time.time() < end: pass\n"
    child = subprocess.Popen(["sh", "-c", f"{sys.executable} -c '{busy}' & wait"], start_new_session=True)
    try:
        spoken, dog = _watch(child, 1.0, run_out)
        child.wait(timeout=30)
        dog.stop()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert spoken == []


def test_relion_launch_local_run_ends_a_stalled_step_when_the_site_says_so(tmp_path: Path) -> None:
    """End to end, outside Slurm (mpirun's place taken by the program itself: 1 rank)."""
    jobdir = tmp_path / "Class2D" / "job001"
    jobdir.mkdir(parents=True)
    # A stand-in that blocks forever without CPU and writes nothing, as a rank waiting on a hung filesystem does.
    hang = [sys.executable, "-c", "import time; time.sleep(600)", "--pipeline_control", "Class2D/job001/"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RELION_LAUNCH_"))} | {
        "RELION_LAUNCH_STALL_MINUTES": "0.02",
        "RELION_LAUNCH_STALL_END": "yes",
    }
    with (jobdir / "run.out").open("w") as out, (jobdir / "run.err").open("w") as err:
        done = subprocess.run(
            [str(LAUNCHER), *hang], cwd=tmp_path, env=env, stdout=out, stderr=err, timeout=60, check=False
        )
    run_err = (jobdir / "run.err").read_text()
    assert done.returncode == 143, run_err
    assert (jobdir / "RELION_JOB_EXIT_FAILURE").exists()
    lines = [line for line in run_err.splitlines() if "looks stalled" in line]
    assert len(lines) == 1, run_err
    assert (
        "no CPU used by the job here and run.out unchanged for 0.02 minutes (RELION_LAUNCH_STALL_MINUTES)" in lines[0]
    )
    assert "ended the step to free the allocation (RELION_LAUNCH_STALL_END)" in lines[0]
    assert "continue the job in RELION from its last finished iteration" in lines[0]
    assert "ended the step from outside" not in run_err and "killed by" not in run_err
