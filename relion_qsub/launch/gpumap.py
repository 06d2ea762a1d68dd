"""Which GPU each rank of a RELION program will use: RELION's own mapping, predicted from the plan (pure).

relion-launch never narrows CUDA_VISIBLE_DEVICES: every rank sees all the GPUs Slurm gave its node and the RELION
program maps them itself. Narrowing them (one id per rank) made relion_refine_mpi see "Device 0 on <node>" in every
worker of a node, count one GPU shared by all of them and give each worker 1/K of its own GPU's memory
(src/ml_optimiser_mpi.cpp MlOptimiserMpi::initialise: the leader counts equal "Device <CUDA index> on
<MPI_Get_processor_name()>" identifiers; each worker divides its free memory by that count). RELION's maintainer
gives the ranks all of a node's GPUs (3dem/relion issues 1074, 1262).

Every RELION MPI program with GPU code maps the GPUs it sees itself (read in 3.1.4, 4.0.2 and 5.0.1):
  relion_refine_mpi          src/ml_optimiser_mpi.cpp MlOptimiserMpi::initialise: followers only (rank 0 does no GPU
                             work); automatic mapping from the follower's rank, the followers on its host and its
                             device count, or the `--gpu` ids (`:` between followers, `,` between threads) extended
                             to all followers by modulus. It counts shared devices (memory split between them).
  relion_autopick_mpi        src/autopicker_mpi.cpp AutoPickerMpi::deviceInitialise: every rank,
                             `rank % devCount`, or the first id of `--gpu` entry `rank` (no extension).
  relion_run_motioncorr_mpi  src/motioncorr_runner.cpp MotioncorrRunner::executeMotioncor2 (MotionCor2 only):
                             `-Gpu rank % devCount`, or all ids of entry `rank` ("not enough MPI nodes specified
                             for the GPU IDs" when the list is short).
  relion_run_ctffind_mpi     src/ctffind_runner.cpp CtffindRunner::executeGctf (Gctf, 3.1 and 4.0): as autopick.
None of them needs its view narrowed: with every node's ranks consecutive (all of relion-launch's layouts), `rank %
devCount` gives the ranks of a node distinct devices whenever they are no more than its GPUs. So no program keeps the
old one-GPU-per-rank binding. The processor name is taken to be the Slurm node name (a node's hostname on a cluster).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .invocation import RelionArgs

# One device list per rank: the CUDA indices (into the rank's CUDA_VISIBLE_DEVICES) it uses; () = none.
Devices = tuple[int, ...]
# (node of each rank, devices a rank sees, the command) -> (devices per rank, the rule in words, problems)
Mapper = Callable[[Sequence[str], int, RelionArgs], tuple[list[Devices], str, list[str]]]


@dataclass(frozen=True)
class GpuUse:
    """What the RELION program will do with the GPUs of its nodes, for the plan and run.out."""

    rule: str  # how the program maps, for the plan ("" when the program's mapping is not modelled)
    rank_devices: tuple[Devices, ...] | None  # per rank; None: unknown (Slurm places the ranks, or not modelled)
    warnings: tuple[str, ...] = ()
    shared: int = 0  # devices used by more than one rank of one node
    unused: bool = False  # a RELION GPU program run without its GPU option (CPU code): it uses none


def untangle(gpu_ids: str) -> tuple[list[list[str]], str]:
    """src/args.cpp untangleDeviceIDs: ("0,1:2", ...) -> [["0", "1"], ["2"]], and what gpu_ids holds afterwards.

    It erases up to each ':' from the string it is given, so the callers' later `std::isdigit(*gpu_ids.begin())`
    tests the first character of the LAST ':' field: "0:1:" maps automatically.
    """
    fields = gpu_ids.split(":")
    return [f.split(",") for f in fields], fields[-1]


def _starts_with_digit(text: str) -> bool:
    return text[:1] in tuple("0123456789")


def _ints(ids: Sequence[str]) -> list[int] | None:
    try:
        return [int(i) for i in ids]
    except ValueError:
        return None  # RELION's textToInteger stops the program


# ------------------------------------------------------------------------------------------- relion_refine_mpi


def _followers_on_host(rank_nodes: Sequence[str]) -> Counter[str]:
    return Counter(rank_nodes[1:])  # MlOptimiserMpi::initialise counts followers (ranks 1..) per host name


def _refine_auto(rank: int, on_host: int, ndev: int, threads: int) -> list[int]:
    """MlOptimiserMpi::initialise, fullAutomaticMapping: one device index per thread of follower ``rank``."""
    if on_host > 1:
        return [ndev * (((rank - 1) % on_host) * threads + i) // (on_host * threads) for i in range(threads)]
    return [ndev * i // threads for i in range(threads)]


def _refine_mpi(rank_nodes: Sequence[str], ndev: int, rargs: RelionArgs) -> tuple[list[Devices], str, list[str]]:
    gpu = rargs.gpu or ""
    threads = rargs.threads or 1
    lists, last = untangle(gpu)
    followers = len(rank_nodes) - 1
    if 0 < len(lists) < followers:  # "extend selection to all ranks by modulus"
        lists = [lists[i % len(lists)] for i in range(followers)]
    on_host = _followers_on_host(rank_nodes)
    automatic = not _starts_with_digit(last)
    devices: list[Devices] = [()]
    problems: list[str] = []
    auto: dict[tuple[int, int], Devices] = {}  # (slot on the host, followers on it) -> devices: a few per job
    for rank in range(1, len(rank_nodes)):
        if automatic:
            here = on_host[rank_nodes[rank]]
            key = ((rank - 1) % here, here)
            if key not in auto:
                auto[key] = tuple(dict.fromkeys(_refine_auto(rank, here, ndev, threads)))
            devices.append(auto[key])
            continue
        else:
            given = _ints(lists[rank - 1])
            if given is None:
                problems.append(f"--gpu {gpu!r}: follower {rank}'s ids {lists[rank - 1]} are not all numbers")
                return [], "", problems
            # semi-automatic (ids for fewer or more threads than --j) and explicit: thread i gets id i mod count
            ids = [given[i % len(given)] for i in range(threads)]
        devices.append(tuple(dict.fromkeys(ids)))
    rule = (
        'automatic mapping (--gpu ""): each follower gets device GPUs*(((rank-1) % followers on its node)*threads'
        " + thread) / (followers on its node*threads)"
        if automatic
        else f"the --gpu ids {gpu!r}, one ':' field per follower, extended to all followers by modulus"
    )
    return devices, f"relion_refine_mpi maps its followers' threads (rank 0 does no GPU work): {rule}", problems


# ---------------------------------------------------------------------------------- rank % devCount programs


def _per_rank(nranks: int, ndev: int, rargs: RelionArgs, explicit: bool, all_ids: bool) -> list[Devices] | str:
    """autopick, MotionCor2 and Gctf: ``rank % devCount``, or the ids of --gpu field ``rank`` (no extension)."""
    gpu = rargs.gpu or ""
    if not explicit:
        return [(rank % ndev,) for rank in range(nranks)]
    lists, _ = untangle(gpu)
    if len(lists) < nranks:
        return (
            f"--gpu {gpu!r} names devices for {len(lists)} rank(s) but the step runs {nranks}: "
            f"{rargs.program} stops (it takes field <rank> for every rank; it does not extend the list)"
        )
    out: list[Devices] = []
    for rank in range(nranks):
        ids = _ints(lists[rank] if all_ids else lists[rank][:1])
        if ids is None:
            return f"--gpu {gpu!r}: rank {rank}'s ids {lists[rank]} are not all numbers ({rargs.program} stops)"
        out.append(tuple(dict.fromkeys(ids)))
    return out


def _modulo_mapper(explicit: Callable[[str], bool], all_ids: bool, where: str) -> Mapper:
    def mapper(rank_nodes: Sequence[str], ndev: int, rargs: RelionArgs) -> tuple[list[Devices], str, list[str]]:
        is_explicit = explicit(rargs.gpu or "")
        got = _per_rank(len(rank_nodes), ndev, rargs, is_explicit, all_ids)
        if isinstance(got, str):
            return [], "", [got]
        how = f"the --gpu ids {rargs.gpu!r}, field <rank> for each rank" if is_explicit else "rank % GPUs"
        return got, f"{rargs.program} maps every rank ({where}): {how}", []

    return mapper


# autopicker_mpi.cpp and ctffind_runner.cpp test the first character left after untangleDeviceIDs;
# motioncorr_runner.cpp maps automatically only when --gpu is empty.
_AUTOPICK = _modulo_mapper(lambda g: _starts_with_digit(untangle(g)[1]), False, "autopicker_mpi.cpp")
_MOTIONCOR2 = _modulo_mapper(lambda g: g != "", True, "motioncorr_runner.cpp, MotionCor2 -Gpu")
_GCTF = _modulo_mapper(lambda g: _starts_with_digit(untangle(g)[1]), False, "ctffind_runner.cpp, Gctf -gid")

# The programs whose GPU mapping is modelled: program -> (the option that turns its GPU code on, its mapping).
MAPPERS: dict[str, tuple[str, Mapper]] = {
    "relion_refine_mpi": ("--gpu", _refine_mpi),
    "relion_autopick_mpi": ("--gpu", _AUTOPICK),
    "relion_run_motioncorr_mpi": ("--use_motioncor2", _MOTIONCOR2),
    "relion_run_ctffind_mpi": ("--use_gctf", _GCTF),
}


def _mapper(rargs: RelionArgs) -> Mapper | None:
    """The program's mapping when it will use GPUs (the option that turns its GPU code on is in the command)."""
    option, mapper = MAPPERS.get(rargs.program, ("", None))
    return mapper if option in rargs.flags else None


