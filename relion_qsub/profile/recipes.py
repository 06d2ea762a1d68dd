"""What the site tools read of a profile: node types, GUI boxes, RELION's environment, recipes and template sets.

Read by ``relion-qsub templates|recommend|module`` (issues 6 and 7), never by the submit path: ``Site.profile``
builds it on first use from the same checked TOML, so that ``relion-qsub check`` and the submission RELION
triggers neither pay for nor fail on recipes they do not use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ScriptError
from ..script import split_words
from ..slurm.options import BY_NAME, parse_words
from ..units import memory_mb
from . import crosscheck, declare, forms
from .reader import FILLED, Reader

if TYPE_CHECKING:
    from .site import Partition, Site


# RELION reads RELION_QSUB_NRMPI / RELION_QSUB_NRTHREADS into a `char` (pipeline_jobs.cpp): 128 wraps to -128.
RELION_CHAR_MAX = 127
# RELION_QUEUE_USE: RELION compares the text with these words only (anything else reads as "no").
QUEUE_USE_WORDS = ("yes", "no", "true", "false")
# Names that become file or directory names (template directories, node types, the site): one plain path component.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
NAME_EXPECTED = "a plain name of letters, digits, '.', '_', '+' and '-' (it names a file or directory)"
# A value written after `#SBATCH --option=`: one word as sbatch splits a directive, nothing it would read otherwise.
_WORD = re.compile(r"[^\s'\"\\#]*")
WORD_EXPECTED = "one word without spaces, quotes, '#' or backslashes (it goes into an #SBATCH line)"
# The job's scratch directory: goes into shell code (lscratch_mon.sh) and RELION_SCRATCH_DIR.
_JOB_DIR = re.compile(r"/(?:[A-Za-z0-9._/+-]|\$SLURM_JOB_ID(?![A-Za-z0-9_])|\$\{SLURM_JOB_ID\})*")
JOB_DIR_EXPECTED = (
    "an absolute path of letters, digits, '.', '_', '+', '-' and '/', with $SLURM_JOB_ID or ${SLURM_JOB_ID} "
    "for the job id (it goes into shell code)"
)
_LINE_BREAKS = "\n\r\0"
# [tools] key -> the variable RELION reads for the default of that program's "executable" box.
TOOL_VARIABLES = {
    "ctffind": "RELION_CTFFIND_EXECUTABLE",
    "gctf": "RELION_GCTF_EXECUTABLE",
    "motioncor2": "RELION_MOTIONCOR2_EXECUTABLE",
    "resmap": "RELION_RESMAP_EXECUTABLE",
    "topaz": "RELION_TOPAZ_EXECUTABLE",
    "python": "RELION_PYTHON_EXECUTABLE",
}
# [job_templates.<dir>.sizes.<size>]: the sizes a template set may have, in file order (01_tiny.sh ...).
SIZE_NAMES = ("tiny", "small", "medium", "large", "xlarge")
# RELION stores these in a `char` (pipeline_jobs.cpp): the error says why the maximum.
_CHAR = {"maximum": RELION_CHAR_MAX, "why": " (RELION stores it in a char: larger values wrap to negative numbers)"}


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Limits:
    """Running-tab defaults and limits RELION reads from the environment."""

    nr_mpi: int = declare.key(1, "RELION_QSUB_NRMPI: default Number of MPI procs (<= 127)", minimum=1, **_CHAR)
    nr_threads: int = declare.key(1, "RELION_QSUB_NRTHREADS: default Number of threads (<= 127)", minimum=1, **_CHAR)
    mpi_max: int = declare.key(64, "RELION_MPI_MAX: the MPI slider's maximum", minimum=1)
    thread_max: int = declare.key(16, "RELION_THREAD_MAX: the threads slider's maximum", minimum=1)
    minimum_dedicated: int = declare.key(1, "RELION_MINIMUM_DEDICATED", minimum=1)
    allow_change_dedicated: bool = declare.key(False, "RELION_ALLOW_CHANGE_MINIMUM_DEDICATED")
    error_local_mpi: int = declare.key(32, "RELION_ERROR_LOCAL_MPI: most MPI procs of a local run", minimum=1)
    mpirun: str = declare.key("mpirun", "RELION_MPIRUN (local runs only)")


@dataclass(frozen=True, slots=True)
class Queue:
    """RELION's queue boxes."""

    use: str = declare.key("yes", "RELION_QUEUE_USE: yes, no, true or false", choices=QUEUE_USE_WORDS)
    name: str = declare.key("", "RELION_QUEUE_NAME: the default Queue name")
    command: str = declare.key("relion-qsub", "RELION_QSUB_COMMAND: the Queue submit command")


