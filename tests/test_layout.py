"""Pure layout tests: the job's Slurm environment in, a plan out. No processes except the /bin/sh GPU binder."""

from __future__ import annotations

import subprocess
from collections import Counter

import hostlist
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relion_qsub.errors import LayoutError
from relion_qsub.launch.layout import (
    GPU_BIND_ARGV0,
    GPU_BIND_SCRIPT,
    GPU_SOURCES,
    HOSTFILE_PLACEHOLDER,
    MAX_RANKS,
    LayoutOptions,
    Mode,
    Plan,
    compress_counts,
    gpu_ids,
    hostfile_text,
    job_shape,
    plan_layout,
    plan_local,
    plus_one_lines,
    step_environment,
)

CMD = ("/usr/bin/relion_refine_mpi", "--o", "Class2D/job001/run", "--gpu", "", "--j", "2")


def slurm_env(
    nodes: int,
    per_node: int | None,
    *,
    ntasks: int | None = None,
    gpus: str | None = "0,1,2,3",
    prefix: str = "cn",
    tasks_per_node: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """A batch step's environment as Slurm 22.05 sets it (see the testbed probes in the module docstring)."""
    width = len(str(nodes))
    nodelist = f"{prefix}1" if nodes == 1 else f"{prefix}[{1:0{width}d}-{nodes:0{width}d}]"
    env = {
        "SLURM_JOB_ID": "42",
        "SLURM_JOB_NODELIST": nodelist,
        "SLURM_NODELIST": nodelist,
        "SLURM_JOB_NUM_NODES": str(nodes),
        "SLURM_NNODES": str(nodes),
    }
    if per_node is not None:
        env["SLURM_NTASKS_PER_NODE"] = str(per_node)
        env["SLURM_TASKS_PER_NODE"] = f"{per_node}(x{nodes})" if nodes > 1 else str(per_node)
        env["SLURM_NTASKS"] = str(ntasks if ntasks is not None else per_node * nodes)
    elif ntasks is not None:
        env["SLURM_NTASKS"] = str(ntasks)
    if tasks_per_node is not None:
        env["SLURM_TASKS_PER_NODE"] = tasks_per_node
    if gpus:
        env["SLURM_JOB_GPUS"] = gpus
        env["CUDA_VISIBLE_DEVICES"] = gpus
        env["SLURM_GPUS_ON_NODE"] = str(len(gpus.split(",")))
    env.update(extra)
    return env


def plan(env: dict[str, str], **opts: object) -> Plan:
    return plan_layout(env, LayoutOptions(command=CMD, **opts))  # type: ignore[arg-type]


def srun_n(p: Plan) -> int:
    argv = list(p.argv)
    return int(argv[argv.index("-n") + 1])


# ------------------------------------------------------------------------------------------------ homogeneous+1


def test_biowulf_example_two_gpu_nodes_five_tasks_each() -> None:
    p = plan(slurm_env(2, 5))
    assert p.mode is Mode.HOMOGENEOUS_PLUS_ONE
    assert p.hostfile_lines == ("cn1",) * 5 + ("cn2",) * 4
    assert p.ranks == 9 == srun_n(p)
    assert p.ranks_per_node == (5, 4)
    assert p.rank_gpus == ("", "0", "1", "2", "3", "0", "1", "2", "3")
    assert p.leader_node == "cn1"
    assert "running 9 ranks (1 leader + 2 nodes × 4 workers) of the 10 tasks allocated" in p.reason
    assert "1 task slot stays idle" in p.reason
    assert p.env_set == {"SLURM_HOSTFILE": HOSTFILE_PLACEHOLDER, "SLURM_DISTRIBUTION": "arbitrary"}
    assert p.env_unset == ("SLURM_NTASKS_PER_NODE",)
    assert "SLURM_TASKS_PER_NODE" not in p.env_unset  # output-only variable: srun does not read it
    assert p.argv[:4] == ("srun", "-K1", "-n", "9")
    assert p.argv[-len(CMD) :] == CMD


def test_biowulf_eight_nodes_forty_tasks() -> None:
    p = plan(slurm_env(8, 5))
    assert p.ranks == 33 == len(p.hostfile_lines)
    assert Counter(p.hostfile_lines) == {"cn1": 5, **{f"cn{i}": 4 for i in range(2, 9)}}
    assert "33 ranks (1 leader + 8 nodes × 4 workers) of the 40 tasks" in p.reason
    assert "7 task slots stay idle" in p.reason


def test_ntasks_nine_fills_the_layout_exactly() -> None:
    # --nodes=2 --ntasks-per-node=5 --ntasks=9: Slurm 22.05 still says SLURM_TASKS_PER_NODE=5(x2)
    p = plan(slurm_env(2, 5, ntasks=9))
    assert p.mode is Mode.HOMOGENEOUS_PLUS_ONE and p.ranks == 9
    assert "of the 9 tasks allocated" in p.reason and "idle" not in p.reason


def test_uneven_tasks_per_node_form_with_ntasks_per_node() -> None:
    env = slurm_env(4, 5, ntasks=17, tasks_per_node="5(x3),4")
    p = plan(env)
    assert p.mode is Mode.HOMOGENEOUS_PLUS_ONE
    assert p.ranks == 17 and p.ranks_per_node == (5, 4, 4, 4)


def test_uniform_odd_without_ntasks_per_node_is_plus_one() -> None:
    # --ntasks=10 --nodes=2 on GPU nodes: Slurm put 5 on each; same as asking for --ntasks-per-node=5
    env = slurm_env(2, None, ntasks=10, tasks_per_node="5(x2)")
    p = plan(env)
    assert p.mode is Mode.HOMOGENEOUS_PLUS_ONE and p.ranks == 9
    assert p.env_unset == ()  # nothing to unset: SLURM_NTASKS_PER_NODE was never set


def test_single_gpu_node_odd_tasks_leader_gets_no_gpu() -> None:
    p = plan(slurm_env(1, 5))
    assert p.mode is Mode.HOMOGENEOUS_PLUS_ONE
    assert p.hostfile_lines == ("cn1",) * 5
    assert p.rank_gpus == ("", "0", "1", "2", "3")
    assert "1 leader + 1 node × 4 workers" in p.reason


def test_capacity_too_small_for_plus_one_falls_back() -> None:
    # 5 per node asked but only 9 tasks in all and the second node has room for 3: not +1
    env = slurm_env(2, 5, ntasks=8, tasks_per_node="5,3")
    p = plan(env)
    assert p.mode is Mode.HETEROGENEOUS
    with pytest.raises(LayoutError, match="needs 5 tasks on the first node"):
        plan(env, mode="homogeneous+1")


def test_workers_share_gpus_round_robin_when_more_workers_than_gpus() -> None:
    p = plan(slurm_env(2, 7, gpus="0,1"))
    assert p.rank_gpus == ("", "0", "1", "0", "1", "0", "1", "0", "1", "0", "1", "0", "1")
    assert "6 workers share the 2 GPUs" in p.reason


def test_idle_gpus_are_reported() -> None:
    p = plan(slurm_env(2, 3))
    assert p.rank_gpus == ("", "0", "1", "0", "1")
    assert "2 of the 4 GPUs of each node stay idle" in p.reason


def test_gpu_ids_from_slurm_gpus_on_node_alone() -> None:
    env = slurm_env(2, 5, gpus=None, SLURM_GPUS_ON_NODE="4")
    p = plan(env)
    assert p.mode is Mode.HOMOGENEOUS_PLUS_ONE
    assert p.rank_gpus[1:5] == ("0", "1", "2", "3")


def test_gpu_ids_follow_the_jobs_list_not_zero_based() -> None:
    p = plan(slurm_env(2, 3, gpus="2,3"))
    assert p.rank_gpus == ("", "2", "3", "2", "3")


def test_gpu_ids_prefer_what_cuda_sees() -> None:
    # device cgroups: Slurm renumbers CUDA_VISIBLE_DEVICES from 0 while SLURM_JOB_GPUS keeps the node's ids
    env = slurm_env(2, 3, gpus="2,3", CUDA_VISIBLE_DEVICES="0,1")
    p = plan(env)
    assert p.gpus == ("0", "1") and p.gpu_source == "CUDA_VISIBLE_DEVICES"
    assert p.rank_gpus == ("", "0", "1", "0", "1")
    assert gpu_ids({"SLURM_STEP_GPUS": "5", "SLURM_JOB_GPUS": "4,5"}) == (("5",), "SLURM_STEP_GPUS")
    assert gpu_ids({"CUDA_VISIBLE_DEVICES": "NoDevFiles", "SLURM_JOB_GPUS": "1", "SLURM_GPUS_ON_NODE": "2"}) == (
        ("0", "1"),
        "SLURM_GPUS_ON_NODE",
    )
    assert gpu_ids({"CUDA_VISIBLE_DEVICES": "", "SLURM_JOB_GPUS": "1,,3"}) == (("1", "3"), "SLURM_JOB_GPUS")
    assert gpu_ids({}) == ((), "")


def test_gpu_bind_off_keeps_hostfile_but_binds_nothing() -> None:
    p = plan(slurm_env(2, 5), gpu_bind=False, gpu_bind_off_reason="--no-gpu-bind")
    assert p.mode is Mode.HOMOGENEOUS_PLUS_ONE and len(p.hostfile_lines) == 9
    assert p.rank_gpus == (None,) * 9 and not p.gpu_bound
    assert GPU_BIND_SCRIPT not in p.argv
    assert "GPU binding is off (--no-gpu-bind)" in p.reason


def test_thousand_nodes_plus_one() -> None:
    p = plan(slurm_env(1000, 5))
    assert p.ranks == 1 + 1000 * 4 == len(p.hostfile_lines) == srun_n(p)
    assert p.hostfile_lines[:5] == ("cn0001",) * 5 and p.hostfile_lines[5] == "cn0002"
    assert p.hostfile_lines[-1] == "cn1000"


def test_placement_options_and_conflicting_n_are_refused() -> None:
    with pytest.raises(LayoutError, match="--distribution"):
        plan(slurm_env(2, 5), srun_options=("--distribution=cyclic",))
    with pytest.raises(LayoutError, match="-N"):
        plan(slurm_env(2, 5), srun_options=("-N2",))
    with pytest.raises(LayoutError, match="-n 10 conflicts with the homogeneous\\+1 layout of 9 ranks"):
        plan(slurm_env(2, 5), ntasks=10)
    assert plan(slurm_env(2, 5), ntasks=9).ranks == 9
    # options that do not move ranks pass through, before our -n
    p = plan(slurm_env(2, 5), srun_options=("--mem-per-cpu=4g", "--mpi=pmix"))
    assert p.argv[:6] == ("srun", "-K1", "--mem-per-cpu=4g", "--mpi=pmix", "-n", "9")


def test_plus_one_lines_function() -> None:
    assert plus_one_lines(["a", "b", "c"], 3) == ["a", "a", "a", "b", "b", "c", "c"]
    assert plus_one_lines(["a"], 5) == ["a"] * 5


# ------------------------------------------------------------------------------------------------ homogeneous


def test_even_gpu_tasks_per_node_is_homogeneous_one_gpu_each() -> None:
    p = plan(slurm_env(2, 4))
    assert p.mode is Mode.HOMOGENEOUS
    assert p.hostfile_lines == () and p.ranks == 8
    assert p.rank_gpus == ("0", "1", "2", "3", "0", "1", "2", "3")
    assert p.argv[:7] == ("srun", "-K1", "-N", "2", "--ntasks-per-node=4", "-n", "8")
    assert p.env_set == {} and p.env_unset == ()


def test_cpu_only_odd_tasks_per_node_is_homogeneous_without_gpus() -> None:
    p = plan(slurm_env(2, 5, gpus=None))
    assert p.mode is Mode.HOMOGENEOUS and p.ranks == 10
    assert p.rank_gpus == (None,) * 10 and GPU_BIND_SCRIPT not in p.argv


def test_two_tasks_per_node_is_never_plus_one() -> None:
    assert plan(slurm_env(3, 1)).mode is Mode.HOMOGENEOUS
    assert plan(slurm_env(3, 2)).mode is Mode.HOMOGENEOUS


def test_forced_homogeneous_needs_uniform_tasks() -> None:
    env = slurm_env(2, None, ntasks=7, tasks_per_node="6,1")
    with pytest.raises(LayoutError, match="SLURM_TASKS_PER_NODE=6,1"):
        plan(env, mode="homogeneous")


def test_forced_plus_one_with_even_tasks_per_node() -> None:
    p = plan(slurm_env(2, 4), mode="homogeneous+1")
    assert p.mode is Mode.HOMOGENEOUS_PLUS_ONE and p.ranks == 7
    assert p.rank_gpus == ("", "0", "1", "2", "0", "1", "2")


# ------------------------------------------------------------------------------------------------ heterogeneous


def test_ragged_cpu_job_is_heterogeneous_plain_srun() -> None:
    env = slurm_env(2, None, ntasks=7, gpus=None, tasks_per_node="6,1")
    p = plan(env)
    assert p.mode is Mode.HETEROGENEOUS
    assert p.argv == ("srun", "-K1", *CMD)
    assert p.ranks == 7 and p.hostfile_lines == () and p.ranks_per_node == ()
    assert "room for 6,1 tasks per node" in p.reason


def test_ragged_gpu_job_lets_relion_map_gpus() -> None:
    p = plan(slurm_env(2, None, ntasks=7, tasks_per_node="6,1"))
    assert p.mode is Mode.HETEROGENEOUS and not p.gpu_bound
    assert "RELION maps the GPUs itself" in p.reason


def test_exclusive_without_ntasks_runs_one_rank_per_node_and_warns() -> None:
    # Seen on 22.05: --exclusive -N2 without --ntasks gives SLURM_TASKS_PER_NODE=32(x2), no SLURM_NTASKS,
    # and plain srun starts one task per node.
    env = slurm_env(2, None, gpus=None, tasks_per_node="32(x2)")
    p = plan(env)
    assert p.mode is Mode.HETEROGENEOUS and p.ranks == 2
    assert any("without --ntasks" in w for w in p.warnings)


def test_stale_hostfile_from_add_extra_mpi_task_is_dropped() -> None:
    env = slurm_env(2, None, ntasks=7, gpus=None, tasks_per_node="6,1")
    env.update(SLURM_HOSTFILE="/tmp/x.SLURM_JOB_NODELIST", SLURM_DISTRIBUTION="arbitrary")
    p = plan(env)
    assert set(p.env_unset) == {"SLURM_HOSTFILE", "SLURM_DISTRIBUTION"}
    assert any("add_extra_MPI_task.sh" in w for w in p.warnings)
    assert "SLURM_HOSTFILE" not in step_environment(p, env)


def test_seed_script_already_sourced_still_gives_our_hostfile() -> None:
    # add_extra_MPI_task.sh unset SLURM_NTASKS_PER_NODE and set its own hostfile; SLURM_TASKS_PER_NODE remains
    env = slurm_env(2, 5, SLURM_HOSTFILE="/tmp/theirs", SLURM_DISTRIBUTION="arbitrary")
    del env["SLURM_NTASKS_PER_NODE"]
    p = plan(env, hostfile_path="/tmp/ours/hostfile")
    assert p.mode is Mode.HOMOGENEOUS_PLUS_ONE
    assert step_environment(p, env)["SLURM_HOSTFILE"] == "/tmp/ours/hostfile"


def test_heterogeneous_n_is_checked_against_room() -> None:
    env = slurm_env(2, None, ntasks=7, gpus=None, tasks_per_node="6,1")
    assert plan(env, ntasks=3).argv[:4] == ("srun", "-K1", "-n", "3")
    with pytest.raises(LayoutError, match=r"-n 8 asks for more ranks than the 7 tasks the job has room for"):
        plan(env, ntasks=8)


def test_heterogeneous_without_n_names_slurm_ntasks() -> None:
    # no -n was given: the message must not invent one
    env = slurm_env(2, None, ntasks=8, gpus=None, tasks_per_node="6,1")
    with pytest.raises(
        LayoutError, match=r"^SLURM_NTASKS=8 asks for 8 ranks but SLURM_TASKS_PER_NODE=6,1 has room"
    ) as e:
        plan(env)
    assert "-n" not in str(e.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"SLURM_TASKS_PER_NODE": "99999999(x2)"}, "gives a node 99,999,999 tasks, more than relion-launch's limit"),
        ({"SLURM_TASKS_PER_NODE": "5(x99999999999)"}, "describes 99999999999 nodes but the job has 2"),
        ({"SLURM_TASKS_PER_NODE": "5(x0)"}, "bad part '5\\(x0\\)'"),
        (
            {"SLURM_NTASKS_PER_NODE": "10001"},
            "SLURM_NTASKS_PER_NODE=10001 is more than relion-launch's limit of 10,000",
        ),
        ({"SLURM_NTASKS": "1000001"}, "SLURM_NTASKS=1000001 is more than relion-launch's limit of 1,000,000"),
        ({"SLURM_GPUS_ON_NODE": "5000", "SLURM_JOB_GPUS": "", "CUDA_VISIBLE_DEVICES": ""}, "SLURM_GPUS_ON_NODE=5000"),
    ],
)
def test_absurd_counts_are_refused_before_anything_is_expanded(change: dict[str, str], message: str) -> None:
    with pytest.raises(LayoutError, match=message):
        plan(dict(slurm_env(2, 5), **change))


