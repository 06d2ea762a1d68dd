"""The site profile: what a cluster's partitions, GPUs and scratch look like, and what relion-qsub enforces.

A profile is a TOML file read with tomllib (stdlib: nothing heavy on the submit path). The packaged profiles live in
``relion_qsub/profiles/``; ``biowulf`` (the NIH values from the seed page) is the default. A site selects its own with
``--site NAME|PATH`` or ``RELION_QSUB_SITE`` (set by the environment module). Errors name the file, the key and
what is expected.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ProfileError

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
DEFAULT_PROFILE = "biowulf"

# What a check does when it fires: refuse the script, warn and submit, repair it, or nothing.
ACTIONS = ("error", "warn", "fix", "off")

DEFAULT_POLICY: dict[str, str] = {
    "empty_directive": "fix",
    "unfilled_placeholder": "warn",  # a directive with RELION's XXX...XXX left in: dropped with a warning
    "typo": "fix",
    "memory_conflict": "fix",
    "duplicate_gres": "fix",
    "scratch_inject": "fix",
    "scratch_gres": "fix",
    "scratch_job_id": "warn",
    "scratch_missing": "warn",
    "ntasks_mismatch": "error",
    "tasks_per_gpu": "warn",
    "threads_per_gpu": "error",
    "plus_one_launcher": "warn",
    "gpu_partition": "error",
    "gpu_without_gres": "error",
    "unknown_partition": "warn",
    "ignored_directive": "warn",
}

DEFAULT_TRANSIENT = (
    "Socket timed out on send/recv operation",
    "Unable to contact slurm controller",
    "Transport endpoint is not connected",
    "Zero Bytes were transmitted or received",
    "Slurm temporarily unable to accept job",
    "Connection refused",
)


@dataclass(frozen=True)
class Partition:
    name: str
    gpu_types: tuple[str, ...] = ()
    gpus_per_node: int = 0


@dataclass(frozen=True)
class Scratch:
    gres: str = "lscratch"
    root: str = "/lscratch"
    job_dir: str = "/lscratch/$SLURM_JOB_ID"
    min_gb: int = 5
    monitor_interval: int = 0  # seconds between lscratch_mon.sh samples in generated templates; 0: not started


@dataclass(frozen=True)
class Submit:
    sbatch: str = "sbatch"
    squeue: str = "squeue"
    timeout: float = 60.0
    attempts: int = 4
    backoff: tuple[float, ...] = (2.0, 5.0, 15.0)
    transient: tuple[str, ...] = DEFAULT_TRANSIENT


# ---------------------------------------------------------------------------------------------- issue 6/7 sections
# Everything below is read by `relion-qsub templates|recommend|module`, never by the submit path's rules.

# RELION reads RELION_QSUB_NRMPI / RELION_QSUB_NRTHREADS into a `char` (pipeline_jobs.cpp): 128 wraps to -128.
RELION_CHAR_MAX = 127
# RELION_QUEUE_USE: RELION compares the text with these words only (anything else reads as "no").
QUEUE_USE_WORDS = ("yes", "no", "true", "false")
# Size templates: <NN>_<name>.sh, as in Biowulf's template tree (01_tiny.sh ... 05_xlarge.sh).
SIZE_NAMES = ("tiny", "small", "medium", "large", "xlarge")
# [tools] key -> the variable RELION reads for the default of that program's "executable" box.
TOOL_VARIABLES = {
    "ctffind": "RELION_CTFFIND_EXECUTABLE",
    "gctf": "RELION_GCTF_EXECUTABLE",
    "motioncor2": "RELION_MOTIONCOR2_EXECUTABLE",
    "resmap": "RELION_RESMAP_EXECUTABLE",
    "topaz": "RELION_TOPAZ_EXECUTABLE",
    "python": "RELION_PYTHON_EXECUTABLE",
}
_MEMORY = re.compile(r"^(\d+)([KkMmGgTt]?)$")
_MEMORY_FACTOR = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024, "": 1}


def memory_mb(text: str) -> int | None:
    """A Slurm memory size (``20g``, ``4200m``, ``500`` = MB, ``0``) in MiB; None when it is not one."""
    match = _MEMORY.match(text.strip())
    if match is None:
        return None
    return int(int(match.group(1)) * _MEMORY_FACTOR[match.group(2).lower()])


@dataclass(frozen=True)
class NodeType:
    """One kind of node a job can ask for: where it is (partition, constraint) and what it has."""

    name: str
    partition: str
    cpus: int
    memory_mb: int
    constraint: str = ""
    gpu_type: str = ""
    gpus: int = 0
    safe_threads: int = 0  # threads per GPU before the node hangs (0: no GPUs)
    scratch_gb: int = 0
    description: str = ""

    @property
    def has_gpus(self) -> bool:
        return self.gpus > 0

    @property
    def mem_per_cpu_mb(self) -> int:
        return self.memory_mb // max(1, self.cpus)


@dataclass(frozen=True)
class GuiField:
    """RELION's extra Running-tab field N (RELION_QSUB_EXTRAn, _DEFAULT, _HELP) and the sbatch option it fills."""

    number: int
    label: str
    option: str = ""  # "time", "mem-per-cpu", "gres", ...; "" = a bare "#SBATCH XXXextraNXXX" directives box
    default: str = ""
    help: str = ""

    @property
    def placeholder(self) -> str:
        return f"XXXextra{self.number}XXX"