@dataclass(frozen=True, slots=True)
class Launcher:
    """How templates start RELION's command: ``${<variable>} [--mem-per-cpu=...] XXXcommandXXX``."""

    variable: str = declare.key("RELION_STD_LAUNCHER", "the variable on the template's launcher line")
    command: str = declare.key("relion-launch", "the module's value of that variable")
    memory_option: bool = declare.key(False, "repeat Memory Per Thread on the launcher line")


@dataclass(frozen=True, slots=True)
class MemoryPolicy:
    """Memory Per Thread values with a meaning."""

    # "all of the node" with --exclusive (seed NOTE 5)
    whole_node: str = declare.key("0", "the value that means all of the node (with --exclusive)")
    default: str = declare.key("4g", "the default Memory Per Thread")


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class TemplateSet:
    directory: str
    recipe: str
    node_type: str
    sizes: tuple[Size, ...]


@dataclass(frozen=True, slots=True)
class Profile:
    """What the environment module, the template generator and `relion-qsub recommend` read."""

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

    def field_for(self, option: str) -> GuiField | None:
        """The GUI field whose value goes into ``--<option>`` ("" = the first SBATCH Directives box)."""
        return next((f for f in self.fields if f.option == option), None)


def build(data: Mapping[str, Any], site: Site) -> Profile:
    """The rich sections of ``data`` (the profile file ``site.path``), validated like the core."""
    top = Reader(site.path, data)
    check_site(top, site)
    node_types = _node_types(top, site.partitions, site.gpu_safe_threads)
    recipes = _recipes(top, node_types)
    template_sets = _template_sets(top, recipes, node_types)
    crosscheck.partitions(site)
    crosscheck.recipes(site, recipes, node_types)
    crosscheck.template_sizes(site, template_sets, node_types)
    return Profile(
        node_types=node_types,
        fields=_fields(top),
        limits=top.table("limits").section(Limits),
        queue=top.table("queue").section(Queue),
        launcher=_launcher(top),
        memory=_memory_policy(top),
        tools=_tools(top),
        recipes=recipes,
        template_sets=template_sets,
        exclusive=_exclusive(top, node_types),
    )


def plain_name(name: str) -> bool:
    """Whether ``name`` can name a file or directory (template dirs, node types, the site)."""
    return bool(_NAME.fullmatch(name)) and ".." not in name


def read_name(r: Reader, key: str, name: str) -> str:
    """A table key or value that names a file or directory: no '/', no '..', no line breaks, no shell syntax."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise r.fail(_shown_key(key), NAME_EXPECTED, name)
    return name


def _shown_key(key: str) -> str:
    """A TOML key as an error message shows it: quoted when it has line breaks or other unprintable characters."""
    return key if key.isprintable() else repr(key)


def read_word(r: Reader, key: str, default: Any = FILLED) -> str:
    value = r.text(key, default)
    if not _WORD.fullmatch(value):
        raise r.fail(key, WORD_EXPECTED, value)
    return value


def read_line(r: Reader, key: str, default: Any = FILLED) -> str:
    """Text shown in a comment line of a generated script: a line break would start shell code."""
    value = r.text(key, default)
    if any(c in value for c in _LINE_BREAKS):
        raise r.fail(key, "one line of text (it is written into a comment of the generated templates)", value)
    return value


def read_directives(r: Reader, key: str, default: str) -> str:
    """sbatch options for one ``#SBATCH`` line, parsed by name as sbatch would: no line breaks, no problems."""
    value = r.text(key, default)
    expected = "sbatch options for one #SBATCH line, such as '--nodes=4 --exclusive'"
    if any(c in value for c in _LINE_BREAKS):
        raise r.fail(key, expected + " (a line break would add lines to the script)", value)
    try:
        words, comment = split_words(value)
    except ScriptError as exc:
        raise r.fail(key, f"{expected} ({exc})", value) from None
    if comment is not None:
        raise r.fail(key, expected + " without '#' (sbatch reads the rest as a comment)", value)
    problems = [p.problem for p in parse_words(words, max_distance=0) if p.problem]
    if problems:
        raise r.fail(key, f"{expected} (sbatch: {problems[0]})", value)
    return value


