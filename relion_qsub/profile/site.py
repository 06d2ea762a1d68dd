"""What the submit path reads of a site profile: partitions, GPU types, scratch, policy, and how sbatch is run.

``from_mapping`` builds a :class:`Site` from the profile as ``keys.check`` left it (every default filled in). The
sections only the site tools read (node types, recipes, templates, RELION's environment) are built on first use of
:attr:`Site.profile` (``relion_qsub.profile.recipes``), so that ``relion-qsub check`` and the submission RELION
triggers neither pay for nor fail on them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import units
from ..errors import ProfileError
from .declare import key
from .reader import Reader

if TYPE_CHECKING:
    from .recipes import Profile

# [site_options] values: what sbatch's getopt_long is told about the plugin option's argument.
SITE_OPTION_ARGUMENTS = ("none", "required", "optional")
# [placeholders.<name>] source: where the value of a patched RELION's placeholder comes from.
PLACEHOLDER_SOURCES = ("constant", "env", "jobtype", "box")


@dataclass(frozen=True, slots=True)
class Partition:
    """One Slurm partition (Queue name) and what its largest node has; 0 or empty means unknown: not checked."""

    name: str
    default: bool = key(False, "Slurm's default partition (Default=YES): jobs without -p")
    gpu_types: tuple[str, ...] = key((), "the GPU types of its nodes ([gpu_types] entries)")
    gpus_per_node: int = key(0, "GPUs on its largest node")
    max_time: str = key("", "MaxTime as Slurm writes it (10-00:00:00); empty: UNLIMITED", form="time")
    max_nodes: int = key(0, "MaxNodes per job (0: unlimited)")
    nodes: int = key(0, "how many nodes it has (0: unknown)")
    cpus: int = key(0, "CPUs on its largest node (Slurm CPUs)")
    memory: str = key("", "memory of its largest node (RealMemory, e.g. 240g or 64000 MB)", form="memory")
    scratch_gb: int = key(0, "scratch gres (GB) on its largest node")
    features: tuple[str, ...] = key((), "node features (--constraint names) of its nodes")


@dataclass(frozen=True, slots=True)
class GpuType:
    """One GPU type, by its gres type name (gpu:<type>:N)."""

    safe_threads: int = key(1, "threads per GPU before the node hangs (Number of threads)", minimum=1)
    memory: str = key(
        "", "memory of one GPU (e.g. 16g): the largest box an auto-refine fits (check gpu_box); empty: unknown"
    )


@dataclass(frozen=True, slots=True)
class Scratch:
    """Node-local scratch, allocated as a count-only gres in GB."""

    gres: str = key("lscratch", "the gres name")
    root: str = key("/lscratch", "where the scratch file system is mounted on a node")
    job_dir: str = key("/lscratch/$SLURM_JOB_ID", "the job's own scratch directory")
    min_gb: int = key(5, "the least scratch a job may allocate (GB); added when missing")
    monitor_interval: int = key(0, "seconds between scratch-use samples in generated templates (0: no monitor)")


@dataclass(frozen=True, slots=True)
class Submit:
    """How sbatch is run and retried."""

    sbatch: str = key("sbatch", "the sbatch command")
    squeue: str = key("squeue", "the squeue command (asked before any retry)")
    scancel: str = key("scancel", "the scancel command (cancels a twin job after a retry)")
    timeout: float = key(60.0, "seconds one sbatch or squeue call may take")
    attempts: int = key(4, "sbatch attempts on a transient failure", minimum=1)
    backoff: tuple[float, ...] = key((2.0, 5.0, 15.0), "seconds between attempts")
    transient: tuple[str, ...] = key(
        (
            "Socket timed out on send/recv operation",
            "Unable to contact slurm controller",
            "Transport endpoint is not connected",
            "Zero Bytes were transmitted or received",
            "Slurm temporarily unable to accept job",
            "Connection refused",
        ),
        "sbatch messages that are worth a retry",
    )
    settle: float = key(3.0, "seconds between the two squeue answers that must agree 'no job'")
    scontrol: str = key("scontrol", "the scontrol command (releases the held job once its id is known)")
    # False: every job gets --no-requeue (a requeued job would rerun after RELION was told it failed).
    requeue: bool = key(
        False, "let Slurm requeue a job (false: --no-requeue, so a job RELION was told failed never reruns)"
    )
    watch: bool = key(True, "submit the small end-watcher job that tells RELION when Slurm ends a job early")
    watch_options: tuple[str, ...] = key((), "extra sbatch options for the watcher job (e.g. a quick partition)")


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A placeholder a patched RELION fills (XXXqosXXX) and stock RELION leaves in the script, and how relion-qsub
    fills it in the normalised script."""

    source: str = key(
        "constant",
        "where its value comes from: constant (value as written), env (the environment variable named by value, "
        "read at submission), jobtype (the job type job.star records, e.g. relion.class2d), box (the GUI box named "
        "by value, qsub_extraN, as job.star records it)",
        choices=PLACEHOLDER_SOURCES,
    )
    value: str = key("", "the constant (constant), the variable's name (env), the box's qsub_extraN (box)")