@dataclass(frozen=True)
class Limits:
    """Running-tab defaults and limits (RELION_QSUB_NRMPI ... RELION_MPIRUN)."""

    nr_mpi: int = 1
    nr_threads: int = 1
    mpi_max: int = 64  # RELION's default slider maximum
    thread_max: int = 16
    minimum_dedicated: int = 1
    allow_change_dedicated: bool = False
    error_local_mpi: int = 32
    mpirun: str = "mpirun"


@dataclass(frozen=True)
class Queue:
    use: str = "yes"
    name: str = ""
    command: str = "relion-qsub"


@dataclass(frozen=True)
class Launcher:
    """How templates start RELION's command: ``${<variable>} [--mem-per-cpu=...] XXXcommandXXX``."""

    variable: str = "RELION_STD_LAUNCHER"
    command: str = "relion-launch"  # the module's value of the variable
    memory_option: bool = False  # repeat Memory Per Thread on the launcher line (Biowulf's common.sh does)


@dataclass(frozen=True)
class MemoryPolicy:
    whole_node: str = "0"  # Memory Per Thread that means "all of the node" with --exclusive (seed NOTE 5)
    default: str = "4g"


@dataclass(frozen=True)
class Mpi:
    """'Number of MPI procs' as a recommendation gives it: one value, a list of choices or a range."""

    value: int
    choices: tuple[int, ...] = ()
    low: int = 0
    high: int = 0

    def text(self) -> str:
        if self.choices:
            return ", ".join(map(str, self.choices[:-1])) + f" or {self.choices[-1]}"
        if self.high:
            return f"{self.low}-{self.high}"
        return str(self.value)

    def allows(self, n: int) -> bool:
        if self.choices:
            return n in self.choices
        if self.high:
            return self.low <= n <= self.high
        return n == self.value


@dataclass(frozen=True)
class Row:
    """The Running-tab values one recommendation gives for one node type."""

    node_type: str
    mpi: Mpi
    threads: int | None  # None: the job type has no "Number of threads" box
    queue: str
    walltime: str = ""
    memory: str = ""
    gres: str = ""
    directives: str = ""


@dataclass(frozen=True)
class Recipe:
    """A recommended-parameters entry: a job type's GUI values (other tabs) and its Running tab per node type."""

    key: str
    title: str
    relion_job: str
    tabs: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    rows: Mapping[str, Row] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    source: str = ""

    def row(self, node_type: str | None) -> Row:
        if node_type is None:
            return next(iter(self.rows.values()))
        return self.rows.get(node_type) or self.rows["any"]