# ------------------------------------------------------------------------------------------------- the whole


def gpu_use(rargs: RelionArgs, rank_nodes: Sequence[str] | None, gpus: Sequence[str], ranks: int = 0) -> GpuUse:
    """RELION's mapping for ranks placed on ``rank_nodes`` with ``gpus`` on every node.

    ``rank_nodes`` None: Slurm places the ``ranks`` ranks (heterogeneous; SLURM_TASKS_PER_NODE does not tell how:
    on Slurm 22.05 a --ntasks=9 --cpus-per-task=2 job said 8,1 and srun placed 7,2). A mapping that does not depend
    on the hosts (explicit --gpu ids, rank % GPUs) is still shown and its ids checked; which ranks share a GPU is not.
    """
    mapper = _mapper(rargs)
    if mapper is None:
        return GpuUse("", None, unused=rargs.program in MAPPERS)
    if not gpus:
        return GpuUse("", None, (_no_gpus(rargs),))
    placed = rank_nodes is not None
    if rank_nodes is None:
        if mapper is _refine_mpi and not _starts_with_digit(untangle(rargs.gpu or "")[1]):
            return GpuUse("", None)  # automatic: it counts the followers on each host
        rank_nodes = ("",) * ranks
    devices, rule, problems = mapper(rank_nodes, len(gpus), rargs)
    if problems:
        return GpuUse(rule, None, tuple(problems))
    warnings = _out_of_range(devices, len(gpus), rargs)
    shared, split = _shared(devices, rank_nodes, gpus, rargs) if placed else (0, [])
    return GpuUse(rule, tuple(devices), (*warnings, *split), shared)


