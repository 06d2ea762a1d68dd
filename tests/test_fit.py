"""Fit rules at submit time (issue 14): each case refused before sbatch, in one sentence naming the GUI box the value
came from and the value that fits; the partition limits come from the profile (testbed.toml)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from relion_qsub import profile
from relion_qsub.checks import core, engine, registry
from relion_qsub.script import parse
from relion_qsub.submit import prepare

TESTBED = profile.load("testbed")
HEAD = "#!/bin/bash\n#SBATCH --ntasks=1\n#SBATCH --partition=norm\n#SBATCH --cpus-per-task=1\n"
# The testbed's common.sh: one box per line, as RELION fills XXXextra1XXX (Walltime) ... XXXextra4XXX (Directives).
COMMON = (
    "#!/bin/bash\n#SBATCH --ntasks={mpi}\n#SBATCH --partition={queue}\n#SBATCH --cpus-per-task={threads}\n"
    "#SBATCH --time={time}\n#SBATCH --mem-per-cpu={mem}\n#SBATCH --gres={gres}\n#SBATCH {directives}\n"
    "${{RELION_STD_LAUNCHER}} `which relion_refine_mpi` --o Class2D/job001/run --j {threads} "
    "--scratch_dir /lscratch/$SLURM_JOB_ID --pipeline_control Class2D/job001/\n"
)


GPU_COMMAND = "relion_refine_mpi --gpu --scratch_dir /lscratch/$SLURM_JOB_ID\n"


def common(**values: object) -> str:
    base: dict[str, object] = {
        "mpi": 2,
        "queue": "multinode",
        "threads": 1,
        "time": "1:00:00",
        "mem": "1000",
        "gres": "lscratch:5",
        "directives": "--open-mode=append",
    }
    return COMMON.format(**{**base, **values})


def check(text: str, site: profile.Site = TESTBED, cli: list[str] | None = None) -> core.Result:
    ctx = core.Context(site, engine.parse_cli_options(cli or []))
    return engine.check_fit(engine.normalise(parse(text), ctx), ctx)


def errors(result: core.Result, rule: str) -> list[str]:
    return [c.message for c in result.errors if c.rule == rule]


@pytest.mark.parametrize(
    ("values", "rule", "message"),
    [
        (
            {"time": "11-00:00:00"},
            "max-time",
            "--time=11-00:00:00 from the 'Walltime' box is over the MaxTime of partition 'multinode', 10-00:00:00 "
            "(the job would pend forever): set the 'Walltime' box to 10-00:00:00 or less",
        ),
        (
            {"gres": "lscratch:5000"},
            "node-scratch",
            "--gres=lscratch:5000 from the 'Gres' box is more than the lscratch:400 of a partition 'multinode' node: "
            "set the 'Gres' box to lscratch:400 or less",
        ),
        (
            {"directives": "--constraint=x2680"},
            "unknown-feature",
            "--constraint=x2680 from the 'SBATCH Directives' box names feature 'x2680', which no node has (this site's "
            "nodes have gpup100, x2695); sbatch refuses it ('Invalid feature specification'): use one of those",
        ),
        (
            {"mem": "200g"},
            "node-memory",
            "--mem-per-cpu=200g from the 'Memory Per Thread' box is more than the 125 GB of a partition 'multinode' "
            "node: set the 'Memory Per Thread' box to 128000m or less",
        ),
        (
            {"mpi": 8, "threads": 8, "directives": "--nodes=1"},
            "node-cpus",
            "8 tasks per node (from the 'Number of MPI procs' box) x 8 CPUs (from the 'Number of threads' box) = 64 "
            "CPUs, but a partition 'multinode' node has 32: set the 'Number of threads' box to 4 or fewer, or put at "
            "most 4 tasks on a node",
        ),
        (
            {"mem": "20"},
            "memory-unit",
            "--mem-per-cpu=20 from the 'Memory Per Thread' box is 20 MB (a value without a unit is MB), too little "
            "for RELION: write 20g for 20 GB",
        ),
        (
            {"mpi": 3, "directives": "--nodes=3"},
            "partition-nodes",
            "--nodes=3 from the 'SBATCH Directives' box is more than partition 'multinode' allows (2): ask for "
            "--nodes=2 or fewer",
        ),
    ],
)
def test_each_misfit_is_refused_naming_the_box_and_what_fits(
    values: dict[str, object], rule: str, message: str
) -> None:
    result = check(common(**values))
    found = errors(result, rule)
    assert len(found) == 1 and found[0].startswith(message), result.changes
    assert [c.rule for c in result.errors] == [rule], result.changes  # one sentence, one rule, nothing else


def test_small_memory_in_mb_is_left_alone() -> None:
    # A small test job's 100 MB is plausible: not for memory_unit, and not for a job that runs no RELION MPI program.
    serial = common(mem="100").replace("relion_refine_mpi", "relion_refine")
    assert check(serial).changes == ()
    assert [c.rule for c in check(common(mem="32")).errors] == ["memory-unit"]


def test_memory_without_unit_too_small_for_a_relion_rank() -> None:
    # 100 MB per CPU x 1 thread for a rank of relion_refine_mpi: meant as GB (issue 21: --mem=240 for 5 ranks).
    (message,) = [c.message for c in check(common(mem="100")).errors]
    assert "100 MB for each rank of relion_refine_mpi" in message and "did you mean 100G?" in message, message
    assert check(common(mem="600")).changes == ()  # 600 MB a rank: plausible as MB
    (message,) = [c.message for c in check(common(mem="240").replace("--mem-per-cpu", "--mem")).errors]
    assert "--mem=240 " in message and "120 MB for each rank" in message and "did you mean 240G?" in message


def test_a_job_that_fits_has_no_finding() -> None:
    result = check(common(mpi=4, threads=8, directives="--nodes=1 --constraint=x2695", mem="4000", gres="lscratch:400"))
    assert result.changes == (), result.changes
    assert check(common(mpi=2, directives="--nodes=3")).ok  # sbatch lowers --nodes to --ntasks


def test_gpu_request_without_partition_lands_in_the_cpu_default() -> None:
    text = "#!/bin/bash\n#SBATCH --ntasks=1\n#SBATCH --gres=gpu:p100:1\nhostname\n"
    (message,) = errors(check(text), "gpu-default-partition")
    assert message == (
        "--gres=gpu:p100:1 asks for GPUs but the 'Queue name' box is empty, so the job would land in the default "
        "partition 'norm', which has none: set the 'Queue name' box to gpu"
    )
    (message,) = errors(check("#!/bin/bash\n#SBATCH --gpus=1\nhostname\n"), "gpu-default-partition")
    assert message.startswith("gpu:1 (from --gpus=1) asks for GPUs")
    assert check(text, cli=["--partition=gpu"]).ok


def test_gpus_options_count_in_every_gpu_rule() -> None:
    # 4 ranks x 4 threads on one p100 node: 4 threads per GPU, the testbed's safe limit is 2 (gpu_types.p100).
    for option in ("--gpus=p100:4", "--gpus-per-node=p100:4", "--gpus-per-task=p100:1"):
        text = f"#!/bin/bash\n#SBATCH --ntasks=4 --nodes=1 --cpus-per-task=4 -p gpu {option}\n{GPU_COMMAND}"
        result = check(text)
        assert [c.rule for c in result.errors] == ["threads-per-gpu"], (option, result.changes)
        assert "the safe limit is 2" in result.errors[0].message
    # Ranks per node over GPUs + 1 (tasks_per_gpu, a warning by default), with --gpus-per-node=2.
    text = f"#!/bin/bash\n#SBATCH --ntasks=8 --nodes=1 -p gpu --gpus-per-node=2 --gres=lscratch:5\n{GPU_COMMAND}"
    assert [c.rule for c in check(text).changes] == ["tasks-per-gpu"]
    # Too many GPUs for the partition's nodes and GPUs in a CPU partition, counted from --gpus-per-node.
    assert "have 4" in errors(check("#!/bin/bash\n#SBATCH -p gpu --gpus-per-node=8\nhostname\n"), "gpu-partition")[0]
    assert "has none" in errors(check("#!/bin/bash\n#SBATCH -p norm --gpus-per-node=1\nhostname\n"), "gpu-partition")[0]
    # --gpu on the command line with a --gpus-per-task request is not "no GPU allocated".
    assert check("#!/bin/bash\n#SBATCH -p gpu -n 1 --gpus-per-task=1\nrelion_run_motioncorr --gpu\n").ok


def test_each_rule_has_its_own_policy_key() -> None:
    keys = [r.key for r in registry.RULES if r.kind is registry.Kind.FIT]
    assert len(keys) == len(set(keys)) and set(keys) == set(registry.FIT_POLICY) <= set(core.FUNCTIONS)
    lenient = dataclasses.replace(TESTBED, policy={**TESTBED.policy, "max_time": "warn", "memory_unit": "off"})
    result = check(common(time="11-00:00:00", mem="20"), lenient)
    assert result.ok and [(c.rule, c.action) for c in result.changes] == [("max-time", "warning")]


def test_command_line_option_is_blamed_on_the_command_line() -> None:
    (message,) = errors(check(common(), cli=["--time=12-00:00:00"]), "max-time")
    assert message.startswith("--time=12-00:00:00 from the relion-qsub command line is over")


def test_fully_filled_template_whose_size_differs_from_relions_boxes_is_refused(tmp_path: Path) -> None:
    guard = (
        "#!/bin/bash\n#SBATCH --ntasks=4\n#SBATCH --partition=gpu\n#SBATCH --cpus-per-task=2\n"
        'if [ "{mpi}" != "4" ] || [ "{threads}" != "2" ]; then\n    exit 1\nfi\nsrun hostname\n'
    )
    (message,) = errors(check(guard.format(mpi=8, threads=2)), "template-size")
    assert message == (
        "this template is for 4 MPI procs x 2 threads but RELION's Running tab says 8 x 2: set the 'Number of MPI "
        "procs' box to 4, or choose the template for 8 x 2"
    )
    assert check(guard.format(mpi=4, threads=2)).ok
    # And through the submit path: refused before sbatch (prepare is what `relion-qsub` and `check` run).
    script = tmp_path / "run_submit.script"
    script.write_text(guard.format(mpi=4, threads=1))
    assert [c.rule for c in prepare(script, [], TESTBED).result.errors] == ["template-size"]


@pytest.mark.parametrize(
    ("fixture", "jobdir", "expected"),
    [
        # RELION 5.0.1 ModelAngelo: no MPI and no threads box (RelionJob::initialise), RELION fills 1 and 1.
        ("modelangelo-5.0.1.job.star", "ModelAngelo/job021/", "choose the template for 1 x 1"),
        # Class2D has both boxes: only the one whose value is not the template's is named.
        (
            "class2d-3.1.3.job.star",
            "Class2D/job001/",
            "set the 'Number of MPI procs' box to 4 and the 'Number of threads' box to 2, or choose the template for "
            "1 x 1",
        ),
    ],
)
def test_template_size_names_only_the_boxes_the_job_has(
    fixture: str, jobdir: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job.star says which Running-tab boxes the job has: a message never asks for a box the GUI does not show."""
    guard = (
        "#!/bin/bash\n#SBATCH --ntasks=4\n#SBATCH --partition=gpu\n#SBATCH --cpus-per-task=2\n"
        'if [ "1" != "4" ] || [ "1" != "2" ]; then\n    exit 1\nfi\nsrun hostname\n'
    )
    job = tmp_path / jobdir
    job.mkdir(parents=True)
    (job / "job.star").write_text((Path(__file__).resolve().parent / "data" / "relion" / fixture).read_text())
    (job / "run_submit.script").write_text(guard)
    monkeypatch.chdir(tmp_path)
    found = [c.message for c in prepare(Path(jobdir) / "run_submit.script", [], TESTBED).result.errors]
    assert (
        found.count(f"this template is for 4 MPI procs x 2 threads but RELION's Running tab says 1 x 1: {expected}")
        == 1
    ), found