@dataclass(frozen=True)
class Size:
    """One fully filled template (``01_tiny.sh`` ...): the recipe row with the size's values."""

    name: str
    index: int
    mpi: int
    threads: int
    walltime: str
    memory: str
    gres: str
    directives: str

    @property
    def filename(self) -> str:
        return f"{self.index:02d}_{self.name}.sh"


@dataclass(frozen=True)
class TemplateSet:
    directory: str
    recipe: str
    node_type: str
    sizes: tuple[Size, ...]


@dataclass(frozen=True)
class Site:
    name: str
    path: str
    partitions: Mapping[str, Partition] = field(default_factory=dict)
    gpu_safe_threads: Mapping[str, int] = field(default_factory=dict)
    scratch: Scratch = Scratch()
    policy: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_POLICY))
    typo_distance: int = 2
    launchers: tuple[str, ...] = ("RELION_STD_LAUNCHER", "relion-launch")
    submit: Submit = Submit()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # What the environment module, the template generator and `relion-qsub recommend` read (issues 6 and 7).
    node_types: Mapping[str, NodeType] = field(default_factory=dict)
    fields: tuple[GuiField, ...] = ()
    limits: Limits = Limits()
    queue: Queue = Queue()
    launcher: Launcher = Launcher()
    memory: MemoryPolicy = MemoryPolicy()
    tools: Mapping[str, str] = field(default_factory=dict)
    recipes: Mapping[str, Recipe] = field(default_factory=dict)
    template_sets: tuple[TemplateSet, ...] = ()
    exclusive: tuple[str, ...] = ()

    def action(self, check: str) -> str:
        return self.policy.get(check, DEFAULT_POLICY.get(check, "warn"))

    def gpu_partitions(self) -> list[str]:
        return sorted(p.name for p in self.partitions.values() if p.gpu_types)

    def field_for(self, option: str) -> GuiField | None:
        """The GUI field whose value goes into ``--<option>`` ("" = the first SBATCH Directives box)."""
        return next((f for f in self.fields if f.option == option), None)


class _Reader:
    """Typed access to a TOML table that reports mistakes as ``file: key: expected ..., got ...``."""

    def __init__(self, path: str, data: Mapping[str, Any], prefix: str = "") -> None:
        self.path, self.data, self.prefix = path, data, prefix

    def _fail(self, key: str, expected: str, got: object) -> ProfileError:
        return ProfileError(f"{self.path}: {self.prefix}{key}: expected {expected}, got {got!r}")

    def table(self, key: str) -> _Reader:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self._fail(key, "a table", value)
        return _Reader(self.path, value, f"{self.prefix}{key}.")

    def text(self, key: str, default: str, choices: tuple[str, ...] = ()) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str) or (choices and value not in choices):
            raise self._fail(key, "one of " + ", ".join(choices) if choices else "a string", value)
        return value

    def integer(self, key: str, default: int, minimum: int = 0, maximum: int | None = None, why: str = "") -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self._fail(key, f"a whole number >= {minimum}", value)
        if maximum is not None and value > maximum:
            raise self._fail(key, f"a whole number <= {maximum}{why}", value)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self._fail(key, "true or false", value)
        return value

    def required(self, key: str, expected: str) -> Any:
        if key not in self.data:
            raise ProfileError(f"{self.path}: {self.prefix}{key}: missing; expected {expected}")
        return self.data[key]

    def pairs(self, key: str) -> tuple[tuple[str, str], ...]:
        """A table of label = "value" strings, in file order (tomllib keeps it)."""
        table = self.table(key)
        return tuple((label, table.text(label, "")) for label in table.keys())

    def memory(self, key: str, default: str) -> str:
        value = self.text(key, default)
        if memory_mb(value) is None:
            raise self._fail(key, "a Slurm memory size such as 4g, 4200m or 500 (MB)", value)
        return value

    def mpi(self, key: str, default: int) -> Mpi:
        value = self.data.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return Mpi(value)
        if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return Mpi(value[0], choices=tuple(value))
        if isinstance(value, str) and re.fullmatch(r"\d+-\d+", value):
            low, high = map(int, value.split("-"))
            if 1 <= low <= high:
                return Mpi(low, low=low, high=high)
        raise self._fail(key, 'a number of MPI procs >= 1, a list of choices [4, 8] or a range "128-2048"', value)

    def number(self, key: str, default: float) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self._fail(key, "a number >= 0", value)
        return float(value)

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.data.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "a list of strings", value)
        return tuple(value)

    def numbers(self, key: str, default: tuple[float, ...]) -> tuple[float, ...]:
        value = self.data.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, int | float) and v >= 0 for v in value):
            raise self._fail(key, "a list of numbers >= 0", value)
        return tuple(float(v) for v in value)

    def keys(self) -> list[str]:
        return list(self.data)


