"""The stall watchdog: say so in run.err when a job has stopped working but still holds its nodes.

What relion-launch can observe honestly, from the batch node, without a Slurm call:

* the CPU time of the job's processes on THIS node: the job's cgroup (``cpuacct.usage`` under cgroup v1,
  ``cpu.stat`` ``usage_usec`` under v2) holds every task Slurm started here, ranks of the step included, which are
  children of slurmstepd, not of srun (proctrack/cgroup, most sites). relion-launch's own CPU and srun's are taken
  out. Outside an allocation (mpirun) the ranks are our descendants and psutil sums them. Ranks on other nodes are
  NOT seen: remote CPU would need sstat or an agent per node;
* the growth of run.out, which RELION's leader (rank 0, always on this node) writes for every rank: its progress
  bar moves about 60 times per iteration.

The job looks stalled when both stand still for the site's stall time: no CPU beyond ``ACTIVE_FRACTION`` of one core
and not one byte more in run.out. A job that is merely slow uses CPU or moves its progress bar, so it is never
named. What it catches: ranks blocked without spinning (a hung filesystem, a blocking wait, a stopped process).
What it cannot catch: a deadlock in which OpenMPI busy-polls (its default), which burns CPU; and a stall of only
the remote ranks while the leader spins. Site settings (the module or the profile's environment sets them):
``RELION_LAUNCH_STALL_MINUTES`` (default 60; 0 or off: no watchdog) and ``RELION_LAUNCH_STALL_END`` (yes: end the
step, so srun -K1 stops every rank, RELION is told with RELION_JOB_EXIT_FAILURE and the allocation is freed).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

STALL_MINUTES = "RELION_LAUNCH_STALL_MINUTES"
STALL_END = "RELION_LAUNCH_STALL_END"
DEFAULT_MINUTES = 60  # an iteration of a large refinement takes hours, but never an hour without CPU or output
ACTIVE_FRACTION = 0.02  # CPU seconds per wall second (2% of one core) that count as working
MAX_POLL_S = 60.0
OFF_WORDS = frozenset({"0", "off", "no", "false"})
YES_WORDS = frozenset({"1", "yes", "true", "on"})


@dataclass(frozen=True, slots=True)
class Settings:
    seconds: float  # the stall time
    end_step: bool  # end the step when stalled (site policy)

    @property
    def poll(self) -> float:
        return max(0.2, min(MAX_POLL_S, self.seconds / 10))

    @property
    def minutes(self) -> str:
        return f"{self.seconds / 60:g}"


def settings(env: Mapping[str, str]) -> tuple[Settings | None, str | None]:
    """(the watchdog's settings or None when the site turned it off, a warning for a value that is no number)."""
    raw = env.get(STALL_MINUTES, "").strip().lower()
    end = env.get(STALL_END, "").strip().lower() in YES_WORDS
    if raw in OFF_WORDS:
        return None, None
    if not raw:
        return Settings(DEFAULT_MINUTES * 60, end), None
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if not minutes > 0 or minutes != minutes or minutes == float("inf"):
        warning = f"{STALL_MINUTES}={raw!r} is no number of minutes; the stall watchdog uses {DEFAULT_MINUTES:g}"
        return Settings(DEFAULT_MINUTES * 60, end), warning
    return Settings(minutes * 60, end), None


# ----------------------------------------------------------------------------------------- what is observed


def job_cgroup_usage_file(proc_cgroup: str, root: str = "/sys/fs/cgroup") -> Path | None:
    """The file that counts this job's CPU on this node, from /proc/self/cgroup's text (None: not under Slurm).

    Slurm's cgroup layouts: v1 ``cpuacct:/slurm[_NODE]/uid_U/job_J/step_S/task_T`` (the job's directory counts all
    its steps here) and v2 ``0::/system.slice/slurmstepd.scope/job_J/step_S/user/task_T``.
    """
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        parts = path.strip("/").split("/")
        jobs = [i for i, p in enumerate(parts) if p.startswith("job_")]
        if not jobs:
            continue
        job = "/".join(parts[: jobs[0] + 1])
        if "cpuacct" in controllers.split(","):
            return Path(root, "cpuacct", job, "cpuacct.usage")
        if controllers == "":
            return Path(root, job, "cpu.stat")
    return None


def read_usage(path: Path) -> float | None:
    """CPU seconds from cpuacct.usage (ns) or cpu.stat (usage_usec); None when unreadable."""
    try:
        text = path.read_text()
    except OSError:
        return None
    if path.name == "cpuacct.usage":
        return int(text.strip() or 0) / 1e9
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    return None


def cpu_meter(child_pid: int, in_step: bool) -> Callable[[], float | None] | None:
    """A function giving the CPU seconds of the job's work on this node so far, or None when it cannot be seen."""
    import psutil  # lazily: only a watched step pays for it

    try:
        child = psutil.Process(child_pid)
    except psutil.Error:
        return None

    def tree(proc: psutil.Process, with_children: bool) -> float | None:
        try:
            family = [proc, *(proc.children(recursive=True) if with_children else [])]
        except psutil.Error:  # it ended between two samples (children() looks the process up again): not seen
            return None
        total = 0.0
        for p in family:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    if not in_step:  # mpirun or the program itself: the ranks are our descendants
        return lambda: tree(child, True)
    try:
        usage = job_cgroup_usage_file(Path("/proc/self/cgroup").read_text())
    except OSError:
        usage = None
    if usage is None or read_usage(usage) is None:
        return None  # the ranks here are slurmstepd's children: without the job's cgroup they cannot be seen
    me = psutil.Process()

    def job_work() -> float | None:
        total, ours, child_tree = read_usage(usage), tree(me, False), tree(child, True)
        return None if total is None or ours is None or child_tree is None else total - ours - child_tree

    return job_work


def out_size(path: Path | None) -> int:
    try:
        return os.stat(path).st_size if path is not None else os.fstat(1).st_size
    except OSError:
        return -1


# ----------------------------------------------------------------------------------------- the judgement


@dataclass(slots=True)
class Watch:
    """The pure part: fed (time, CPU seconds, run.out size), says when the job has stood still for the stall time."""

    seconds: float
    last_time: float
    last_cpu: float | None
    last_size: int
    quiet_since: float
    spoken: bool = False

    def observe(self, now: float, cpu: float | None, size: int) -> bool:
        """True once per stall: the first observation after ``seconds`` without CPU use or run.out growth."""
        dt = now - self.last_time
        busy = cpu is None or self.last_cpu is None or cpu - self.last_cpu >= ACTIVE_FRACTION * max(dt, 1e-9)
        if busy or size != self.last_size:
            self.quiet_since, self.spoken = now, False
        self.last_time, self.last_cpu, self.last_size = now, cpu, size
        if not self.spoken and now - self.quiet_since >= self.seconds:
            self.spoken = True
            return True
        return False


class Watchdog:
    """A daemon thread that samples every ``settings.poll`` seconds and calls ``on_stall`` once per stall."""

    def __init__(
        self,
        settings: Settings,
        meter: Callable[[], float | None],
        run_out: Path | None,
        on_stall: Callable[[], None],
    ) -> None:
        self.settings, self.meter, self.run_out, self.on_stall = settings, meter, run_out, on_stall
        self._stop = threading.Event()
        now = time.monotonic()
        self.watch = Watch(settings.seconds, now, meter(), out_size(run_out), now)
        self._thread = threading.Thread(target=self._loop, name="relion-launch-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.poll):
            if self.watch.observe(time.monotonic(), self.meter(), out_size(self.run_out)):
                self.on_stall()