def test_rank_limit_on_computed_layouts() -> None:
    env = slurm_env(200, 9999, ntasks=None)
    del env["SLURM_NTASKS"]  # 200 x 9999 tasks from --ntasks-per-node alone
    with pytest.raises(LayoutError, match="SLURM_NTASKS_PER_NODE=9999 on 200 nodes gives 1,999,800 ranks"):
        plan(env)
    env = slurm_env(200, 9999, ntasks=10)  # forced homogeneous: nodes x tasks per node
    with pytest.raises(LayoutError, match="homogeneous mode with 9999 ranks on each of 200 nodes gives 1,999,800"):
        plan(env, mode="homogeneous")
    with pytest.raises(LayoutError, match="limit of 1,000,000"):
        plan_local({}, LayoutOptions(command=("relion_refine_mpi",)), MAX_RANKS + 1)


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"SLURM_JOB_NODELIST": None, "SLURM_NODELIST": None}, "SLURM_JOB_NODELIST is not set"),
        ({"SLURM_JOB_NODELIST": "cn[1-"}, "SLURM_JOB_NODELIST='cn\\[1-' is not a valid Slurm host list"),
        ({"SLURM_JOB_NODELIST": "cn1,cn1"}, "names a node twice"),
        ({"SLURM_JOB_NUM_NODES": "3"}, "SLURM_JOB_NUM_NODES=3 but SLURM_JOB_NODELIST names 2 nodes"),
        ({"SLURM_TASKS_PER_NODE": "5(x3)"}, "SLURM_TASKS_PER_NODE='5\\(x3\\)' describes 3 nodes"),
        ({"SLURM_TASKS_PER_NODE": "5(y2)"}, "SLURM_TASKS_PER_NODE='5\\(y2\\)' is not Slurm's"),
        ({"SLURM_NTASKS_PER_NODE": "five"}, "SLURM_NTASKS_PER_NODE='five' is not a whole number"),
        ({"SLURM_NTASKS_PER_NODE": "0"}, "SLURM_NTASKS_PER_NODE='0' must be at least 1"),
        ({"SLURM_NTASKS": "x"}, "SLURM_NTASKS='x' is not a whole number"),
        (
            {"SLURM_TASKS_PER_NODE": None, "SLURM_NTASKS_PER_NODE": None},
            "SLURM_TASKS_PER_NODE is not set",
        ),
    ],
)
def test_bad_environment_names_the_variable(change: dict[str, str | None], message: str) -> None:
    env = slurm_env(2, 5)
    for key, value in change.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    with pytest.raises(LayoutError, match=message) as info:
        plan(env)
    assert "\n" not in str(info.value)