def from_mapping(data: Mapping[str, Any], path: str) -> Site:
    top = _Reader(path, data)
    partitions: dict[str, Partition] = {}
    parts = top.table("partitions")
    for name in parts.keys():
        p = parts.table(name)
        types = p.strings("gpu_types", ())
        partitions[name] = Partition(name, types, p.integer("gpus_per_node", 4 if types else 0))
    gpu_types = top.table("gpu_types")
    safe = {name: gpu_types.table(name).integer("safe_threads", 1, minimum=1) for name in gpu_types.keys()}
    for part in partitions.values():
        for t in part.gpu_types:
            if t not in safe:
                raise ProfileError(
                    f"{path}: partitions.{part.name}.gpu_types: GPU type {t!r} has no [gpu_types.{t}] table"
                )
    s = top.table("scratch")
    scratch = Scratch(
        s.text("gres", "lscratch"),
        s.text("root", "/lscratch"),
        s.text("job_dir", "/lscratch/$SLURM_JOB_ID"),
        s.integer("min_gb", 5),
        s.integer("monitor_interval", 0),
    )
    pol = top.table("policy")
    policy = dict(DEFAULT_POLICY)
    for key in pol.keys():
        if key == "typo_distance":
            continue
        if key not in DEFAULT_POLICY:
            raise ProfileError(f"{path}: policy.{key}: unknown check; known: {', '.join(sorted(DEFAULT_POLICY))}")
        policy[key] = pol.text(key, "warn", ACTIONS)
    sub = top.table("submit")
    submit = Submit(
        sub.text("sbatch", "sbatch"),
        sub.text("squeue", "squeue"),
        sub.number("timeout", 60.0),
        sub.integer("attempts", 4, minimum=1),
        sub.numbers("backoff", (2.0, 5.0, 15.0)),
        sub.strings("transient", DEFAULT_TRANSIENT),
    )
    node_types = _node_types(top, partitions, safe)
    recipes = _recipes(top, node_types)
    return Site(
        node_types=node_types,
        fields=_fields(top),
        limits=_limits(top),
        queue=_queue(top),
        launcher=_launcher(top),
        memory=_memory_policy(top),
        tools=_tools(top),
        recipes=recipes,
        template_sets=_template_sets(top, recipes, node_types),
        exclusive=_exclusive(top, node_types),
        name=top.text("name", Path(path).stem),
        path=path,
        partitions=partitions,
        gpu_safe_threads=safe,
        scratch=scratch,
        policy=policy,
        typo_distance=pol.integer("typo_distance", 2),
        launchers=top.strings("launchers", ("RELION_STD_LAUNCHER", "relion-launch")),
        submit=submit,
        raw=data,
    )


def _node_types(top: _Reader, partitions: Mapping[str, Partition], safe: Mapping[str, int]) -> dict[str, NodeType]:
    out: dict[str, NodeType] = {}
    table = top.table("node_types")
    for name in table.keys():
        t = table.table(name)
        part = t.text("partition", "")
        if part not in partitions:
            raise t._fail("partition", f"one of the [partitions] ({', '.join(sorted(partitions))})", part)
        gpu_type = t.text("gpu_type", "")
        if gpu_type and gpu_type not in safe:
            raise t._fail("gpu_type", "a GPU type with a [gpu_types.<type>] table", gpu_type)
        t.required("cpus", "the number of CPUs Slurm counts on one node")
        t.required("memory", "the node's memory as Slurm sees it (RealMemory), e.g. 240g")
        out[name] = NodeType(
            name=name,
            partition=part,
            cpus=t.integer("cpus", 1, minimum=1),
            memory_mb=memory_mb(t.memory("memory", "0")) or 0,
            constraint=t.text("constraint", ""),
            gpu_type=gpu_type,
            gpus=t.integer("gpus", 0),
            safe_threads=safe.get(gpu_type, 0),
            scratch_gb=t.integer("scratch_gb", 0),
            description=t.text("description", ""),
        )
    return out


