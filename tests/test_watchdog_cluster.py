"""The stall watchdog on the real Slurm testbed: it speaks for a step that hangs, and never for real RELION work.

The stand-in for a hung rank blocks forever without CPU and writes nothing (Python's time.sleep: what a rank blocked
in a read on a hung filesystem, or in a non-spinning wait, looks like). It runs as every rank of a 2-node step
through srun, so the watchdog must read the job's cgroup on the batch node (the ranks there are slurmstepd's
children, not srun's). The real job is the demo's: relion_project's particles and relion_refine_mpi, homogeneous+1
over two GPU nodes (tests/test_launch_cluster.py runs the same job without the watchdog's short stall time).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from tests.slurmtools import cancel, synthetic_particles, wait_until
from tests.test_launch_cluster import GPU, LAUNCHER, finished, submit

pytestmark = pytest.mark.slurm

STALL_MINUTES = "0.1"  # 6 s: the test's shortened stall time (poll: 0.6 s)
STALL_S = 6.0
HANG = f"{sys.executable} -c 'import time; time.sleep(600)' --pipeline_control Class2D/job001/"


def _started(jobdir: Path) -> float:
    """The moment relion-launch has started the step (its first line in run.out), on this clock."""
    wait_until(
        "relion-launch's first line", lambda: "relion-launch:" in _read(jobdir / "run.out"), timeout=120, poll=0.1
    )
    return time.monotonic()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _stall_lines(jobdir: Path) -> list[str]:
    return [line for line in _read(jobdir / "run.err").splitlines() if "looks stalled" in line]


def test_a_hanging_step_is_named_within_the_stall_time(tmp_path: Path) -> None:
    jobdir = tmp_path / "Class2D" / "job001"
    job = submit(
        tmp_path, f"{LAUNCHER} --mpi=pmix {HANG}", "-p", "multinode", "-N2", "--ntasks-per-node=2",
        RELION_LAUNCH_STALL_MINUTES=STALL_MINUTES,
    )  # fmt: skip
    try:
        start = _started(jobdir)
        wait_until("the stall line in run.err", lambda: bool(_stall_lines(jobdir)), timeout=60, poll=0.1)
        spoke = time.monotonic() - start
        time.sleep(2 * STALL_S / 10)  # one more poll: it must not repeat itself
        lines = _stall_lines(jobdir)
        assert not (jobdir / "RELION_JOB_EXIT_FAILURE").exists()  # the site did not ask to end it
    finally:
        cancel(job)
        finished(job)
    print(f"the watchdog spoke {spoke:.1f} s after the step started (stall time {STALL_S:g} s)")
    assert STALL_S - 0.5 <= spoke <= STALL_S + 8, spoke  # never early; within the stall time plus polls and load
    assert len(lines) == 1, lines
    assert re.search(r"looks stalled: no CPU used by the job on cn5 and run.out unchanged for 0.1 minutes", lines[0])
    assert f"scancel {job} and continue the job in RELION" in lines[0]


def test_a_stalled_step_is_ended_and_relion_told_when_the_site_says_so(tmp_path: Path) -> None:
    jobdir = tmp_path / "Class2D" / "job001"
    job = submit(
        tmp_path, f"{LAUNCHER} --mpi=pmix {HANG}\necho launch-rc=$?", "-p", "multinode", "-N2",
        "--ntasks-per-node=2", RELION_LAUNCH_STALL_MINUTES=STALL_MINUTES, RELION_LAUNCH_STALL_END="yes",
    )  # fmt: skip
    info = finished(job, timeout=120)
    out, err = _read(jobdir / "run.out"), _read(jobdir / "run.err")
    # srun answers the SIGTERM with "forcing job termination": every rank is SIGKILLed, srun -K1 reports them Killed.
    assert info["JobState"] == "COMPLETED" and "launch-rc=137" in out, out + err
    assert (jobdir / "RELION_JOB_EXIT_FAILURE").exists()
    lines = _stall_lines(jobdir)
    assert len(lines) == 1 and "ended the step to free the allocation (RELION_LAUNCH_STALL_END)" in lines[0], err
    assert "ended the step from outside" not in err, err


@pytest.mark.relion
def test_real_relion_refine_mpi_is_never_named(tmp_path: Path) -> None:
    synthetic_particles(tmp_path, "relion_refine_mpi")
    jobdir = tmp_path / "Class2D" / "job001"
    jobdir.mkdir(parents=True)
    cmd = (
        "`which relion_refine_mpi` --o Class2D/job001/run --i parts.star --K 2 --iter 3 --particle_diameter 80 "
        "--tau2_fudge 2 --zero_mask --oversampling 1 --psi_step 10 --offset_range 3 --offset_step 2 --norm "
        "--scale --j 1 --dont_combine_weights_via_disc --pool 10 --pipeline_control Class2D/job001/"
    )
    # 3 s: far shorter than any site would set, and RELION's quietest stretch (start-up, writing the iteration's
    # files) still uses CPU on the batch node. Then, in the same job and layout, the hanging stand-in (its own job
    # dir): the watchdog was awake and could see, so its silence about RELION means something.
    (tmp_path / "Class2D" / "job002").mkdir()
    control = HANG.replace("job001", "job002")
    body = (
        f"{LAUNCHER} --mpi=pmix {cmd}\necho launch-rc=$?\n"
        f"RELION_LAUNCH_STALL_END=yes {LAUNCHER} --mpi=pmix {control}\necho control-rc=$?"
    )
    job = submit(tmp_path, body, *GPU, "-N2", "--ntasks-per-node=3", RELION_LAUNCH_STALL_MINUTES="0.05")
    info = finished(job, timeout=300)
    out, err = _read(jobdir / "run.out"), _read(jobdir / "run.err")
    assert info["JobState"] == "COMPLETED" and "launch-rc=0" in out, out[-3000:] + err[-3000:]
    assert (jobdir / "RELION_JOB_EXIT_SUCCESS").exists() and (jobdir / "run_it003_model.star").exists()
    stalls = _stall_lines(jobdir)
    assert len(stalls) == 1 and stalls[0].startswith("relion-launch: python3 looks stalled"), err
    assert (tmp_path / "Class2D" / "job002" / "RELION_JOB_EXIT_FAILURE").exists() and "control-rc=137" in out