@dataclass(frozen=True, slots=True)
class Site:
    """The submit path's part of a site profile; :attr:`profile` is the rest."""

    name: str
    path: str
    partitions: Mapping[str, Partition]
    gpu_safe_threads: Mapping[str, int]
    scratch: Scratch
    policy: Mapping[str, str]  # the [policy] table as written, less typo_distance (relion_qsub.checks reads it)
    typo_distance: int
    launchers: tuple[str, ...]
    submit: Submit
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)  # the checked TOML
    # The site's plugin (SPANK) options sbatch accepts, name -> its argument: "none", "required" or "optional".
    site_options: Mapping[str, str] = field(default_factory=dict)
    gpu_memory_mb: Mapping[str, int] = field(default_factory=dict)  # GPU type -> MB of one GPU (0: unknown)
    # [placeholders]: a patched RELION's placeholders by name (qos for XXXqosXXX) and how to fill each.
    placeholders: Mapping[str, Placeholder] = field(default_factory=dict)
    # The site tools' sections once built (by :attr:`profile`, or given: a copy with other values of them).
    built: Profile | None = field(default=None, repr=False, compare=False)

    def gpu_partitions(self) -> list[str]:
        return sorted(p.name for p in self.partitions.values() if p.gpu_types)

    def field_labels(self) -> list[tuple[str, str]]:
        """(label, sbatch option) of each extra GUI box, RELION_QSUB_EXTRA1 first; read without building the
        rich profile (the submit path names boxes in its messages)."""
        fields = self.raw.get("fields", [])
        return [(str(f.get("label", "")), str(f.get("option", ""))) for f in fields if isinstance(f, dict)]

    def default_partition(self) -> Partition | None:
        """Where a job without --partition lands (Slurm's Default=YES), if the profile says."""
        return next((p for p in self.partitions.values() if p.default), None)

    @property
    def profile(self) -> Profile:
        """The sections the site tools read (node types, recipes, templates ...), built and checked on first use."""
        if self.built is None:
            from .recipes import build  # not on the submit path: it never reads these sections

            object.__setattr__(self, "built", build(self.raw, self))  # a cache, not a change: frozen otherwise
        assert self.built is not None
        return self.built


def _partition(parts: Reader, name: str, safe: Mapping[str, int]) -> Partition:
    p = parts.table(name)
    for t in p.strings("gpu_types"):
        if t not in safe:
            raise ProfileError(
                f"{parts.path}: partitions.{name}.gpu_types: GPU type {t!r} has no [gpu_types.{t}] table"
            )
    return p.section(Partition, name=name)


def from_mapping(data: Mapping[str, Any], path: str) -> Site:
    """The submit path's part of a profile ``data`` that ``keys.check`` filled in."""
    top = Reader(path, data)
    gpu_types = top.table("gpu_types")
    types = {name: gpu_types.table(name).section(GpuType) for name in gpu_types.keys()}
    safe = {name: t.safe_threads for name, t in types.items()}
    parts = top.table("partitions")
    pol = top.table("policy")
    return Site(
        name=top.text("name", Path(path).stem),
        path=path,
        partitions={name: _partition(parts, name, safe) for name in parts.keys()},
        gpu_safe_threads=safe,
        scratch=top.table("scratch").section(Scratch),
        # Kept raw: the checks declare their keys and validate this table (relion_qsub.checks.registry.policy).
        policy={name: pol.text(name) for name in pol.keys() if name != "typo_distance"},
        typo_distance=pol.integer("typo_distance"),
        launchers=top.strings("launchers"),
        submit=top.table("submit").section(Submit),
        raw=data,
        site_options=_site_options(top),
        gpu_memory_mb={name: _gpu_memory(gpu_types, name, t.memory) for name, t in types.items()},
        placeholders=_placeholders(top),
    )


# The placeholders RELION itself fills (RelionJob::saveJobSubmissionScript): a profile may not redefine them.
_RELION_FILLS = ("mpinodes", "threads", "cores", "dedicated", "nodes", "name", "errfile", "outfile", "queue", "command")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER_NAME = re.compile(r"[a-z]\w*")


def _placeholders(top: Reader) -> dict[str, Placeholder]:
    """``[placeholders.<name>]``, each checked: a name a patched RELION uses, and a value its source can use."""
    table = top.table("placeholders")
    found = {}
    for name in table.keys():
        if not _PLACEHOLDER_NAME.fullmatch(name) or name.endswith("XXX") or "XXX" in name:
            raise table.fail(name, "a placeholder's name between XXX and XXX, in lower case (qos for XXXqosXXX)", name)
        if name in _RELION_FILLS or (name.startswith("extra") and name[5:].isdigit()):
            raise table.fail(name, f"a placeholder RELION does not fill itself (it fills XXX{name}XXX)", name)
        entry = table.table(name).section(Placeholder)
        one = table.table(name)
        if entry.source == "env" and not _ENV_NAME.fullmatch(entry.value):
            raise one.fail("value", 'the name of an environment variable (source = "env")', entry.value)
        if entry.source == "box" and not (entry.value.startswith("qsub_extra") and entry.value[10:].isdigit()):
            raise one.fail("value", 'a box as job.star names it, qsub_extraN (source = "box")', entry.value)
        if "\n" in entry.value:
            raise one.fail("value", "one line", entry.value)
        found[name] = entry
    return found


def _gpu_memory(gpu_types: Reader, name: str, text: str) -> int:
    """MB of one GPU of a type; a value that is no memory size is an error naming the key."""
    if not text:
        return 0
    mb = units.memory_mb(text)
    if not mb:
        raise gpu_types.fail(f"{name}.memory", "a memory size such as 16g or 16000m", text)
    return int(mb)


def _site_options(top: Reader) -> dict[str, str]:
    """``[site_options]``: ``gpu_cmode = "required"``; a name is what follows ``--`` (no typo rule touches it)."""
    table = top.table("site_options")
    found = {}
    for name in table.keys():
        if not name or name.startswith("-") or any(c.isspace() or c == "=" for c in name):
            raise table.fail(name, "an option name without '--' (e.g. gpu_cmode)", name)
        found[name] = table.text(name, "required", SITE_OPTION_ARGUMENTS)
    return found
