"""Does the job fit its data? Scratch, memory and GPU memory sized from the particles, by RELION's own rules.

Pure: the particles (``formats.particles``), the relion_refine command's words and the job's sizes in, one sentence
out (or None when it fits). The fit rules turn each into a finding under its own policy key. The rules RELION
applies, each read in its source (3.1.4 and 5.0.1 agree):

* scratch -- ``Experiment::copyParticlesToScratch`` (src/exp_model.cpp): RELION copies particles while
  ``used_space <= (free_space_Gb - keep_free_scratch_Gb) * 1024^3`` (``--keep_free_scratch``, default 10, in
  ml_optimiser.cpp), each particle taking ``NZYXSIZE * sizeof(float)`` bytes. With parallel disc I/O (the default)
  the first rank on *every* node copies the whole data set to its own scratch (ml_optimiser_mpi.cpp, the
  ``prepareScratchDirectory`` loop), so each node needs data + keep_free. When it is full RELION prints "Warning:
  scratch space full on HOST. Remaining N particles will be read from where they were." and goes on, slower.
* pre-read -- ``Experiment::read`` with ``do_preread`` stores every particle as an ``Image<float>``; the caller
  (``MlOptimiser::initialiseGeneral``) pre-reads in *every* rank, leader included, with parallel disc I/O
  (``do_parallel_disc_io || rank == 0``) and only in the leader with ``--no_parallel_disc_io``. So a node holds
  ranks x N x box^2 x 4 bytes (box^3 for subtomograms) before RELION's own working memory.
* GPU -- ``MlDeviceBundle::checkFixedSizedObjects`` (src/acc/cuda/cuda_ml_optimiser.cu), called by
  ml_optimiser_mpi.cpp for auto-refine only: ``BoxLimit = (free / (1.05 * 2.5 * sizeof(XFLOAT) * shares))^(1/3) /
  padding_factor``, with ``free`` the device's free memory, ``shares`` the followers sharing that GPU and
  ``--pad`` (default 2). When optics group 1's image size is larger RELION warns that the job "will likely run out
  of memory on the GPU(s)" and runs on until it does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from .formats.particles import Particles

GIB = 1024**3  # RELION's "Gb" is statvfs bytes / (1024 * 1024 * 1024) (prepareScratchDirectory)
MIB = 1024**2
KEEP_FREE_SCRATCH_GB = 10.0  # ml_optimiser.cpp: --keep_free_scratch default "10"
PAD_DEFAULT = 2.0  # ml_optimiser.cpp: mymodel.padding_factor = --pad, default "2"
GPU_MARGIN = 1.05  # checkFixedSizedObjects: float margin(1.05)
GPU_OBJECTS = 2.5  # checkFixedSizedObjects: 2.5 padded boxes of XFLOAT per share
XFLOAT_BYTES = 4  # XFLOAT is float unless RELION was built with ACC_DOUBLE_PRECISION


class Refine(NamedTuple):
    """What a relion_refine(_mpi) command line says about its data (RELION's IOParser takes whole words)."""

    program: str
    star: str | None  # --i (None when continuing: --continue names the optimiser file)
    scratch_dir: str | None
    keep_free_gb: float
    preread: bool
    parallel_disc_io: bool
    gpu: bool
    auto_refine: bool
    pad: float

    @property
    def mpi(self) -> bool:
        return self.program.endswith("_mpi")


def _value(words: Sequence[str], option: str) -> str | None:
    """The word after the last ``option`` (RELION's parser takes the value following the option's word)."""
    value = None
    for i, word in enumerate(words[:-1]):
        if word == option:
            value = words[i + 1]
    return value


def _number(text: str | None, default: float) -> float:
    try:
        return float(text) if text is not None else default
    except ValueError:
        return default


def refine(words: Sequence[str]) -> Refine | None:
    """The relion_refine options that size the job, or None when ``words`` do not run relion_refine(_mpi)."""
    program = next((w.strip("`").rsplit("/", 1)[-1] for w in words if _is_refine(w)), None)
    if program is None:
        return None
    return Refine(
        program=program,
        star=_value(words, "--i"),
        scratch_dir=_value(words, "--scratch_dir"),
        keep_free_gb=_number(_value(words, "--keep_free_scratch"), KEEP_FREE_SCRATCH_GB),
        preread="--preread_images" in words,
        parallel_disc_io="--no_parallel_disc_io" not in words,
        gpu="--gpu" in words,
        auto_refine="--auto_refine" in words,
        pad=_number(_value(words, "--pad"), PAD_DEFAULT),
    )


def _is_refine(word: str) -> bool:
    return word.strip("`").rsplit("/", 1)[-1] in ("relion_refine", "relion_refine_mpi")


def _gb(nbytes: float) -> str:
    return f"{nbytes / GIB:,.1f} GB" if nbytes >= GIB / 10 else f"{nbytes / MIB:,.1f} MB"


def figure(value: float) -> str:
    """1000000 -> '1,000,000', 2.5 -> '2.5' (never '1e+06')."""
    return f"{value:,.0f}" if value == int(value) else f"{value:,g}"


# ------------------------------------------------------------------------------------------------ scratch


def scratch_needed_gb(particles: Particles, keep_free_gb: float = KEEP_FREE_SCRATCH_GB) -> int:
    """The scratch (whole GB) a node needs for RELION to copy every particle: data + --keep_free_scratch."""
    return math.ceil(particles.scratch_bytes() / GIB + keep_free_gb)


def scratch_verdict(particles: Particles, job: Refine, asked_gb: float, box: str, gres: str = "lscratch") -> str | None:
    """None when ``asked_gb`` of scratch per node holds the data; else what happens and the size to ask."""
    if job.scratch_dir is None or job.preread:
        return None
    need = scratch_needed_gb(particles, job.keep_free_gb)
    if asked_gb >= need:
        return None
    data = particles.scratch_bytes()
    room = max(0.0, asked_gb - job.keep_free_gb) * GIB
    copied = "none of them" if room <= 0 else f"about {min(1.0, room / data):.0%} of them"
    return (
        f"{particles.describe()}: {_gb(data)} to copy to --scratch_dir on each node, and relion_refine keeps "
        f"{figure(job.keep_free_gb)} GB free (--keep_free_scratch): the {figure(asked_gb)} GB asked holds {copied} "
        f"and the rest is read from the shared filesystem; ask {gres}:{need} in {box}"
    )


# ------------------------------------------------------------------------------------------------ memory


def preread_holders(job: Refine, ranks_on_node: int) -> int:
    """Ranks on the busiest node that hold every particle: all of them with parallel disc I/O, else the leader."""
    return ranks_on_node if job.parallel_disc_io or not job.mpi else 1


def preread_verdict(
    particles: Particles, job: Refine, ranks_on_node: int | None, node_memory_mb: float, per: tuple[int, str], box: str
) -> str | None:
    """None when the busiest node's memory holds what --preread_images reads; else the need and the fix.

    ``ranks_on_node``: the MPI ranks on the job's most loaded node (homogeneous+1: the leader's node, one more
    than the others), None when the directives do not fix it (then one rank, the least there can be, is judged);
    ``node_memory_mb``: the memory the job gets there; ``per``: what the memory box counts on that node, e.g.
    (10, "CPUs") for Memory Per Thread, (1, "") for --mem, to turn the need into a value to ask.
    """
    if not job.preread:
        return None
    holders = preread_holders(job, ranks_on_node or 1)
    each = particles.image_bytes()
    need = holders * each
    if need <= node_memory_mb * MIB:
        return None
    count, noun = per
    ask = math.ceil(need / max(1, count) / GIB)
    on_node = f" ({count} {noun if count > 1 else noun.rstrip('s')} on that node)" if noun else ""
    if holders > 1:
        who, where = f"each of the {holders} MPI ranks on the busiest node holds", "that node"
    elif ranks_on_node is None and job.mpi and job.parallel_disc_io:
        who, where = "every MPI rank holds", "a node with one rank"
    else:
        who, where = "the leader rank holds", "its node"
    return (
        f"{particles.describe()}: with Pre-read all particles into RAM {who} all of them "
        f"({_gb(each)} each, {_gb(need)} on {where}) but the job gets {_gb(node_memory_mb * MIB)} there: "
        f"ask at least {ask} GB in {box}{on_node}, or set Pre-read all particles into RAM? to No and copy the "
        "particles to scratch"
    )


# ------------------------------------------------------------------------------------------------ GPU


def gpu_box_limit(gpu_memory_bytes: float, shares: int, pad: float = PAD_DEFAULT) -> int:
    """The largest box RELION's checkFixedSizedObjects allows on a GPU with this much free memory."""
    per_share = gpu_memory_bytes / (GPU_MARGIN * GPU_OBJECTS * XFLOAT_BYTES * max(1, shares))
    return int(per_share ** (1 / 3.0) / pad)


def gpu_shares(workers_on_node: int, gpus_on_node: int) -> int:
    """The fewest followers sharing one GPU: RELION's automatic mapping spreads a node's followers evenly."""
    return max(1, math.ceil(workers_on_node / max(1, gpus_on_node)))


def gpu_verdict(particles: Particles, job: Refine, gpu: str, gpu_memory_bytes: float, shares: int) -> str | None:
    """None when the box fits RELION's own GPU limit (or RELION does not check it); else RELION's warning, early."""
    if not (job.gpu and job.auto_refine and job.mpi) or not particles.groups:
        return None
    box = particles.groups[0].box  # getOpticsImageSize(0): optics group 1
    limit = gpu_box_limit(gpu_memory_bytes, shares, job.pad)
    if box <= limit:
        return None
    split = f", each GPU shared by {shares} MPI ranks" if shares > 1 else ""
    fix = "one MPI rank per GPU (fewer MPI procs or more GPUs), " if shares > 1 else ""
    return (
        f"box {box} px ({particles.path}) is larger than the {limit} px that relion_refine_mpi computes for a "
        f"{gpu} with {_gb(gpu_memory_bytes)}{split} (--pad {job.pad:g}): RELION will run out of GPU memory in the "
        f"last iterations; use {fix}a GPU type with more memory, or downscale the particles"
    )