def check_site(top: Reader, site: Site) -> None:
    """The core values the generated files use (site.py reads them for the submit path, which needs less)."""
    if not _NAME.fullmatch(site.name) or ".." in site.name:
        where = "name" if "name" in top.data else 'name (from the file name; set name = "...")'
        raise top.fail(where, NAME_EXPECTED, site.name)
    scratch = top.table("scratch")
    if not _JOB_DIR.fullmatch(site.scratch.job_dir):
        raise scratch.fail("job_dir", JOB_DIR_EXPECTED, site.scratch.job_dir)
    if not _NAME.fullmatch(site.scratch.gres):
        raise scratch.fail("gres", "a gres name such as lscratch", site.scratch.gres)
    parts = top.table("partitions")
    for name in site.partitions:
        if not _WORD.fullmatch(name) or not name:
            raise parts.fail(name, "a partition name: " + WORD_EXPECTED, name)


def read_memory(r: Reader, key: str, default: Any = FILLED) -> str:
    """A Slurm memory size at ``key`` (``20g``, ``4200m``, ``500``)."""
    value = r.text(key, default)
    if memory_mb(value) is None:
        raise r.fail(key, forms.MEMORY, value)
    return value


def read_mpi(r: Reader, key: str, default: int) -> Mpi:
    """'Number of MPI procs' at ``key``: a number, a list of choices or a "low-high" range."""
    value = r.data.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return Mpi(value)
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return Mpi(value[0], choices=tuple(value))
    if isinstance(value, str) and re.fullmatch(r"\d+-\d+", value):
        low, high = map(int, value.split("-"))
        if 1 <= low <= high:
            return Mpi(low, low=low, high=high)
    raise r.fail(key, 'a number of MPI procs >= 1, a list of choices [4, 8] or a range "128-2048"', value)


def _node_types(top: Reader, partitions: Mapping[str, Partition], safe: Mapping[str, int]) -> dict[str, NodeType]:
    out: dict[str, NodeType] = {}
    table = top.table("node_types")
    for name in table.keys():
        read_name(table, name, name)
        t = table.table(name)
        part = t.key_of("partition", "partitions", sorted(partitions))
        gpu_type = t.text("gpu_type")
        if gpu_type and gpu_type not in safe:
            raise t.fail("gpu_type", "a GPU type with a [gpu_types.<type>] table", gpu_type)
        t.required("cpus", "the number of CPUs Slurm counts on one node")
        t.required("memory", "the node's memory as Slurm sees it (RealMemory), e.g. 240g")
        out[name] = NodeType(
            name=name,
            partition=part,
            cpus=t.integer("cpus", minimum=1),
            memory_mb=memory_mb(read_memory(t, "memory")) or 0,
            constraint=read_word(t, "constraint"),
            gpu_type=gpu_type,
            gpus=t.integer("gpus"),
            safe_threads=safe.get(gpu_type, 0),
            scratch_gb=t.integer("scratch_gb"),
            description=read_line(t, "description"),
        )
    return out