def test_walltime_with_a_space_blames_the_walltime_box() -> None:
    result = check(common(time="2 days"))
    (message,) = [c.message for c in result.errors]
    assert "the 'Walltime' box holds '2 days', not one value" in message and "2-00:00:00" in message, message
    assert "every word in an SBATCH Directives box" not in message
    # A stray word pasted into the directives box still blames that box.
    (message,) = [c.message for c in check(common(directives="--nodes=1 oops")).errors]
    assert message.endswith("every word in an SBATCH Directives box must be an option (--name=value)"), message


FIT_TRIGGERS = {
    "max_time": {"time": "11-00:00:00"},
    "partition_nodes": {"mpi": 3, "directives": "--nodes=3"},
    "node_cpus": {"mpi": 8, "threads": 8, "directives": "--nodes=1"},
    "node_memory": {"mem": "200g"},
    "memory_unit": {"mem": "20"},
    "node_scratch": {"gres": "lscratch:5000"},
    "unknown_feature": {"directives": "--constraint=x2680"},
    "memory_unit_mpi": {"mem": "100"},
}


@pytest.mark.parametrize("key", sorted(FIT_TRIGGERS))
def test_each_fit_key_switches_off_only_its_own_rule(key: str) -> None:
    text = common(**FIT_TRIGGERS[key]).replace("--time=1:00:00", "--time=11-00:00:00")  # and max_time fires too
    on = {c.rule for c in check(text).changes}
    assert key.replace("_", "-") in on
    off = check(text, dataclasses.replace(TESTBED, policy={**TESTBED.policy, key: "off"}))
    assert {c.rule for c in off.changes} == on - {key.replace("_", "-")}


# --constraint expressions in partition 'gpu' (features gpup100; the cluster also has x2695), and what the real
# sbatch --test-only says of each on the testbed (test_fit_cluster.py asks it again): None where it takes it.
CONSTRAINTS = {
    "gpup100|x2695": None,
    "[gpup100|x2695]": None,
    "(gpup100|x2695)&gpup100": None,
    "gpup100*2": None,
    "gpup100|nosuch": "Invalid feature specification",
    "gpup100&x2695": "Requested node configuration is not available",
    "gpup100,x2695": "Requested node configuration is not available",
    "x2695": "Requested node configuration is not available",
}


@pytest.mark.parametrize(("expression", "sbatch"), CONSTRAINTS.items())
def test_constraint_expressions_are_judged_as_slurm_parses_them(expression: str, sbatch: str | None) -> None:
    text = common(queue="gpu", gres="gpu:p100:1", directives=f"--constraint={expression}")
    found = errors(check(text), "unknown-feature")
    assert len(found) == (0 if sbatch is None else 1), found
    if sbatch is not None:
        assert f"sbatch refuses it ('{sbatch}')" in found[0], found
