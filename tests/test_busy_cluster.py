"""Issue 20 item 3 on a busy testbed: every compute node is full, and RELION still learns a job's end at once.

The end-watcher does not wait for the job's own partition: the site profile sends it to the site's home for tiny
service jobs (testbed: partition ``service`` on its own oversubscribed node, ``[submit] watch_options``).

These tests fill every compute node with blocker jobs (the ``full_cluster`` fixture). The suite runs them serially
in CI; run by hand, hold the testbed's lock exclusively for their whole run, since they starve everyone else's jobs:
``flock -x /tmp/rq-testbed.lock .venv/bin/pytest tests/test_busy_cluster.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.slurmtools import cancel, job_info, run, wait_until
from tests.test_lifecycle_cluster import entries, state
from tests.test_reliability_cluster import env
from tests.test_reliability_pipeliner_cluster import pipeline_says_failed, pipeliner

pytestmark = [pytest.mark.slurm, pytest.mark.relion]

# Whole nodes of every compute partition (the service node is the site's, not the users').
BLOCKERS = (["-p", "gpu", "-N4"], ["-p", "norm", "-N2"])


@pytest.fixture
def full_cluster() -> Iterator[list[str]]:
    """Every compute node allocated to a blocker job (``--exclusive``, 10 minutes); cancelled afterwards."""
    ids = []
    try:
        for where in BLOCKERS:
            argv = ["sbatch", "--parsable", *where, "--exclusive", "--time=10", "--job-name=relion-qsub-blocker"]
            ids.append(run([*argv, "--output=/dev/null", "--wrap=sleep 600"], env=env()).stdout.strip())
        wait_until("every blocker runs", lambda: all(state(i) == "RUNNING" for i in ids), 60)
        busy = run(["sinfo", "-h", "-p", "gpu,norm", "-o", "%T"]).stdout.split()
        assert set(busy) == {"allocated"}, busy
        yield ids
    finally:
        if ids:
            run(["scancel", *ids], check=False)
            wait_until("the blockers are gone", lambda: all(state(i) in ("CANCELLED", "") for i in ids), 60)


def test_cancel_while_pending_on_a_full_cluster_reaches_relion_within_60_s(
    tmp_path: Path, full_cluster: list[str]
) -> None:
    pipe = pipeliner(tmp_path, "sleep 60", "--comment=busy")
    (first,) = entries(tmp_path, 1)
    job_id, watcher = str(first.job_id), str(first.watcher)
    wait_until("the job waits for a node", lambda: job_info(job_id).get("Reason") in ("Resources", "Priority"), 30)
    assert job_info(watcher)["Partition"] == "service"
    cancelled = time.monotonic()
    cancel(job_id)
    line = pipeline_says_failed(tmp_path, pipe, timeout=90)
    took = time.monotonic() - cancelled
    print(f"\nevery compute node full: FAILURE in RELION {took:.1f} s after the cancel while PENDING")
    assert took < 60, took
    assert f"Slurm job {job_id} was cancelled by you" in line
    assert all(state(i) == "RUNNING" for i in full_cluster)  # nothing freed a node meanwhile