def _fields(top: Reader) -> tuple[GuiField, ...]:
    value = top.data.get("fields", [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise top.fail("fields", "an array of tables ([[fields]] with label, option, default, help)", value)
    out = []
    for number, item in enumerate(value, start=1):
        f = Reader(top.path, item, f"fields[{number}].")
        label = read_line(f, "label")
        if not label.strip():
            raise f.fail("label", "the text RELION shows beside the box (RELION_QSUB_EXTRA" + f"{number})", label)
        option = f.text("option")
        if option and option not in BY_NAME:
            raise f.fail("option", "an sbatch long option name without '--' (time, mem-per-cpu, gres) or none", option)
        default = f.text("default")
        if option in forms.OPTION_FORMS:  # what the box starts with goes into --<option> of every job
            forms.check(f, "default", default, forms.OPTION_FORMS[option])
        out.append(GuiField(number, label, option, default, f.text("help")))
    return tuple(out)


def _launcher(top: Reader) -> Launcher:
    t = top.table("launcher")
    launcher = t.section(Launcher)
    if not re.fullmatch(r"[A-Za-z_]\w*", launcher.variable):
        raise t.fail("variable", "an environment variable name", launcher.variable)
    return launcher


def _memory_policy(top: Reader) -> MemoryPolicy:
    t = top.table("memory")
    for name, *_ in declare.declared(MemoryPolicy):
        read_memory(t, name)
    return t.section(MemoryPolicy)


def _tools(top: Reader) -> dict[str, str]:
    """The tool paths; with ``must_exist`` each must be an executable file on this host (the schema has the keys)."""
    t = top.table("tools")
    tools = {key: t.text(key) for key in t.keys() if key in TOOL_VARIABLES and t.text(key)}
    if t.boolean("must_exist"):
        import os

        for key, path in tools.items():
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                raise t.fail(key, "an executable file (tools.must_exist = true)", path)
    return tools


def _row(r: Reader, defaults: Reader, node_type: str, has_threads: bool) -> Row:
    def text(key: str) -> str:
        return read_word(r, key, read_word(defaults, key, ""))

    if not text("queue"):
        raise r.fail("queue", "the partition ('Queue name'), here or in the recipe's defaults", "")
    threads = r.integer("threads", defaults.integer("threads", 1, minimum=1), minimum=1) if has_threads else None
    memory = text("memory")
    for key, form in (("walltime", "time"), ("memory", "memory")):
        where = r if key in r.data else defaults  # the error names the table the value came from
        forms.check(where, key, text(key), form)
    return Row(
        node_type=node_type,
        mpi=read_mpi(r, "mpi", read_mpi(defaults, "mpi", 1).value) if "mpi" in r.data else read_mpi(defaults, "mpi", 1),
        threads=threads,
        queue=text("queue"),
        walltime=text("walltime"),
        memory=memory,
        gres=text("gres"),
        directives=read_directives(r, "directives", read_directives(defaults, "directives", "")),
    )


def _recipes(top: Reader, node_types: Mapping[str, NodeType]) -> dict[str, Recipe]:
    out: dict[str, Recipe] = {}
    table = top.table("recipes")
    for key in table.keys():
        if any(c in key for c in _LINE_BREAKS):
            raise table.fail(_shown_key(key), "a recipe name on one line", key)
        t = table.table(key)
        defaults, rows_table = t.table("defaults"), t.table("rows")
        has_threads = t.boolean("has_threads")
        rows: dict[str, Row] = {}
        for node in rows_table.keys():
            if node != "any" and node not in node_types:
                raise rows_table.fail(node, f"a node type ({', '.join(node_types)}) or 'any'", node)
            rows[node] = _row(rows_table.table(node), defaults, node, has_threads)
        if not rows:
            raise t.fail("rows", "at least one [recipes.<job>.rows.<node type>] table", {})
        tabs = t.table("tabs")
        out[key] = Recipe(
            key=key,
            title=read_line(t, "title", key),
            relion_job=t.text("relion_job"),
            tabs=tuple((name, tabs.pairs(name)) for name in tabs.keys()),
            rows=rows,
            notes=t.strings("notes"),
            source=read_line(t, "source"),
        )
    return out


def _size(r: Reader, row: Row, name: str) -> Size:
    memory = r.text("memory", row.memory)
    if memory_mb(memory) is None:
        raise r.fail("memory", forms.MEMORY + " (the recipe row gives none)", memory)
    forms.check(r, "walltime", r.text("walltime", row.walltime), "time")
    return Size(
        name=name,
        index=SIZE_NAMES.index(name) + 1,
        mpi=r.integer("mpi", row.mpi.value, minimum=1),
        threads=r.integer("threads", row.threads or 1, minimum=1),
        walltime=read_word(r, "walltime", row.walltime),
        memory=memory,
        gres=read_word(r, "gres", row.gres),
        directives=read_directives(r, "directives", row.directives),
    )


def _template_sets(
    top: Reader, recipes: Mapping[str, Recipe], node_types: Mapping[str, NodeType]
) -> tuple[TemplateSet, ...]:
    out = []
    table = top.table("job_templates")
    for directory in table.keys():
        read_name(table, directory, directory)
        t = table.table(directory)
        recipe_key = t.key_of("recipe", "recipes", list(recipes))
        node = t.key_of("node_type", "node_types", list(node_types))
        recipe = recipes[recipe_key]
        if node not in recipe.rows and "any" not in recipe.rows:
            raise t.fail("node_type", f"a node type recipe {recipe_key!r} has a row for", node)
        sizes_table = t.table("sizes")
        unknown = [n for n in sizes_table.keys() if n not in SIZE_NAMES]
        if unknown:
            raise sizes_table.fail(unknown[0], "a size name: " + ", ".join(SIZE_NAMES), unknown[0])
        row = recipe.row(node)
        sizes = tuple(_size(sizes_table.table(n), row, n) for n in SIZE_NAMES if n in sizes_table.data)
        out.append(TemplateSet(directory, recipe_key, node, sizes))
    return tuple(out)


def _exclusive(top: Reader, node_types: Mapping[str, NodeType]) -> tuple[str, ...]:
    default = tuple(n for n, t in node_types.items() if not t.has_gpus)
    names = top.strings("exclusive_templates", default)
    for name in names:
        if name not in node_types:
            raise top.fail("exclusive_templates", f"node type names ({', '.join(node_types)})", name)
    return names