def test_unknown_mode_and_no_command() -> None:
    with pytest.raises(LayoutError, match="unknown mode"):
        plan(slurm_env(2, 5), mode="diagonal")
    with pytest.raises(LayoutError, match="no command"):
        plan_layout(slurm_env(2, 5), LayoutOptions())


def test_old_slurm_names_are_accepted() -> None:
    env = slurm_env(2, 5)
    del env["SLURM_JOB_NODELIST"], env["SLURM_JOB_NUM_NODES"]
    assert plan(env).ranks == 9


# ------------------------------------------------------------------------------------------------ helpers


@pytest.mark.parametrize(
    ("counts", "text"),
    [([5, 5, 4], "5(x2),4"), ([1], "1"), ([3, 4, 4, 4, 3], "3,4(x3),3"), ([], "")],
)
def test_compress_counts_round_trips_through_hostlist(counts: list[int], text: str) -> None:
    assert compress_counts(counts) == text
    if counts:
        assert hostlist.parse_slurm_tasks_per_node(text) == counts


def test_hostfile_text_and_step_environment() -> None:
    env = slurm_env(2, 5)
    p = plan(env, hostfile_path="/x/hostfile")
    assert hostfile_text(p) == "cn1\n" * 5 + "cn2\n" * 4
    step = step_environment(p, env)
    assert "SLURM_NTASKS_PER_NODE" not in step
    assert step["SLURM_HOSTFILE"] == "/x/hostfile" and step["SLURM_DISTRIBUTION"] == "arbitrary"
    assert step["SLURM_TASKS_PER_NODE"] == "5(x2)"
    assert env["SLURM_NTASKS_PER_NODE"] == "5"  # the input mapping is untouched


