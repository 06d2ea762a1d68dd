"""Slurm's job states and what they mean: ended, failed, pending; pending reasons; how a job ended, in a user's words.

The states are Slurm's (``sacct``/``scontrol``/``squeue`` JobState, 22.05: src/common/slurm_protocol_defs.c,
``job_state_string``); "CANCELLED by <uid>" is sacct's spelling. Pending reasons are squeue's ``%r`` values
(slurm/slurm.h, ``job_state_reason``). Imports nothing and nothing heavy: the end-watcher runs it on a compute node.
"""

from __future__ import annotations

# JobState names, as scontrol, squeue (%T) and sacct (State) print them.
BOOT_FAIL = "BOOT_FAIL"
CANCELLED = "CANCELLED"
COMPLETED = "COMPLETED"
COMPLETING = "COMPLETING"  # the batch script has ended; only the epilog runs
DEADLINE = "DEADLINE"
FAILED = "FAILED"
NODE_FAIL = "NODE_FAIL"
OUT_OF_MEMORY = "OUT_OF_MEMORY"
PENDING = "PENDING"
PREEMPTED = "PREEMPTED"
REQUEUED = "REQUEUED"
RUNNING = "RUNNING"
SUSPENDED = "SUSPENDED"
TIMEOUT = "TIMEOUT"

# The batch script has ended (COMPLETING: only the epilog still runs).
ENDED = frozenset(
    {BOOT_FAIL, CANCELLED, COMPLETED, COMPLETING, DEADLINE, FAILED, NODE_FAIL, OUT_OF_MEMORY, PREEMPTED, TIMEOUT}
)
# Not started yet, or waiting to start again: no run time to measure.
WAITING = (PENDING, REQUEUED, SUSPENDED)
# Not ended in accounting yet: slurmdbd hears of an end a moment after the controller.
NOT_ENDED_YET = (RUNNING, PENDING, COMPLETING, REQUEUED)
# Ended from outside the job's own program: sacct's whole State says more than the exit code ("CANCELLED by 0").
ENDED_BADLY = (NODE_FAIL, BOOT_FAIL, PREEMPTED, DEADLINE, CANCELLED)
# A step that did not fail on its own (still going, or done).
STEP_FINE = (COMPLETED, RUNNING, PENDING)

# Pending reasons of a job that waits for its begin time (relion-qsub submits every job held by a begin time a
# year away, then releases it) or is held by the user (scontrol hold): it does not run.
BEGIN_TIME = "BeginTime"
HELD = (BEGIN_TIME, "JobHeldUser")
# sacct/scontrol Reason of a job whose batch step could not be launched (run.out cannot be created, a prolog failed).
LAUNCH_FAILURE = "JobLaunchFailure"

AGAIN = "run it again, continuing from its last iteration if it has one"
TIMEOUT_FIX = "ask for more time (--time) and continue from the last iteration (Continue now, or --continue)"
OOM_FIX = "ask for more memory per CPU (--mem-per-cpu), fewer MPI ranks per node, or turn off pre-reading into RAM"

# state -> (what happened, what to do)
ENDINGS: dict[str, tuple[str, str]] = {
    TIMEOUT: ("hit its time limit", TIMEOUT_FIX),
    OUT_OF_MEMORY: ("ran out of memory (killed by the out-of-memory handler)", OOM_FIX),
    NODE_FAIL: ("lost a node (node failure)", AGAIN),
    BOOT_FAIL: ("could not start: its node failed to boot", "run it again"),
    PREEMPTED: ("was preempted by a job of higher priority", AGAIN),
    DEADLINE: ("missed its deadline (--deadline)", "run it again with a later --deadline"),
    FAILED: ("exited with an error", "read run.err and run.out for the cause"),
    CANCELLED: ("was cancelled", AGAIN),
}

# Pending reasons after which the job never starts by itself -> what to change.
NEVER_STARTS: dict[str, str] = {
    "PartitionTimeLimit": "ask for less time (--time) than the partition's MaxTime (sinfo -o '%P %l'), or another "
    "partition",
    "PartitionNodeLimit": "ask for fewer nodes than the partition allows (sinfo -o '%P %D'), or another partition",
    "PartitionConfig": "ask for what the partition allows (scontrol show partition), or another partition",
    "BadConstraints": "ask for a --constraint/--gres/--mem some node of the partition has (sinfo -o '%N %f %G %m')",
    "ReqNodeNotAvail": "leave out --nodelist/--exclude of nodes that are down, or ask for other nodes",
    "AccountNotAllowed": "use an account that may run in this partition (sacctmgr show assoc user=$USER)",
    "InvalidAccount": "use one of your accounts (sacctmgr show assoc user=$USER)",
    "InvalidQOS": "use a QOS your account has (sacctmgr show assoc user=$USER format=qos)",
    "QOSMaxWallDurationPerJobLimit": "ask for less time (--time) than the QOS allows",
    "QOSMaxNodePerJobLimit": "ask for fewer nodes than the QOS allows",
    "QOSMaxCpuPerJobLimit": "ask for fewer CPUs than the QOS allows",
    "QOSMaxMemoryPerJob": "ask for less memory than the QOS allows",
    "QOSMaxGRESPerJob": "ask for fewer GPUs/gres than the QOS allows",
    "DependencyNeverSatisfied": "the job it depends on did not end as required: cancel this one and submit again",
}

