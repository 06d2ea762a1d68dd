"""Pure layout tests: the job's Slurm environment in, a plan out, and RELION's GPU mapping for that plan."""

from __future__ import annotations

from collections import Counter

import hostlist
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relion_qsub.errors import LayoutError
from relion_qsub.launch.gpumap import GpuUse, gpu_use
from relion_qsub.launch.invocation import relion_args
from relion_qsub.launch.layout import (
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


def relion_map(p: Plan, command: tuple[str, ...] = CMD) -> GpuUse:
    return gpu_use(relion_args(command), p.rank_nodes(), p.gpus)


def relion_gpus(p: Plan, command: tuple[str, ...] = CMD) -> tuple[str, ...]:
    """The GPU ids each rank of relion_refine_mpi (automatic mapping, --j 2) will use, "" for none."""
    use = relion_map(p, command)
    assert use.rank_devices is not None
    return tuple(",".join(p.gpus[d] for d in devices) for devices in use.rank_devices)


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
    assert relion_gpus(p) == ("", "0", "1", "2", "3", "0", "1", "2", "3")
    assert relion_map(p).warnings == ()
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
    assert relion_gpus(p) == ("", "0", "1", "2", "3")
    assert "1 leader + 1 node × 4 workers" in p.reason


def test_capacity_too_small_for_plus_one_falls_back() -> None:
    # 5 per node asked but only 9 tasks in all and the second node has room for 3: not +1
    env = slurm_env(2, 5, ntasks=8, tasks_per_node="5,3")
    p = plan(env)
    assert p.mode is Mode.HETEROGENEOUS
    with pytest.raises(LayoutError, match="needs 5 tasks on the first node"):
        plan(env, mode="homogeneous+1")


def test_more_workers_than_gpus_relion_shares_them_in_blocks() -> None:
    # MlOptimiserMpi::initialise, 6 followers on a node with 2 devices: dev = 2*((r-1)%6) / 6 -> 0,0,0,1,1,1
    p = plan(slurm_env(2, 7, gpus="0,1"))
    assert relion_gpus(p) == ("", *("0", "0", "0", "1", "1", "1") * 2)
    use = relion_map(p)
    assert use.shared == 4 and len(use.warnings) == 4
    assert use.warnings[0].startswith("Device 0 on cn1 (GPU 0) would be shared by 3 ranks (1, 2, 3): ")
    assert "relion_refine_mpi gives each of them 1/3 of its memory" in use.warnings[0]
    assert "every rank sees the 2 GPUs Slurm gave its node and RELION maps them" in p.reason


def test_fewer_workers_than_gpus_leave_gpus_idle() -> None:
    p = plan(slurm_env(2, 3))
    # 2 followers per node, 4 devices: with --j 2 each thread gets its own device (4*(j*2+i)/4), with --j 1
    # the followers get 4*j/2 = devices 0 and 2, and 1 and 3 stay idle
    assert relion_gpus(p) == ("", "0,1", "2,3", "0,1", "2,3")
    assert relion_gpus(p, ("relion_refine_mpi", "--gpu", "")) == ("", "0", "2", "0", "2")
    assert relion_map(p).warnings == ()


def test_gpu_ids_from_slurm_gpus_on_node_alone() -> None:
    env = slurm_env(2, 5, gpus=None, SLURM_GPUS_ON_NODE="4")
    p = plan(env)
    assert p.mode is Mode.HOMOGENEOUS_PLUS_ONE
    assert relion_gpus(p)[1:5] == ("0", "1", "2", "3")


def test_gpu_ids_follow_the_jobs_list_not_zero_based() -> None:
    p = plan(slurm_env(2, 3, gpus="2,3"))
    assert relion_gpus(p) == ("", "2", "3", "2", "3")


def test_gpu_ids_prefer_what_cuda_sees() -> None:
    # device cgroups: Slurm renumbers CUDA_VISIBLE_DEVICES from 0 while SLURM_JOB_GPUS keeps the node's ids
    env = slurm_env(2, 3, gpus="2,3", CUDA_VISIBLE_DEVICES="0,1")
    p = plan(env)
    assert p.gpus == ("0", "1") and p.gpu_source == "CUDA_VISIBLE_DEVICES"
    assert relion_gpus(p) == ("", "0", "1", "0", "1")
    assert gpu_ids({"SLURM_STEP_GPUS": "5", "SLURM_JOB_GPUS": "4,5"}) == (("5",), "SLURM_STEP_GPUS")
    assert gpu_ids({"CUDA_VISIBLE_DEVICES": "NoDevFiles", "SLURM_JOB_GPUS": "1", "SLURM_GPUS_ON_NODE": "2"}) == (
        ("0", "1"),
        "SLURM_GPUS_ON_NODE",
    )
    assert gpu_ids({"CUDA_VISIBLE_DEVICES": "", "SLURM_JOB_GPUS": "1,,3"}) == (("1", "3"), "SLURM_JOB_GPUS")
    assert gpu_ids({}) == ((), "")


def test_the_command_runs_unwrapped_every_rank_sees_the_nodes_gpus() -> None:
    for env in (slurm_env(2, 5), slurm_env(2, 4), slurm_env(2, None, ntasks=7, tasks_per_node="6,1")):
        p = plan(env)
        assert p.argv[-len(CMD) :] == CMD and "/bin/sh" not in p.argv
        assert "CUDA_VISIBLE_DEVICES" not in (*p.env_set, *p.env_unset)


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
    # relion_refine_mpi --j 1: cn1 has followers 1-3 (4*j/3 -> 0,1,2), cn2 followers 4-7 ((r-1)%4 = 3,0,1,2)
    assert relion_gpus(p, ("relion_refine_mpi", "--gpu", "")) == ("", "0", "1", "2", "3", "0", "1", "2")
    # --j 2 on cn1: threads of follower j get 4*(2j+i)/6, so followers 2 and 3 both use device 2
    assert relion_gpus(p) == ("", "0", "1,2", "2,3", "3", "0", "1", "2")
    assert relion_map(p).shared == 1
    assert relion_map(p).warnings[0].startswith("Device 2 on cn1 (GPU 2) would be shared by 2 ranks (2, 3)")
    assert p.argv[:7] == ("srun", "-K1", "-N", "2", "--ntasks-per-node=4", "-n", "8")
    assert p.env_set == {} and p.env_unset == ()


def test_cpu_only_odd_tasks_per_node_is_homogeneous_without_gpus() -> None:
    p = plan(slurm_env(2, 5, gpus=None))
    assert p.mode is Mode.HOMOGENEOUS and p.ranks == 10 and p.gpus == ()
    assert relion_map(p).rank_devices is None and "RELION stops" in relion_map(p).warnings[0]


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
    assert relion_gpus(p, ("relion_refine_mpi", "--gpu", "")) == ("", "0", "1", "2", "0", "1", "2")


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
    assert p.mode is Mode.HETEROGENEOUS and p.rank_nodes() is None
    assert "every rank sees the 4 GPUs Slurm gave its node and RELION maps them" in p.reason
    assert relion_map(p) == GpuUse("", None)  # Slurm places the ranks: nothing to predict


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
        assert p.rank_nodes() == p.hostfile_lines
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
    assert relion_gpus(p)[0] == ""


@settings(max_examples=200, deadline=None)
@given(gpu_jobs())
def test_property_relion_gives_each_worker_its_own_gpu_when_they_fit(job: tuple[dict[str, str], int, int, int]) -> None:
    """homogeneous+1, --j 1: RELION's automatic mapping gives the k-1 workers of every node distinct devices when
    k-1 <= GPUs, and uses every GPU (sharing, which the plan warns about) when there are more workers."""
    env, _, k, ngpus = job
    p = plan(env, mode="homogeneous+1")
    command = ("relion_refine_mpi", "--gpu", "")
    use = relion_map(p, command)
    by_node: dict[str, list[str]] = {}
    for rank, gpu in enumerate(relion_gpus(p, command)[1:], start=1):
        by_node.setdefault(p.hostfile_lines[rank], []).append(gpu)
    for gpus in by_node.values():
        assert len(gpus) == k - 1 and "" not in gpus
        if k - 1 <= ngpus:
            assert len(set(gpus)) == len(gpus)  # distinct
        else:
            assert set(gpus) == {str(g) for g in range(ngpus)}  # all used
    assert (use.shared == 0) == (k - 1 <= ngpus)


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