def test_cpus_per_task_is_carried_into_the_step() -> None:
    env = slurm_env(2, 5, SLURM_CPUS_PER_TASK="2")
    assert plan(env).env_set["SRUN_CPUS_PER_TASK"] == "2"
    assert plan(dict(env, SLURM_TASKS_PER_NODE="5,5", SLURM_NTASKS="7")).env_set == {"SRUN_CPUS_PER_TASK": "2"}
    assert "SRUN_CPUS_PER_TASK" not in plan(env, srun_options=("-c4",)).env_set
    assert "SRUN_CPUS_PER_TASK" not in plan(env, srun_options=("--cpus-per-task=4",)).env_set
    assert "SRUN_CPUS_PER_TASK" not in plan(dict(env, SRUN_CPUS_PER_TASK="3")).env_set


def test_job_shape_reads_capacity_and_tasks_separately() -> None:
    shape = job_shape(slurm_env(2, 5, ntasks=9))
    assert shape.capacity == (5, 5) and shape.ntasks == 9 and shape.k == 5


def test_plan_local() -> None:
    opts = LayoutOptions(command=("relion_refine_mpi", "--j", "1"), mpirun=("mpirun", "--oversubscribe"))
    p = plan_local({}, opts, 3)
    assert p.mode is Mode.LOCAL and p.argv == ("mpirun", "--oversubscribe", "-n", "3", *opts.command)
    single = plan_local({}, LayoutOptions(command=("relion_refine", "--j", "4")), 1)
    assert single.argv == ("relion_refine", "--j", "4")
    assert plan_local({}, LayoutOptions(command=("relion_refine_mpi",)), 1).warnings
    with pytest.raises(LayoutError, match="not an MPI program"):
        plan_local({}, LayoutOptions(command=("relion_refine",)), 2)


