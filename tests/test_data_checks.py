"""The job fits its data, at submit time: the checks data_input, data_scratch, preread_memory and gpu_box.

A RELION project in tmp_path: a particles file (3.1+ shape, written as RELION writes it) and the job's script in
its job dir, filled as the testbed's common.sh template is (one GUI box per line); the checks run as the submit path
runs them (normalise, then the fit checks) with the testbed's profile (p100: 16 GB, lscratch, 64000 MB CPU nodes).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from relion_qsub import profile
from relion_qsub.checks import core, engine
from relion_qsub.script import parse

TESTBED = profile.load("testbed")
SCRIPT = (
    "#!/bin/bash\n#SBATCH --ntasks={mpi}\n#SBATCH --partition={queue}\n#SBATCH --cpus-per-task={threads}\n"
    "#SBATCH --time=1:00:00\n#SBATCH --mem-per-cpu={mem}\n#SBATCH --gres={gres}\n#SBATCH {directives}\n"
    "${{RELION_STD_LAUNCHER}} `which relion_refine_mpi` --o Refine3D/job012/run {args} --j {threads} "
    "--pipeline_control Refine3D/job012/\n"
)
KEYS = ("data-input", "data-scratch", "preread-memory", "gpu-box")


def particles(project: Path, count: int, box: int) -> None:
    rows = "".join(f"    10.0    20.0            1 {i:06d}@Extract/job007/parts.mrcs \n" for i in range(1, count + 1))
    (project / "Extract" / "job007").mkdir(parents=True, exist_ok=True)
    (project / "Extract" / "job007" / "particles.star").write_text(
        "\n# version 30001\n\ndata_optics\n\nloop_ \n_rlnOpticsGroup #1 \n_rlnOpticsGroupName #2 \n"
        f"_rlnImageSize #3 \n_rlnImageDimensionality #4 \n           1    optics1 {box:12d}            2 \n \n\n"
        "# version 30001\n\ndata_particles\n\nloop_ \n_rlnAngleRot #1 \n_rlnAngleTilt #2 \n_rlnOpticsGroup #3 \n"
        f"_rlnImageName #4 \n{rows} \n"
    )


def check(project: Path, policy: dict[str, str] | None = None, **values: object) -> core.Result:
    base: dict[str, object] = {
        "mpi": 5,
        "queue": "gpu",
        "threads": 2,
        "mem": "4g",
        "gres": "gpu:p100:4,lscratch:100",
        "directives": "--nodes=1 --ntasks-per-node=5",
        "args": "--auto_refine --i Extract/job007/particles.star --scratch_dir /lscratch/$SLURM_JOB_ID --gpu",
    }
    path = project / "Refine3D" / "job012" / "run_submit.script"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = SCRIPT.format(**{**base, **values})
    site = dataclasses.replace(TESTBED, policy={**TESTBED.policy, **(policy or {})})
    ctx = core.Context(site, ())
    return engine.check_fit(engine.normalise(parse(text, str(path)), ctx), ctx)


def found(result: core.Result) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for change in result.changes:
        if change.rule in KEYS:
            out.setdefault(change.rule, []).append(f"{change.action}: {change.message}")
    return out


def test_a_job_that_fits_its_data_is_quiet(tmp_path: Path) -> None:
    particles(tmp_path, 1000, 256)  # 0.24 GB: 11 GB of scratch with --keep_free_scratch
    assert found(check(tmp_path, gres="gpu:p100:4,lscratch:20")) == {}


def test_scratch_too_small_names_the_lscratch_to_ask_and_its_box(tmp_path: Path) -> None:
    particles(tmp_path, 4000, 512)  # 4000 x 512^2 x 4 = 3.9 GiB; + 10 GB kept free = 14 GB
    got = found(check(tmp_path, gres="gpu:p100:4,lscratch:12"))
    assert list(got) == ["data-scratch"]
    (message,) = got["data-scratch"]
    assert message.startswith("warning: 4,000 particles of box 512 px (Extract/job007/particles.star): 3.9 GB")
    assert "keeps 10 GB free (--keep_free_scratch): the 12 GB asked holds about 51% of them" in message
    assert message.endswith("ask lscratch:14 in the 'Gres' box")
    assert found(check(tmp_path, gres="gpu:p100:4,lscratch:14")) == {}
    more_free = "--auto_refine --i Extract/job007/particles.star --scratch_dir /lscratch/x --keep_free_scratch 1"
    assert found(check(tmp_path, gres="gpu:p100:4,lscratch:5", args=more_free)) == {}  # 3.9 + 1 <= 5


def test_preread_beyond_the_nodes_memory_is_refused_with_the_memory_to_ask(tmp_path: Path) -> None:
    particles(tmp_path, 20000, 256)  # 20000 x 256^2 x 4 = 4.9 GiB per rank
    args = "--auto_refine --i Extract/job007/particles.star --preread_images"
    result = check(tmp_path, args=args, mem="2g")  # 5 ranks x 4.9 GB = 24.4 GB > 5 tasks x 2 CPUs x 2 GB
    got = found(result)
    assert list(got) == ["preread-memory"]
    (message,) = got["preread-memory"]
    assert message.startswith("error: 20,000 particles of box 256 px")
    assert (
        "each of the 5 MPI ranks on the busiest node holds all of them (4.9 GB each, 24.4 GB on that node)" in message
    )
    assert (
        "the job gets 20.0 GB there: ask at least 3 GB in the 'Memory Per Thread' box (10 CPUs on that node)" in message
    )
    assert not result.ok
    assert found(check(tmp_path, args=args, mem="3g")) == {}
    leader_only = args + " --no_parallel_disc_io"  # only the leader pre-reads: 4.9 GB
    assert found(check(tmp_path, args=leader_only, mem="2g")) == {}


def test_gpu_box_over_relions_limit_is_warned_before_the_queue_wait(tmp_path: Path) -> None:
    particles(tmp_path, 100, 512)
    args = "--auto_refine --i Extract/job007/particles.star --gpu"
    # homogeneous+1 on 2 nodes, 5 tasks a node: 4 workers a node on 4 P100s, one each: limit 589 px
    plus_one = "--nodes=2 --ntasks-per-node=5"
    assert found(check(tmp_path, args=args, mpi=10, directives=plus_one)) == {}
    # 9 tasks on one node: 8 workers share 4 GPUs, 2 a GPU: (16 GiB / (1.05 x 2.5 x 4 x 2))^(1/3) / 2 = 467 px
    got = found(check(tmp_path, args=args, mpi=9, threads=1, directives="--nodes=1 --ntasks-per-node=9"))
    assert list(got) == ["gpu-box"]
    (message,) = got["gpu-box"]
    assert message.startswith("warning: box 512 px (Extract/job007/particles.star) is larger than the 467 px")
    assert "p100 with 16.0 GB, each GPU shared by 2 MPI ranks (--pad 2)" in message
    class3d = "--i Extract/job007/particles.star --gpu"  # RELION checks the box only for auto-refine
    assert found(check(tmp_path, args=class3d, mpi=9, threads=1, directives="--nodes=1 --ntasks-per-node=9")) == {}


@pytest.mark.parametrize("action", ["warn", "error"])
def test_unreadable_particles_are_one_warning_never_a_refusal(tmp_path: Path, action: str) -> None:
    result = check(tmp_path, policy={"data_input": action})  # no particles file in the project
    got = found(result)
    assert list(got) == ["data-input"] and len(got["data-input"]) == 1
    assert got["data-input"][0].startswith("warning: cannot read the particles file ")
    assert "Extract/job007/particles.star (--i): No such file or directory" in got["data-input"][0]
    assert result.ok


def test_off_silences_each_key(tmp_path: Path) -> None:
    particles(tmp_path, 4000, 512)
    assert found(check(tmp_path, policy={"data_scratch": "off"}, gres="gpu:p100:4,lscratch:12")) == {}
    assert found(check(tmp_path, policy={"data_input": "off"}, args="--auto_refine --i nosuch.star --gpu")) == {}


def test_no_data_needed_reads_nothing(tmp_path: Path) -> None:
    # No --scratch_dir, no pre-read, no GPU auto-refine: the particles (here missing) are not read at all.
    # (No lscratch either: scratch_inject would add --scratch_dir to a job that allocates it.)
    assert found(check(tmp_path, args="--i Extract/job007/particles.star", gres="gpu:p100:4")) == {}


def test_through_relion_qsub_check_from_the_project_dir(tmp_path: Path) -> None:
    """As RELION runs it: the Queue submit command from the project dir, the script path relative to it."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    particles(tmp_path, 20000, 256)
    check(tmp_path)  # writes the job dir
    script = tmp_path / "Refine3D" / "job012" / "run_submit.script"
    args = "--auto_refine --i Extract/job007/particles.star --preread_images"
    script.write_text(SCRIPT.format(mpi=5, queue="gpu", threads=2, mem="2g", gres="gpu:p100:4",
                                    directives="--nodes=1 --ntasks-per-node=5", args=args))  # fmt: skip
    done = subprocess.run(
        [str(root / "bin" / "relion-qsub"), "check", "--site", "testbed", "Refine3D/job012/run_submit.script"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 65, done.stderr
    lines = [line for line in done.stderr.splitlines() if "[preread-memory:" in line]
    assert len(lines) == 1 and "ask at least 3 GB in the 'Memory Per Thread' box" in lines[0], done.stderr


def test_a_continued_run_sizes_the_input_named_in_job_star(tmp_path: Path) -> None:
    """relion_refine --continue has no --i; RELION's job.star, written before every run, names the particles."""
    particles(tmp_path, 4000, 512)
    (tmp_path / "Refine3D" / "job012").mkdir(parents=True)
    (tmp_path / "Refine3D" / "job012" / "job.star").write_text(
        "\n# version 30001\n\ndata_job\n\n_rlnJobType                             10\n"
        "_rlnJobIsContinue                       1\n"
        " \n\n# version 30001\n\ndata_joboptions_values\n\nloop_ \n_rlnJobOptionVariable #1 \n"
        "_rlnJobOptionValue #2 \n    fn_img Extract/job007/particles.star \n    nr_mpi          5 \n \n"
    )
    args = "--continue Refine3D/job012/run_it005_optimiser.star --scratch_dir /lscratch/$SLURM_JOB_ID --gpu"
    got = found(check(tmp_path, args=args, gres="gpu:p100:4,lscratch:12"))
    assert list(got) == ["data-scratch"] and "(Extract/job007/particles.star)" in got["data-scratch"][0]


def test_gpu_memory_in_the_profile_is_a_memory_size(tmp_path: Path) -> None:
    from relion_qsub.errors import ProfileError

    root = Path(__file__).resolve().parent.parent
    text = (root / "relion_qsub" / "profiles" / "testbed.toml").read_text()
    assert TESTBED.gpu_memory_mb == {"p100": 16384}
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('memory = "16g"', 'memory = "16 GB"'))
    with pytest.raises(ProfileError) as err:
        profile.load(str(bad))
    assert str(err.value).endswith("gpu_types.p100.memory: expected a memory size such as 16g or 16000m, got '16 GB'")
