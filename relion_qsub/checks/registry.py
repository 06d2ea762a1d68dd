"""The one declaration of every check: its policy key, when it runs, its default action and its reasons.

A check is declared here once; everything else is generated from this table: the site policy's defaults
(:data:`DEFAULT_POLICY` for the normalisation rules, :data:`FIT_POLICY` for the fit rules), the validation of a
profile's ``[policy]`` table (the profile package keeps that table raw: it must not import the checks), README.md's
policy table and the ``policy.*`` rows of docs/profile-reference.md. The functions that implement the checks attach
themselves to their key with ``relion_qsub.checks.core.implements``; they run in the order of :data:`RULES`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from ..errors import ProfileError
from ..relion import gui
from ..slurm.options import nearest


class Action(enum.StrEnum):
    """What a check does when it fires (the site's policy for its key)."""

    ERROR = "error"  # refuse the script with the fix in one sentence; repair nothing
    WARN = "warn"  # repair where a repair exists, and say so as a warning
    FIX = "fix"  # repair and say so
    OFF = "off"  # nothing


class Kind(enum.Enum):
    NORMALISE = "normalise"  # repairs of the script and checks of what it asks (run first, may change it)
    FIT = "fit"  # the job against the partition limits of the profile's [partitions.*] (only report)


class Rule(NamedTuple):
    key: str  # the site policy key; the rule's name is the key with dashes (scratch_job_id -> scratch-job-id)
    kind: Kind
    default: Action
    reason: str  # why, in one line: shown with every finding
    doc: str = ""  # what it does, for README.md's policy table (absent: the reason)

    @property
    def name(self) -> str:
        return self.key.replace("_", "-")


N, F = Kind.NORMALISE, Kind.FIT
_SCRATCH = "relion_refine copies particles to --scratch_dir; without it every rank reads the shared filesystem"

# In the order the checks run: repairs of the script's text first, then the checks of what it asks, then the fit.
RULES: tuple[Rule, ...] = (
    Rule(
        "ignored_directive",
        N,
        Action.WARN,
        "sbatch reads #SBATCH only at column 0, before the first command",
        "`#SBATCH` after the first command, indented, or lower case: sbatch ignores it; a command above the whole "
        "block (`set -e` on line 2) is one finding, and is moved below the block",
    ),
    Rule(
        "foreign_scheduler",
        N,
        Action.ERROR,
        "sbatch reads only #SBATCH lines: a job written for another batch system runs on 1 CPU, its output in "
        "slurm-N.out, and RELION shows it Running forever",
        "no `#SBATCH` line but SGE `#$`, PBS `#PBS` or LSF `#BSUB` directives (RELION's default `qsub.csh`): sbatch "
        "would run it on 1 CPU with output in `slurm-N.out`; the fix names RELION_QSUB_TEMPLATE",
    ),
    Rule(
        "foreign_directive",
        N,
        Action.WARN,
        "sbatch ignores #$ lines and translates only some #PBS/#BSUB options (man sbatch, --ignore-pbs)",
        "a stray `#$`/`#PBS`/`#BSUB` line in a Slurm script (sbatch ignores `#$` and translates only some "
        "`#PBS`/`#BSUB` options)",
    ),
    Rule(
        "unfilled_placeholder",
        N,
        Action.WARN,
        "RELION leaves a placeholder it does not fill in the script literally (XXXextraNXXX when RELION_QSUB_EXTRAn "
        "is not set; XXXqosXXX of a patched RELION's template always)",
        "drop a directive with `XXXextraNXXX` left in (RELION_QSUB_EXTRAn unset), or with a placeholder RELION never "
        "fills (`XXXqosXXX`: a template for a patched RELION); the message says which and why",
    ),
    Rule(
        "empty_directive",
        N,
        Action.FIX,
        "an option with no value makes sbatch fail (e.g. --gres= is an invalid TRES specification, relion issue 877)",
        "drop `#SBATCH --gres=`, `--time=`, bare `#SBATCH`: empty GUI fields make sbatch fail (relion issue 877)",
    ),
    Rule(
        "partly_empty",
        N,
        Action.FIX,
        f"a value the template builds around a GUI box (--mem={gui.extra(2)}GB) is broken when the box is left empty "
        "(--mem=GB), and sbatch refuses it",
        f"drop a value that lost its number or a gres item to an empty box (`--mem={gui.extra(2)}GB` → `--mem=GB`, "
        "`--time=:00:00`, `--gres=gpu:`): sbatch refuses each (checked against the real sbatch); what sbatch takes "
        "(`--partition=a,`, `--constraint=a&`) is left alone",
    ),
    Rule(
        "typo",
        N,
        Action.FIX,
        "sbatch stops at the first unknown option ('unrecognized option')",
        "an unknown long option within 2 edits of exactly one sbatch option is repaired (`--exlusive` → "
        "`--exclusive`); otherwise an error naming the nearest options. Ambiguous prefixes and stray words are errors; "
        "a space after a comma in a value (`--gres=lscratch:5, gpu:p100:4`) is one finding naming the box, and is "
        "joined",
    ),
    Rule(
        "launcher_options",
        N,
        Action.FIX,
        f"the launcher line repeats GUI fields (--mem-per-cpu={gui.extra(2)}): an empty or unfilled value makes srun "
        "fail",
        "drop an empty `--mem-per-cpu=` (or one with `XXXextraNXXX` left in) after the launcher on a command line",
    ),
    Rule(
        "body_placeholder",
        N,
        Action.ERROR,
        "a command with RELION's XXX...XXX left in cannot run",
        "a command with RELION's `XXX...XXX` left in cannot run",
    ),
    Rule(
        "memory_conflict",
        N,
        Action.FIX,
        "Slurm refuses --mem together with --mem-per-cpu or --mem-per-gpu",
        "drop `--mem` next to `--mem-per-cpu`/`--mem-per-gpu` (Slurm refuses the pair); a memory option on the "
        "command line replaces the script's",
    ),
    Rule(
        "duplicate_gres",
        N,
        Action.FIX,
        "with several --gres sbatch keeps only the last, silently losing the others",
        "merge several `--gres` (sbatch keeps only the last); duplicates keep the larger count and the typed GPU "
        "request",
    ),
    Rule(
        "repeated_option",
        N,
        Action.WARN,
        "sbatch keeps only the last of a repeated option, silently dropping the others (--gres is merged by "
        "duplicate_gres); warn, not fix: which value was meant is the user's call",
        "an option other than `--gres` given twice with different values (`-C gpup100` … `-C x2695`): sbatch keeps "
        "only the last; warn, not fix, because which one was meant is the user's call",
    ),
    Rule(
        "scratch_gres",
        N,
        Action.FIX,
        "a --scratch_dir under the site's local scratch is empty unless the job allocates it (gres)",
        "add the site minimum lscratch (5 GB) when a `--scratch_dir` under `/lscratch` has no gres",
    ),
    Rule(
        "scratch_inject",
        N,
        Action.FIX,
        _SCRATCH + "; the job allocates local scratch, so relion-qsub can name it",
        "add `--scratch_dir /lscratch/$SLURM_JOB_ID` to `relion_refine(_mpi)` when the job allocates lscratch (not "
        "with `--preread_images`)",
    ),
    Rule(
        "scratch_job_id",
        N,
        Action.WARN,
        "a scratch path without the job id is shared by the jobs on a node: each wipes the other's copy (relion issue "
        "455)",
        "a `--scratch_dir` without `$SLURM_JOB_ID` is shared by the jobs on a node (relion issue 455)",
    ),
    Rule(
        "scratch_missing",
        N,
        Action.WARN,
        _SCRATCH + " (the site asks RELION jobs to use local scratch)",
        "a refine job without local scratch (said once per script)",
    ),
    Rule(
        "scratch_preread",
        N,
        Action.WARN,
        "relion_refine ignores --scratch_dir when it pre-reads the particles",
        "`--scratch_dir` is ignored with `--preread_images`",
    ),
    Rule(
        "ntasks_mismatch",
        N,
        Action.ERROR,
        "the MPI layout must add up: --ntasks = --nodes x --ntasks-per-node",
        '`--ntasks` must equal `--nodes` × `--ntasks-per-node` (the seed: "MUST equal")',
    ),
    Rule(
        "tasks_per_gpu",
        N,
        Action.WARN,
        "more ranks on a node than its GPUs + 1 leader overload the GPUs "
        "(CudaCustomAllocator out of memory; MotionCor2 'All GPUs are in use')",
        "more tasks per node than GPUs + 1 overload the GPUs",
    ),
    Rule(
        "threads_per_gpu",
        N,
        Action.ERROR,
        "too many threads per GPU hang the node (the profile's [gpu_types] safe_threads)",
        "threads per GPU above the type's safe limit (the profile's `[gpu_types] safe_threads`) hang the node; "
        "single-process jobs (VDAM, InitialModel) spread threads over all GPUs and are not limited",
    ),
    Rule(
        "plus_one_launcher",
        N,
        Action.WARN,
        "homogeneous+1 (odd --ntasks-per-node > 2 on several GPU nodes) needs the "
        "launcher that puts the leader rank alone-extra on the first node",
        "homogeneous+1 (odd `--ntasks-per-node` > 2 on several GPU nodes) needs `${RELION_STD_LAUNCHER}`",
    ),
    Rule(
        "unknown_partition",
        N,
        Action.WARN,
        "a partition the site does not have makes sbatch fail",
        "a partition the profile does not list",
    ),
    Rule(
        "gpu_partition",
        N,
        Action.ERROR,
        "GPUs exist only in the site's GPU partitions",
        "GPU gres in a partition without GPUs, a GPU type the partition lacks, more GPUs per node than it has",
    ),
    Rule(
        "gpu_without_gres",
        N,
        Action.ERROR,
        "a RELION program started on GPUs in a job that allocates none fails ('no CUDA-capable device')",
        "a RELION command that uses a GPU (`--gpu`; RELION 5: ModelAngelo's `-d <ids>`, DynaMight's `--gpu-id`) in a "
        "job that allocates no GPU (gres gpu or `--gpus*`)",
    ),
    Rule("max_time", F, Action.ERROR, "a walltime over the partition's MaxTime pends forever (PartitionTimeLimit)"),
    Rule(
        "partition_nodes",
        F,
        Action.ERROR,
        "more nodes than the partition allows pend forever (PartitionNodeLimit)",
    ),
    Rule("node_cpus", F, Action.ERROR, "a node cannot give more CPUs than it has ('Requested node configuration')"),
    Rule(
        "node_memory",
        F,
        Action.ERROR,
        "a node cannot give more memory than it has ('Requested node configuration')",
    ),
    Rule(
        "memory_unit",
        F,
        Action.ERROR,
        "a memory value without a unit is MB: 20 means 20 MB, not 20 GB",
        "Memory Per Thread `20` is 20 MB, surely meant as GB (a memory value without a unit is MB)",
    ),
    Rule("node_scratch", F, Action.ERROR, "a node cannot give more local scratch than its disk has"),
    Rule(
        "unknown_feature",
        F,
        Action.ERROR,
        "sbatch refuses a --constraint that names a feature no node has ('Invalid feature specification') or that "
        "no node of the partition meets ('Requested node configuration is not available')",
        "a `--constraint` name no node of the site has ('Invalid feature specification'), or an AND (`&`, `,`) the "
        "partition's nodes cannot meet ('Requested node configuration is not available'); `|`, `[...]`, `*N` and "
        "`( )` as Slurm parses them (`gpup100|x2695` is taken)",
    ),
    Rule(
        "gpu_default_partition",
        F,
        Action.ERROR,
        "a job without --partition goes to the default partition, which may have no GPUs",
    ),
    Rule(
        "template_size",
        F,
        Action.ERROR,
        "a fully filled template's MPI procs and threads must be RELION's (it picks relion_*_mpi and --j from them)",
    ),
    Rule(
        "data_input",
        F,
        Action.WARN,
        "scratch, memory and GPU memory are sized from relion_refine's particles (--i): they must be readable",
        "relion_refine's particles file (or its first image's MRC header) cannot be read, so the job's scratch, "
        "pre-read memory and GPU box are not sized: one warning, never a refusal by itself (`error` acts as `warn`)",
    ),
    Rule(
        "data_scratch",
        F,
        Action.WARN,
        "relion_refine copies to each node's --scratch_dir only what fits beside --keep_free_scratch (10 GB) and "
        "reads the rest from the shared filesystem (copyParticlesToScratch)",
        "the lscratch asked per node is less than the particles (N x box² x 4 bytes) plus relion_refine's "
        "`--keep_free_scratch` (default 10 GB): the message names the lscratch to ask and its box",
    ),
    Rule(
        "preread_memory",
        F,
        Action.ERROR,
        "with Pre-read all particles into RAM every MPI rank holds all particles (N x box² x 4 bytes; only the "
        "leader with --no_parallel_disc_io): a node short of it is killed for memory after the queue wait",
        "pre-read particles (every rank on the busiest node, the homogeneous+1 leader's included) exceed the memory "
        "the job gets on that node: the message names the memory to ask and its box",
    ),
    Rule(
        "gpu_box",
        F,
        Action.WARN,
        "auto-refine on GPUs runs out of GPU memory when the box exceeds the limit relion_refine_mpi computes "
        "(checkFixedSizedObjects: (free / (1.05 x 2.5 x 4 x shares))^(1/3) / pad)",
        "the particles' box exceeds what relion_refine_mpi's auto-refine fits in the GPU memory of the partition's "
        "GPU type (the profile's `[gpu_types]` memory) shared by its ranks: RELION's own warning, before the "
        "queue wait",
    ),
    Rule(
        "threads_cpus",
        N,
        Action.WARN,
        "RELION runs 'Number of threads' threads (--j) in every process, but Slurm gives each task only its "
        "--cpus-per-task CPUs (1 without it): the threads share them",
        "RELION's threads (job.star `nr_threads`, or `--j N`) exceed the CPUs per task the job allocates (a "
        f"template without `--cpus-per-task={gui.THREADS}`): the fix names the template line or the box",
    ),
    Rule(
        "mpi_tasks",
        N,
        Action.ERROR,
        "relion_*_mpi runs one process per task the job allocates, not RELION's 'Number of MPI procs': with one "
        "task it stops ('at least 2 MPI processes are required')",
        "a `relion_*_mpi` command in a job that allocates one task (`--ntasks=1` fixed in the template while "
        "'Number of MPI procs' says 4); a count that differs otherwise is a warning; a launcher's own count beyond "
        "the allocation (`srun -n 4` in more than the job's tasks x CPUs per task: 'More processors requested than "
        "permitted'; `mpirun -np 4` in more than one slot per task: 'There are not enough slots available')",
    ),
    Rule(
        "missing_chdir",
        N,
        Action.ERROR,
        "sbatch accepts a --chdir that does not exist; the job then fails at launch with no output (JobLaunchFailure)",
        "`--chdir`/`-D` naming a directory that does not exist (relative: to the submit directory, as sbatch resolves "
        "it; `CREATE_PWD` of another tool): the job would fail at launch with no output at all",
    ),
    Rule(
        "memory_unit_mpi",
        F,
        Action.ERROR,
        "a memory value without a unit is MB: --mem=240 gives a RELION MPI job 240 MB, not 240 GB, far less than "
        "its ranks need",
        "a unit-less memory value over 32 that leaves a rank of a RELION MPI program (`relion_*_mpi`) under 512 MB "
        "(`--mem=240` for 5 ranks): did you mean 240G?",
    ),
)
BY_KEY: dict[str, Rule] = {r.key: r for r in RULES}

DEFAULT_POLICY: dict[str, Action] = {r.key: r.default for r in RULES if r.kind is Kind.NORMALISE}
FIT_POLICY: dict[str, Action] = {r.key: r.default for r in RULES if r.kind is Kind.FIT}
ALL_POLICY: dict[str, Action] = {**DEFAULT_POLICY, **FIT_POLICY}

# Keys of the profile's [policy] table that are settings, not checks (the profile schema declares them).
SETTINGS = ("typo_distance",)


# ---------------------------------------------------------------------------------------------- the site's policy


def policy(raw: Mapping[str, str], path: str) -> dict[str, Action]:
    """The action of every check: the defaults, overridden by a profile's ``[policy]`` table ``raw``.

    An unknown key or action is a one-line error naming the profile ``path``, the key and the nearest known key.
    """
    out = dict(ALL_POLICY)
    for key, value in raw.items():
        if key in SETTINGS:
            continue
        if key not in BY_KEY:
            raise ProfileError(f"{path}: policy.{key}: unknown key; {_hint(key, BY_KEY)}")
        try:
            out[key] = Action(value)
        except ValueError:
            raise ProfileError(
                f"{path}: policy.{key}: expected one of {', '.join(a.value for a in Action)}, got {value!r}"
            ) from None
    return out


def _hint(key: str, known: Iterable[str]) -> str:
    names = sorted(known)
    close = [name for d, name in nearest(key, 1, names) if d <= max(2, len(key) // 3)]
    return f"did you mean policy.{close[0]}?" if close else f"known: {', '.join(names)}"


# ---------------------------------------------------------------------------------------------- documentation

README_BEGIN = "<!-- policy table: generated by relion_qsub.checks.registry.render_policy_table; do not edit -->"
README_END = "<!-- end of policy table -->"


def render_policy_table() -> str:
    """README.md's policy table, between its markers: every check with its default and what it does, in the order
    they run (tests/test_readme_policy.py keeps README.md in step)."""
    rows = [f"| `{r.key}` | {r.kind.value} | {r.default} | {r.doc or r.reason} |" for r in RULES]
    header = ["| policy key (rule) | kind | default | what and why |", "|---|---|---|---|"]
    return "\n".join([README_BEGIN, *header, *rows, README_END])


def reference_rows() -> list[str]:
    """The ``policy.<key>`` rows of docs/profile-reference.md (the profile's schema leaves [policy] open)."""
    actions = ", ".join(a.value for a in Action)
    return [
        f'| `policy.{r.key}` | string | `"{r.default}"` | one of {actions}: {r.reason} |'
        for r in sorted(RULES, key=lambda r: r.key)
    ]