# Pending reasons of an association's or QOS's limit on what ONE job may ask (sacctmgr MaxTRESPerJob, MaxWall; the
# QOS ones are above): the job's own request exceeds it, so it never starts by itself (slurm/slurm.h,
# job_state_reason; measured on the testbed with AccountingStorageEnforce=limits: sbatch accepts such a job and it
# pends with this reason for ever). The fix names the limit; where it is set is `sacctmgr show assoc user=$USER`.
PER_JOB_LIMITS: dict[str, str] = {
    "AssocMaxCpuPerJobLimit": "ask for fewer CPUs (MPI procs x threads) than your association allows per job",
    "AssocMaxNodePerJobLimit": "ask for fewer nodes than your association allows per job",
    "AssocMaxWallDurationPerJobLimit": "ask for less time (--time) than your association allows per job",
    "AssocMaxMemPerJob": "ask for less memory than your association allows per job",
    "AssocMaxGRESPerJob": "ask for fewer GPUs/gres than your association allows per job",
    "AssocMaxCpuMinutesPerJobLimit": "ask for fewer CPUs or less time: CPUs x minutes over your association's "
    "per-job limit",
}
NEVER_STARTS.update(PER_JOB_LIMITS)
# Where doctor finds the value of a per-job limit (scontrol show assoc_mgr): MaxTRESPJ's TRES ("gres/": any gres),
# or WALL: MaxWallPJ.
WALL = "wall"
PER_JOB_TRES = {
    "AssocMaxWallDurationPerJobLimit": WALL,
    "QOSMaxWallDurationPerJobLimit": WALL,
    "AssocMaxCpuPerJobLimit": "cpu",
    "QOSMaxCpuPerJobLimit": "cpu",
    "AssocMaxNodePerJobLimit": "node",
    "QOSMaxNodePerJobLimit": "node",
    "AssocMaxMemPerJob": "mem",
    "QOSMaxMemoryPerJob": "mem",
    "AssocMaxGRESPerJob": "gres/",
    "QOSMaxGRESPerJob": "gres/",
}
# Pending reasons of a limit on what a group of jobs uses together (GrpTRES of an association or a QOS) -> the TRES
# it counts ("gres/": any gres). Only waiting while the group's other jobs use it; never starting when the job's
# own request alone exceeds it (GrpTRES=cpu=16, a job asking 32: AssocGrpCpuLimit for ever, measured on the
# testbed). Which of the two it is takes the limits themselves (client.limits_of).
GROUP_LIMITS: dict[str, str] = {
    "AssocGrpCpuLimit": "cpu",
    "AssocGrpNodeLimit": "node",
    "AssocGrpMemLimit": "mem",
    "AssocGrpGRES": "gres/",
    "AssocGrpBilling": "billing",
    "QOSGrpCpuLimit": "cpu",
    "QOSGrpNodeLimit": "node",
    "QOSGrpMemLimit": "mem",
    "QOSGrpGRES": "gres/",
    "QOSGrpBilling": "billing",
}


def cancelled_by(state: str, owner_uid: int | None = None) -> str:
    """sacct's "CANCELLED by 1234" -> "cancelled by user alice (scancel)"; "" when sacct does not say who."""
    words = state.split()
    if len(words) < 3 or words[0] != CANCELLED or words[1] != "by" or not words[2].isdigit():
        return ""
    uid = int(words[2])
    try:
        import pwd

        name = pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        name = f"uid {uid}"
    if owner_uid is not None and uid == owner_uid:
        return f"was cancelled by you ({name}, scancel)"
    return f"was cancelled by {name} (scancel by an admin or another account)"


def base(state: str) -> str:
    """The state itself: sacct's "CANCELLED by 1234" -> "CANCELLED"; "" for no state."""
    return state.split()[0] if state.strip() else ""


def describe(job_id: str, state: str, exit_code: str = "", reason: str = "", owner_uid: int | None = None) -> str:
    """One sentence: what Slurm says happened to the job, and what to do about it."""
    first = base(state)
    what, fix = ENDINGS.get(first, (f"ended {first or 'without a record'}", "read run.err and run.out for the cause"))
    who = cancelled_by(state, owner_uid)
    if first == CANCELLED:
        what = who or "was cancelled (by scancel, or by Slurm)"
    if first == FAILED and reason == LAUNCH_FAILURE:
        what, fix = (
            "could not be launched (JobLaunchFailure: e.g. run.out/run.err cannot be created, or the node's "
            "prolog failed)",
            "check that the output directory exists and is writable from the compute nodes, then run it again",
        )
    if first == FAILED and exit_code.split(":")[0] == "137":
        what, fix = (
            "was killed: its batch script ended by SIGKILL (exit code 137: the out-of-memory killer, a watchdog or "
            "kill -9 of relion-launch)",
            f"look at its memory (sacct -j {job_id} -o JobID,State,MaxRSS,ReqMem), ask for more if it was near the "
            "limit, and run it again",
        )
    detail = ", ".join(x for x in (first, f"exit code {exit_code}" if exit_code and exit_code != "0:0" else "") if x)
    return f"Slurm job {job_id} {what} ({detail}); {fix}"
