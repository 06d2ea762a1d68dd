"""RELION's own GPU mapping as relion-launch predicts it (gpumap), worked by hand from RELION's source.

relion_refine_mpi: src/ml_optimiser_mpi.cpp MlOptimiserMpi::initialise; autopick: src/autopicker_mpi.cpp
AutoPickerMpi::deviceInitialise; MotionCor2: src/motioncorr_runner.cpp MotioncorrRunner::executeMotioncor2; the
--gpu syntax: src/args.cpp untangleDeviceIDs (3.1.4, 4.0.2 and 5.0.1 alike).
"""

from __future__ import annotations

import pytest

from relion_qsub.launch.gpumap import GpuUse, gpu_use, untangle
from relion_qsub.launch.invocation import relion_args

GPUS = ("0", "1", "2", "3")
PLUS_ONE = ("cn1",) * 5 + ("cn2",) * 4  # homogeneous+1, 2 nodes x 5 tasks
HOMOGENEOUS = ("cn1",) * 4 + ("cn2",) * 4


def use_of(*command: str, nodes: tuple[str, ...] = PLUS_ONE, gpus: tuple[str, ...] = GPUS) -> GpuUse:
    return gpu_use(relion_args(command), nodes, gpus)


def test_untangle_splits_followers_and_threads_and_leaves_the_last_field() -> None:
    assert untangle("0,1:2,3") == ([["0", "1"], ["2", "3"]], "2,3")
    assert untangle("") == ([[""]], "")
    # untangleDeviceIDs erases each ':' field from the caller's string: "0:1:" leaves "" -> automatic mapping
    assert untangle("0:1:")[1] == ""


def test_refine_explicit_ids_extend_to_all_followers_by_modulus() -> None:
    # 8 followers, "0:1" -> follower r gets field (r-1) % 2: devices 0,1,0,1 on each node: two followers per device
    use = use_of("relion_refine_mpi", "--gpu", "0:1")
    assert use.rank_devices == ((), *((0,), (1,)) * 4)
    assert use.shared == 4
    assert "1/2 of its memory" in use.warnings[0]
    assert "extended to all followers by modulus" in use.rule


def test_refine_explicit_ids_per_thread_and_semi_automatic() -> None:
    # --j 2 with one id per follower (semi-automatic): both threads on that id; "0,1" gives each thread its own
    assert use_of("relion_refine_mpi", "--gpu", "0:1:2:3", "--j", "2").rank_devices == (
        (),
        *((0,), (1,), (2,), (3,)) * 2,
    )
    assert use_of("relion_refine_mpi", "--gpu", "0,1:2,3", "--j", "2").rank_devices == ((), *((0, 1), (2, 3)) * 4)


def test_refine_ids_beyond_the_nodes_gpus_are_refused_in_the_plan() -> None:
    use = use_of("relion_refine_mpi", "--gpu", "0:1:2:3", gpus=("0", "1"))
    assert use.warnings[0].startswith("--gpu '0:1:2:3' (the GUI's 'Which GPUs to use') gives rank 3 device 2 (and")
    assert "each rank sees the 2 GPU(s) Slurm gave its node, CUDA indices 0-1" in use.warnings[0]


def test_refine_trailing_colon_maps_automatically_and_bad_ids_are_reported() -> None:
    assert (
        use_of("relion_refine_mpi", "--gpu", "5:6:").rank_devices
        == use_of("relion_refine_mpi", "--gpu", "").rank_devices
    )
    assert use_of("relion_refine_mpi", "--gpu", "0:x").warnings == ()  # the last field decides: automatic
    bad = use_of("relion_refine_mpi", "--gpu", "x:0")
    assert bad.rank_devices is None and "are not all numbers" in bad.warnings[0]


def test_refine_without_gpu_flag_or_without_gpus() -> None:
    assert use_of("relion_refine_mpi", "--j", "4") == GpuUse("", None, unused=True)  # CPU run: nothing to map
    none = use_of("relion_refine_mpi", "--gpu", "", gpus=())
    assert none.rank_devices is None and "the job has none" in none.warnings[0]


def test_autopick_maps_every_rank_modulo_and_needs_one_field_per_rank() -> None:
    use = use_of("relion_autopick_mpi", "--gpu", "", nodes=HOMOGENEOUS)
    assert use.rank_devices == tuple((r % 4,) for r in range(8)) and use.warnings == ()
    # homogeneous+1 puts 5 ranks on cn1: rank 0 works too, so ranks 0 and 4 share device 0 (cn2: 1,2,3,0)
    assert use_of("relion_autopick_mpi", "--gpu", "").shared == 1
    short = use_of("relion_autopick_mpi", "--gpu", "0:1:2:3", nodes=HOMOGENEOUS)
    assert short.rank_devices is None and "names devices for 4 rank(s) but the step runs 8" in short.warnings[0]


def test_motioncor2_only_with_use_motioncor2_and_takes_all_ids_of_its_field() -> None:
    assert use_of("relion_run_motioncorr_mpi", "--gpu", "") == GpuUse("", None, unused=True)  # RELION's own CPU code
    ids = ":".join(["0,1", "2,3"] * 4)
    use = use_of("relion_run_motioncorr_mpi", "--use_motioncor2", "--gpu", ids, nodes=HOMOGENEOUS)
    assert use.rank_devices == ((0, 1), (2, 3)) * 4


@pytest.mark.parametrize("program", ["relion_refine", "relion_python_modelangelo", "/bin/true", "relion_postprocess"])
def test_programs_not_modelled_see_all_gpus_and_get_no_prediction(program: str) -> None:
    assert use_of(program, "--gpu", "") == GpuUse("", None)


def test_many_shared_gpus_are_summarised() -> None:
    nodes = tuple(f"cn{n}" for n in range(10) for _ in range(3))
    use = use_of("relion_autopick_mpi", "--gpu", "", nodes=nodes, gpus=("0",))
    assert use.shared == 10 and len(use.warnings) == 5
    assert use.warnings[-1] == "... and 6 more GPUs would be shared the same way"


def test_slurm_placed_ranks_get_their_ids_checked_but_no_sharing_claim() -> None:
    # heterogeneous: where the ranks go is Slurm's; explicit ids and rank % GPUs do not depend on it
    explicit = gpu_use(relion_args(("relion_refine_mpi", "--gpu", "0:1:2:3:4")), None, GPUS, 7)
    assert explicit.rank_devices == ((), (0,), (1,), (2,), (3,), (4,), (0,))
    assert len(explicit.warnings) == 1 and "gives rank 5 device 4" in explicit.warnings[0]
    picked = gpu_use(relion_args(("relion_autopick_mpi", "--gpu", "")), None, GPUS, 7)
    assert picked.rank_devices == tuple((r % 4,) for r in range(7)) and picked.shared == 0 and picked.warnings == ()
    assert gpu_use(relion_args(("relion_refine_mpi", "--gpu", "")), None, GPUS, 7) == GpuUse("", None)