def _fields(top: _Reader) -> tuple[GuiField, ...]:
    value = top.data.get("fields", [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise top._fail("fields", "an array of tables ([[fields]] with label, option, default, help)", value)
    out = []
    for number, item in enumerate(value, start=1):
        f = _Reader(top.path, item, f"fields[{number}].")
        label = f.text("label", "")
        if not label.strip():
            raise f._fail("label", "the text RELION shows beside the box (RELION_QSUB_EXTRA" + f"{number})", label)
        out.append(GuiField(number, label, f.text("option", ""), f.text("default", ""), f.text("help", "")))
    return tuple(out)


def _limits(top: _Reader) -> Limits:
    t = top.table("limits")
    why = " (RELION stores it in a char: larger values wrap to negative numbers)"
    return Limits(
        nr_mpi=t.integer("nr_mpi", 1, minimum=1, maximum=RELION_CHAR_MAX, why=why),
        nr_threads=t.integer("nr_threads", 1, minimum=1, maximum=RELION_CHAR_MAX, why=why),
        mpi_max=t.integer("mpi_max", 64, minimum=1),
        thread_max=t.integer("thread_max", 16, minimum=1),
        minimum_dedicated=t.integer("minimum_dedicated", 1, minimum=1),
        allow_change_dedicated=t.boolean("allow_change_dedicated", False),
        error_local_mpi=t.integer("error_local_mpi", 32, minimum=1),
        mpirun=t.text("mpirun", "mpirun"),
    )


def _queue(top: _Reader) -> Queue:
    t = top.table("queue")
    return Queue(t.text("use", "yes", QUEUE_USE_WORDS), t.text("name", ""), t.text("command", "relion-qsub"))


def _launcher(top: _Reader) -> Launcher:
    t = top.table("launcher")
    variable = t.text("variable", "RELION_STD_LAUNCHER")
    if not re.fullmatch(r"[A-Za-z_]\w*", variable):
        raise t._fail("variable", "an environment variable name", variable)
    return Launcher(variable, t.text("command", "relion-launch"), t.boolean("memory_option", False))


def _memory_policy(top: _Reader) -> MemoryPolicy:
    t = top.table("memory")
    return MemoryPolicy(t.memory("whole_node", "0"), t.memory("default", "4g"))


def _tools(top: _Reader) -> dict[str, str]:
    t = top.table("tools")
    for key in t.keys():
        if key not in TOOL_VARIABLES:
            raise t._fail(key, "one of " + ", ".join(TOOL_VARIABLES), key)
    return {key: t.text(key, "") for key in t.keys() if t.text(key, "")}


def _row(r: _Reader, defaults: _Reader, node_type: str, has_threads: bool) -> Row:
    def text(key: str) -> str:
        return r.text(key, defaults.text(key, ""))

    if not text("queue"):
        raise r._fail("queue", "the partition ('Queue name'), here or in the recipe's defaults", "")
    threads = r.integer("threads", defaults.integer("threads", 1, minimum=1), minimum=1) if has_threads else None
    memory = text("memory")
    if memory and memory_mb(memory) is None:
        raise r._fail("memory", "a Slurm memory size such as 4g, 4200m or 0", memory)
    return Row(
        node_type=node_type,
        mpi=r.mpi("mpi", defaults.mpi("mpi", 1).value) if "mpi" in r.data else defaults.mpi("mpi", 1),
        threads=threads,
        queue=text("queue"),
        walltime=text("walltime"),
        memory=memory,
        gres=text("gres"),
        directives=text("directives"),
    )


def _recipes(top: _Reader, node_types: Mapping[str, NodeType]) -> dict[str, Recipe]:
    out: dict[str, Recipe] = {}
    table = top.table("recipes")
    for key in table.keys():
        t = table.table(key)
        defaults, rows_table = t.table("defaults"), t.table("rows")
        has_threads = t.boolean("has_threads", True)
        rows: dict[str, Row] = {}
        for node in rows_table.keys():
            if node != "any" and node not in node_types:
                raise rows_table._fail(node, f"a node type ({', '.join(node_types)}) or 'any'", node)
            rows[node] = _row(rows_table.table(node), defaults, node, has_threads)
        if not rows:
            raise t._fail("rows", "at least one [recipes.<job>.rows.<node type>] table", {})
        tabs = t.table("tabs")
        out[key] = Recipe(
            key=key,
            title=t.text("title", key),
            relion_job=t.text("relion_job", ""),
            tabs=tuple((name, tabs.pairs(name)) for name in tabs.keys()),
            rows=rows,
            notes=t.strings("notes", ()),
            source=t.text("source", ""),
        )
    return out


def _size(r: _Reader, row: Row, name: str) -> Size:
    memory = r.text("memory", row.memory)
    if memory_mb(memory) is None:
        raise r._fail("memory", "a Slurm memory size (the recipe row gives none)", memory)
    return Size(
        name=name,
        index=SIZE_NAMES.index(name) + 1,
        mpi=r.integer("mpi", row.mpi.value, minimum=1),
        threads=r.integer("threads", row.threads or 1, minimum=1),
        walltime=r.text("walltime", row.walltime),
        memory=memory,
        gres=r.text("gres", row.gres),
        directives=r.text("directives", row.directives),
    )


def _template_sets(
    top: _Reader, recipes: Mapping[str, Recipe], node_types: Mapping[str, NodeType]
) -> tuple[TemplateSet, ...]:
    out = []
    table = top.table("job_templates")
    for directory in table.keys():
        t = table.table(directory)
        recipe_key = t.text("recipe", "")
        if recipe_key not in recipes:
            raise t._fail("recipe", f"one of the [recipes] ({', '.join(recipes)})", recipe_key)
        node = t.text("node_type", "")
        if node not in node_types:
            raise t._fail("node_type", f"one of the [node_types] ({', '.join(node_types)})", node)
        recipe = recipes[recipe_key]
        if node not in recipe.rows and "any" not in recipe.rows:
            raise t._fail("node_type", f"a node type recipe {recipe_key!r} has a row for", node)
        sizes_table = t.table("sizes")
        unknown = [n for n in sizes_table.keys() if n not in SIZE_NAMES]
        if unknown:
            raise sizes_table._fail(unknown[0], "a size name: " + ", ".join(SIZE_NAMES), unknown[0])
        row = recipe.row(node)
        sizes = tuple(_size(sizes_table.table(n), row, n) for n in SIZE_NAMES if n in sizes_table.data)
        out.append(TemplateSet(directory, recipe_key, node, sizes))
    return tuple(out)


def _exclusive(top: _Reader, node_types: Mapping[str, NodeType]) -> tuple[str, ...]:
    default = tuple(n for n, t in node_types.items() if not t.has_gpus)
    names = top.strings("exclusive_templates", default)
    for name in names:
        if name not in node_types:
            raise top._fail("exclusive_templates", f"node type names ({', '.join(node_types)})", name)
    return names


def resolve(name_or_path: str | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    """The profile file for ``--site``, else ``$RELION_QSUB_SITE``, else the default (a name or a path)."""
    choice = name_or_path or environ.get("RELION_QSUB_SITE") or DEFAULT_PROFILE
    if "/" in choice or choice.endswith(".toml"):
        return Path(choice)
    return PROFILE_DIR / f"{choice}.toml"


def load(name_or_path: str | None = None, environ: Mapping[str, str] = os.environ) -> Site:
    path = resolve(name_or_path, environ)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.toml")))
        raise ProfileError(f"site profile {str(path)!r} not found; use a path or one of: {known}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from exc
    return from_mapping(data, str(path))