# ------------------------------------------------------------------------------------------------ the GPU binder


def binder_gpu(p: Plan, rank: int, node: str, local_id: int, node_gpus: str) -> str:
    """Run the plan's /bin/sh binder as one rank would and return the CUDA_VISIBLE_DEVICES it execs with."""
    argv = list(p.argv)
    pos = argv.index(GPU_BIND_SCRIPT)
    assert argv[pos - 2 : pos] == ["/bin/sh", "-c"] and argv[pos + 1] == GPU_BIND_ARGV0
    leader = argv[pos + 2]
    env = {
        "PATH": "/usr/bin:/bin",
        "SLURM_PROCID": str(rank),
        "SLURM_LOCALID": str(local_id),
        "SLURMD_NODENAME": node,
        "CUDA_VISIBLE_DEVICES": node_gpus,
        "SLURM_STEP_GPUS": node_gpus,
    }
    script = 'printf %s "${CUDA_VISIBLE_DEVICES-unset}"'
    out = subprocess.run(
        ["/bin/sh", "-c", GPU_BIND_SCRIPT, GPU_BIND_ARGV0, leader, "/bin/sh", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def binder_gpu_in(p: Plan, rank: int, node: str, local_id: int, env: dict[str, str]) -> str:
    """The binder run as one rank of the step whose GPU variables are those of ``env`` (unset when absent)."""
    argv = list(p.argv)
    leader = argv[argv.index(GPU_BIND_SCRIPT) + 2]
    step = {k: v for k, v in env.items() if k in (*GPU_SOURCES, "SLURM_GPUS_ON_NODE")}
    step.update(PATH="/usr/bin:/bin", SLURM_PROCID=str(rank), SLURM_LOCALID=str(local_id), SLURMD_NODENAME=node)
    script = 'printf %s "${CUDA_VISIBLE_DEVICES-unset}"'
    out = subprocess.run(
        ["/bin/sh", "-c", GPU_BIND_SCRIPT, GPU_BIND_ARGV0, leader, "/bin/sh", "-c", script],
        env=step,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


_GPU_VALUES = st.sampled_from(["", "0,1,2,3", "2,3", "0,1", "NoDevFiles", "7", "1,,2", " 0 , 1", ","])


@settings(max_examples=60, deadline=None)
@given(
    st.fixed_dictionaries({name: st.none() | _GPU_VALUES for name in GPU_SOURCES}),
    st.sampled_from([None, "", "0", "2", "4", " 3"]),
)
def test_property_plan_and_binder_read_the_same_gpus(sources: dict[str, str | None], on_node: str | None) -> None:
    """One order of preference: whatever the GPU variables say, the plan shows what each rank binds."""
    env = slurm_env(2, 5, gpus=None)
    env.update({k: v for k, v in sources.items() if v is not None})
    if on_node is not None:
        env["SLURM_GPUS_ON_NODE"] = on_node
    p = plan(env)
    if not p.gpus:
        assert p.mode is Mode.HOMOGENEOUS and not p.gpu_bound  # nothing to bind, no binder in argv
        return
    local: Counter[str] = Counter()
    for rank, node in enumerate(p.hostfile_lines):
        assert binder_gpu_in(p, rank, node, local[node], env) == p.rank_gpus[rank], (rank, env)
        local[node] += 1


@pytest.mark.parametrize(("nodes", "k", "gpus"), [(2, 5, "0,1,2,3"), (3, 3, "0,1,2,3"), (2, 7, "0,1"), (1, 5, "2,3")])
def test_sh_binder_agrees_with_the_plan_plus_one(nodes: int, k: int, gpus: str) -> None:
    p = plan(slurm_env(nodes, k, gpus=gpus))
    local: Counter[str] = Counter()
    for rank, node in enumerate(p.hostfile_lines):
        got = binder_gpu(p, rank, node, local[node], gpus)
        local[node] += 1
        assert got == p.rank_gpus[rank], (rank, node)


def test_sh_binder_agrees_with_the_plan_homogeneous() -> None:
    p = plan(slurm_env(2, 4))
    for rank in range(p.ranks):
        assert binder_gpu(p, rank, p.nodes[rank // 4], rank % 4, "0,1,2,3") == p.rank_gpus[rank]


def test_sh_binder_uses_the_step_list_and_leaves_gpu_less_ranks_alone() -> None:
    p = plan(slurm_env(2, 5))
    # a node whose step sees other GPU ids (shared node): the worker picks from what it sees
    assert binder_gpu(p, 6, "cn2", 1, "4,5,6,7") == "5"
    # no GPU visible on that node: nothing to bind, the variable stays as it was
    assert binder_gpu(p, 6, "cn2", 1, "") == ""


# ------------------------------------------------------------------------------------------------ properties


@st.composite
def gpu_jobs(draw: st.DrawFn) -> tuple[dict[str, str], int, int, int]:
    nodes = draw(st.integers(1, 300))
    k = draw(st.integers(2, 9))
    ngpus = draw(st.integers(1, 8))
    gpus = ",".join(str(g) for g in range(ngpus))
    return slurm_env(nodes, k, gpus=gpus), nodes, k, ngpus


@settings(max_examples=200, deadline=None)
@given(gpu_jobs(), st.sampled_from(["auto", "homogeneous+1"]))
def test_property_ranks_equal_hostfile_lines(job: tuple[dict[str, str], int, int, int], mode: str) -> None:
    env, nodes, k, _ = job
    p = plan(env, mode=mode)
    if p.hostfile_lines:
        assert p.ranks == len(p.hostfile_lines) == srun_n(p) == 1 + nodes * (k - 1)
        assert len(p.rank_gpus) == p.ranks
    else:
        assert p.mode is Mode.HOMOGENEOUS and p.ranks == nodes * k
    if mode == "auto":
        assert (p.mode is Mode.HOMOGENEOUS_PLUS_ONE) == (k >= 3 and k % 2 == 1)


@settings(max_examples=200, deadline=None)
@given(gpu_jobs())
def test_property_leader_alone_extra_on_first_node(job: tuple[dict[str, str], int, int, int]) -> None:
    env, _nodes, k, _ = job
    p = plan(env, mode="homogeneous+1")
    counts = Counter(p.hostfile_lines)
    first = p.nodes[0]
    assert p.hostfile_lines[0] == first == p.leader_node
    assert counts[first] == k
    assert all(counts[n] == k - 1 for n in p.nodes[1:])
    assert list(counts) == list(p.nodes)  # node order kept, each node's lines contiguous
    assert p.rank_gpus[0] == ""


@settings(max_examples=200, deadline=None)
@given(gpu_jobs())
def test_property_each_worker_one_distinct_gpu_per_node(job: tuple[dict[str, str], int, int, int]) -> None:
    env, _, k, ngpus = job
    p = plan(env, mode="homogeneous+1")
    by_node: dict[str, list[str | None]] = {}
    for rank in range(1, p.ranks):
        by_node.setdefault(p.hostfile_lines[rank], []).append(p.rank_gpus[rank])
    for gpus in by_node.values():
        assert len(gpus) == k - 1
        assert all(g is not None and g != "" for g in gpus)
        if k - 1 <= ngpus:
            assert len(set(gpus)) == len(gpus)  # distinct
        else:
            assert set(gpus) == {str(g) for g in range(ngpus)}  # shared round-robin, all used


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=50),
    st.booleans(),
)
def test_property_any_allocation_gives_a_plan_or_a_layout_error(counts: list[int], gpu: bool) -> None:
    nodes = len(counts)
    env = slurm_env(nodes, None, ntasks=sum(counts), gpus="0,1,2,3" if gpu else None)
    env["SLURM_TASKS_PER_NODE"] = compress_counts(counts)
    p = plan(env)
    assert p.ranks <= sum(counts)
    if p.hostfile_lines:
        assert p.ranks == len(p.hostfile_lines)
        assert all(Counter(p.hostfile_lines)[n] <= c for n, c in zip(p.nodes, counts, strict=True))