def _no_gpus(rargs: RelionArgs) -> str:
    return (
        f"{rargs.program} will look for GPUs (its command asks for them) but the job has none (no "
        "CUDA_VISIBLE_DEVICES, SLURM_JOB_GPUS or SLURM_GPUS_ON_NODE): RELION stops; submit to a GPU partition "
        "with --gres=gpu:N, or set 'Use GPU acceleration?' to No"
    )


def _out_of_range(devices: Sequence[Devices], ndev: int, rargs: RelionArgs) -> list[str]:
    bad = [(rank, d) for rank, ids in enumerate(devices) for d in ids if d >= ndev]
    if not bad:
        return []
    rank, dev = bad[0]
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return [
        f"--gpu {rargs.gpu!r} (the GUI's 'Which GPUs to use') gives rank {rank} device {dev}{more}, but each rank "
        f"sees the {ndev} GPU(s) Slurm gave its node, CUDA indices 0-{ndev - 1}: {rargs.program} stops on an "
        "invalid device; leave the box empty so RELION maps the GPUs, or use ids below "
        f"{ndev} (or ask for more GPUs per node)"
    ]


def _shared(
    devices: Sequence[Devices], rank_nodes: Sequence[str], gpus: Sequence[str], rargs: RelionArgs
) -> tuple[int, list[str]]:
    """(how many, warnings) for the devices two ranks would share: "Device <CUDA index> on <node>", as RELION
    identifies a device; one warning each, the first few only."""
    counts = Counter((rank_nodes[rank], d) for rank, ids in enumerate(devices) for d in ids if d < len(gpus))
    users: dict[tuple[str, int], list[int]] = {key: [] for key, n in counts.items() if n > 1}
    for rank, ids in enumerate(devices):
        for d in ids:
            if (rank_nodes[rank], d) in users:
                users[(rank_nodes[rank], d)].append(rank)
    out: list[str] = []
    for (node, d), ranks in users.items():
        shown = ", ".join(map(str, ranks[:6])) + (", ..." if len(ranks) > 6 else "")
        what = f"Device {d} on {node} (GPU {gpus[d]}) would be shared by {len(ranks)} ranks ({shown})"
        if rargs.program == "relion_refine_mpi":
            what += f": relion_refine_mpi gives each of them 1/{len(ranks)} of its memory"
        out.append(what + "; fewer ranks per node (or more GPUs) gives each rank its own GPU")
    if len(out) > _SHOWN:
        return len(out), [*out[:_SHOWN], f"... and {len(out) - _SHOWN} more GPUs would be shared the same way"]
    return len(out), out


_SHOWN = 4  # shared-GPU warnings shown one by one; a plan of thousands of nodes says the rest in one line


def node_devices_used(use: GpuUse, rank_nodes: Sequence[str]) -> dict[str, set[int]]:
    """The CUDA indices the ranks of each node use (for the count of idle GPUs)."""
    used: dict[str, set[int]] = {node: set() for node in rank_nodes}
    for rank, ids in enumerate(use.rank_devices or ()):
        used[rank_nodes[rank]].update(ids)
    return used
