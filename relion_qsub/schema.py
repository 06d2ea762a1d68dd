"""The site profile's schema: every section and key, its type, its default and what it means, written once.

``check`` walks a parsed profile: an unknown key or section is a ProfileError naming the file, the key and the
nearest known key (a misspelled ``gpus_per_nod`` would otherwise fall back to its default in silence); a value of the
wrong type is refused; the result is the profile with every default filled in. ``relion_qsub.site`` caches that
result, so the submit path neither imports this module nor repeats a default. ``docs/profile-reference.md`` is
generated from it (``python -m relion_qsub.schema``; tests/test_site_schema.py checks it is up to date).

The semantic checks that need several keys at once (a node type's partition exists, a recipe's queue has the GPUs
its node type needs, template sizes fit their nodes) are in ``relion_qsub.profile`` and ``relion_qsub.crosscheck``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import ProfileError
from .options import nearest

# What the job's directives must fit is read from [partitions.*]; these are the types a key can have.
STRING, INTEGER, NUMBER, BOOLEAN, STRINGS, NUMBERS, MPI = (
    "string",
    "integer",
    "number",
    "boolean",
    "strings",
    "numbers",
    "mpi",
)
_EXPECTED = {
    STRING: "a string",
    INTEGER: "a whole number",
    NUMBER: "a number",
    BOOLEAN: "true or false",
    STRINGS: "a list of strings",
    NUMBERS: "a list of numbers",
    MPI: 'a number, a list of numbers or a range "low-high"',
}
# A key without a default of its own: absent means what its doc says (computed, inherited, or required).
NO_DEFAULT = None

DEFAULT_TRANSIENT = [
    "Socket timed out on send/recv operation",
    "Unable to contact slurm controller",
    "Transport endpoint is not connected",
    "Zero Bytes were transmitted or received",
    "Slurm temporarily unable to accept job",
    "Connection refused",
]

# [tools] key -> the variable RELION reads for the default of that program's "executable" box.
TOOL_VARIABLES = {
    "ctffind": "RELION_CTFFIND_EXECUTABLE",
    "gctf": "RELION_GCTF_EXECUTABLE",
    "motioncor2": "RELION_MOTIONCOR2_EXECUTABLE",
    "resmap": "RELION_RESMAP_EXECUTABLE",
    "topaz": "RELION_TOPAZ_EXECUTABLE",
    "python": "RELION_PYTHON_EXECUTABLE",
}
SIZE_NAMES = ("tiny", "small", "medium", "large", "xlarge")


class Key:
    """One key: its type, its default (filled in when absent unless ``fill`` is off), what it means."""

    __slots__ = ("default", "doc", "fill", "kind", "required")

    def __init__(self, kind: str, default: Any, doc: str, fill: bool = True, required: bool = False) -> None:
        self.kind, self.default, self.doc, self.fill, self.required = kind, default, doc, fill, required


class Table:
    """A table of known keys, or (``each``) a table of named entries that all follow one table's schema, or
    (``free``) a table of free text keys with values of one kind."""

    __slots__ = ("doc", "each", "free", "keys", "names")

    def __init__(
        self,
        doc: str,
        keys: Mapping[str, Key | Table | Array] | None = None,
        each: Table | None = None,
        free: str = "",
        names: tuple[str, ...] = (),
    ) -> None:
        self.doc, self.keys, self.each, self.free, self.names = doc, dict(keys or {}), each, free, names


class Array:
    """An array of tables (``[[fields]]``)."""

    __slots__ = ("doc", "item")

    def __init__(self, doc: str, item: Table) -> None:
        self.doc, self.item = doc, item


Node = Key | Table | Array


def _row_keys(where: str) -> dict[str, Node]:
    inherit = f"; absent: {where}"
    return {
        "mpi": Key(MPI, NO_DEFAULT, "Number of MPI procs: a number, a list of choices [4, 8] or a range" + inherit),
        "threads": Key(INTEGER, NO_DEFAULT, "Number of threads" + inherit, fill=False),
        "queue": Key(STRING, NO_DEFAULT, "Queue name: a [partitions] entry" + inherit, fill=False),
        "walltime": Key(STRING, NO_DEFAULT, "the Walltime box (Slurm --time)" + inherit, fill=False),
        "memory": Key(STRING, NO_DEFAULT, "the Memory Per Thread box (Slurm --mem-per-cpu)" + inherit, fill=False),
        "gres": Key(STRING, NO_DEFAULT, "the Gres box (Slurm --gres)" + inherit, fill=False),
        "directives": Key(STRING, NO_DEFAULT, "the SBATCH Directives box (sbatch options)" + inherit, fill=False),
    }


def _size_keys() -> dict[str, Node]:
    keys = _row_keys("the recipe row's value")
    keys["mpi"] = Key(INTEGER, NO_DEFAULT, "MPI procs of this size; absent: the row's (first) value", fill=False)
    return keys


def _policy() -> Table:
    # The checks' keys are declared by relion_qsub.checks.registry, which validates them (and documents them in
    # the reference): the profile keeps this table raw, as free text values.
    keys: dict[str, Node] = {
        "typo_distance": Key(INTEGER, 2, "how many typed characters an sbatch option may be off and still be read")
    }
    return Table(
        "What each check does when it fires: error (refuse), warn, fix (repair and say so) or off.", keys, free=STRING
    )


def _scratch() -> Node:
    return Table(
        "Node-local scratch, allocated as a count-only gres in GB.",
        {
            "gres": Key(STRING, "lscratch", "the gres name"),
            "root": Key(STRING, "/lscratch", "where the scratch file system is mounted on a node"),
            "job_dir": Key(STRING, "/lscratch/$SLURM_JOB_ID", "the job's own scratch directory"),
            "min_gb": Key(INTEGER, 5, "the least scratch a job may allocate (GB); added when missing"),
            "monitor_interval": Key(
                INTEGER, 0, "seconds between scratch-use samples in generated templates (0: no monitor)"
            ),
        },
    )


def _gpu_types() -> Node:
    return Table(
        "GPU types by their gres type name (gpu:<type>:N).",
        each=Table(
            "One GPU type.",
            {
                "safe_threads": Key(INTEGER, 1, "threads per GPU before the node hangs (Number of threads)"),
                "memory": Key(
                    STRING,
                    "",
                    "memory of one GPU (e.g. 16g): the largest box an auto-refine fits (check gpu_box); empty: unknown",
                ),
            },
        ),
    )


def _partitions() -> Node:
    return Table(
        "Slurm partitions (Queue name) and what their nodes have; `relion-qsub site init` writes them from "
        "scontrol/sinfo. A 0 or empty value means unknown: that check is not made.",
        each=Table(
            "One partition.",
            {
                "default": Key(BOOLEAN, False, "Slurm's default partition (Default=YES): jobs without -p"),
                "gpu_types": Key(STRINGS, [], "the GPU types of its nodes ([gpu_types] entries)"),
                "gpus_per_node": Key(INTEGER, 0, "GPUs on its largest node"),
                "max_time": Key(STRING, "", "MaxTime as Slurm writes it (10-00:00:00); empty: UNLIMITED"),
                "max_nodes": Key(INTEGER, 0, "MaxNodes per job (0: unlimited)"),
                "nodes": Key(INTEGER, 0, "how many nodes it has (0: unknown)"),
                "cpus": Key(INTEGER, 0, "CPUs on its largest node (Slurm CPUs)"),
                "memory": Key(STRING, "", "memory of its largest node (RealMemory, e.g. 240g or 64000 MB)"),
                "scratch_gb": Key(INTEGER, 0, "scratch gres (GB) on its largest node"),
                "features": Key(STRINGS, [], "node features (--constraint names) of its nodes"),
            },
        ),
    )


def _site_options() -> Node:
    return Table(
        "The site's plugin (SPANK) options sbatch accepts (gpu_cmode = \"required\"): the name after '--' and "
        "its argument: none, required or optional. Passed through as sbatch parses them, never typo-repaired.",
        free=STRING,
    )


def _submit() -> Node:
    return Table(
        "How sbatch is run and retried.",
        {
            "sbatch": Key(STRING, "sbatch", "the sbatch command"),
            "squeue": Key(STRING, "squeue", "the squeue command (asked before any retry)"),
            "scancel": Key(STRING, "scancel", "the scancel command (cancels a twin job after a retry)"),
            "timeout": Key(NUMBER, 60.0, "seconds one sbatch or squeue call may take"),
            "attempts": Key(INTEGER, 4, "sbatch attempts on a transient failure"),
            "backoff": Key(NUMBERS, [2.0, 5.0, 15.0], "seconds between attempts"),
            "transient": Key(STRINGS, DEFAULT_TRANSIENT, "sbatch messages that are worth a retry"),
            "settle": Key(NUMBER, 3.0, "seconds between the two squeue answers that must agree 'no job'"),
            "scontrol": Key(STRING, "scontrol", "the scontrol command (releases the held job once its id is known)"),
            "requeue": Key(
                BOOLEAN,
                False,
                "let Slurm requeue a job (false: --no-requeue, so a job RELION was told failed never reruns)",
            ),
            "watch": Key(
                BOOLEAN, True, "submit the small end-watcher job that tells RELION when Slurm ends a job early"
            ),
            "watch_options": Key(STRINGS, [], "extra sbatch options for the watcher job (e.g. a quick partition)"),
        },
    )


def _node_types() -> Node:
    return Table(
        "Kinds of nodes a job can ask for (templates and recommendations).",
        each=Table(
            "One node type.",
            {
                "partition": Key(STRING, NO_DEFAULT, "its partition", required=True),
                "cpus": Key(INTEGER, NO_DEFAULT, "Slurm CPUs of one node", required=True),
                "memory": Key(STRING, NO_DEFAULT, "memory of one node as Slurm sees it (RealMemory)", required=True),
                "constraint": Key(STRING, "", "the --constraint that selects it"),
                "gpu_type": Key(STRING, "", "its GPU type ([gpu_types] entry)"),
                "gpus": Key(INTEGER, 0, "GPUs per node"),
                "scratch_gb": Key(INTEGER, 0, "scratch gres per node (GB)"),
                "description": Key(STRING, "", "one line for the generated README"),
            },
        ),
    )


def _fields() -> Node:
    return Array(
        "RELION's extra Running-tab boxes, in order: [[fields]] number N is RELION_QSUB_EXTRAn.",
        Table(
            "One box.",
            {
                "label": Key(STRING, NO_DEFAULT, "the text RELION shows beside the box", required=True),
                "option": Key(
                    STRING,
                    "",
                    "the sbatch option it fills (time, mem-per-cpu, gres); empty: a bare '#SBATCH <text>' box",
                ),
                "default": Key(STRING, "", "RELION_QSUB_EXTRAn_DEFAULT"),
                "help": Key(STRING, "", "RELION_QSUB_EXTRAn_HELP"),
            },
        ),
    )


def _limits() -> Node:
    return Table(
        "Running-tab defaults and limits RELION reads from the environment.",
        {
            "nr_mpi": Key(INTEGER, 1, "RELION_QSUB_NRMPI: default Number of MPI procs (<= 127)"),
            "nr_threads": Key(INTEGER, 1, "RELION_QSUB_NRTHREADS: default Number of threads (<= 127)"),
            "mpi_max": Key(INTEGER, 64, "RELION_MPI_MAX: the MPI slider's maximum"),
            "thread_max": Key(INTEGER, 16, "RELION_THREAD_MAX: the threads slider's maximum"),
            "minimum_dedicated": Key(INTEGER, 1, "RELION_MINIMUM_DEDICATED"),
            "allow_change_dedicated": Key(BOOLEAN, False, "RELION_ALLOW_CHANGE_MINIMUM_DEDICATED"),
            "error_local_mpi": Key(INTEGER, 32, "RELION_ERROR_LOCAL_MPI: most MPI procs of a local run"),
            "mpirun": Key(STRING, "mpirun", "RELION_MPIRUN (local runs only)"),
        },
    )


def _queue() -> Node:
    return Table(
        "RELION's queue boxes.",
        {
            "use": Key(STRING, "yes", "RELION_QUEUE_USE: yes, no, true or false"),
            "name": Key(STRING, "", "RELION_QUEUE_NAME: the default Queue name"),
            "command": Key(STRING, "relion-qsub", "RELION_QSUB_COMMAND: the Queue submit command"),
        },
    )


def _launcher() -> Node:
    return Table(
        "How templates start RELION's command.",
        {
            "variable": Key(STRING, "RELION_STD_LAUNCHER", "the variable on the template's launcher line"),
            "command": Key(STRING, "relion-launch", "the module's value of that variable"),
            "memory_option": Key(BOOLEAN, False, "repeat Memory Per Thread on the launcher line"),
        },
    )


def _memory() -> Node:
    return Table(
        "Memory Per Thread values with a meaning.",
        {
            "whole_node": Key(STRING, "0", "the value that means all of the node (with --exclusive)"),
            "default": Key(STRING, "4g", "the default Memory Per Thread"),
        },
    )


def _tools() -> Node:
    return Table(
        "Paths of external programs: the defaults of RELION's 'executable' boxes.",
        {
            **{name: Key(STRING, "", variable, fill=False) for name, variable in TOOL_VARIABLES.items()},
            "must_exist": Key(
                BOOLEAN, False, "every path above must be an executable file (site validate, templates build)"
            ),
        },
    )


def _recipes() -> Node:
    return Table(
        "Recommended parameters per job type (relion-qsub recommend, templates build).",
        each=Table(
            "One recipe.",
            {
                "title": Key(STRING, NO_DEFAULT, "its title (absent: the recipe's key)"),
                "relion_job": Key(STRING, "", "RELION's job type (Class2D, MotionCorr ...)"),
                "has_threads": Key(BOOLEAN, True, "the job type has a Number of threads box"),
                "notes": Key(STRINGS, [], "lines shown by relion-qsub recommend"),
                "source": Key(STRING, "", "where the values come from"),
                "tabs": Table(
                    "GUI values on other tabs: [recipes.<key>.tabs.<tab>] with label = value.",
                    each=Table("One tab.", free=STRING),
                ),
                "defaults": Table(
                    "Running-tab values every row inherits.", _row_keys("1 thread, 1 MPI proc, or empty")
                ),
                "rows": Table(
                    "Running-tab values per node type ([node_types] entry or 'any').",
                    each=Table("One row.", _row_keys("the recipe's [defaults]")),
                ),
            },
        ),
    )


def _job_templates() -> Node:
    return Table(
        "Fully filled templates: a directory per job type, one file per size.",
        each=Table(
            "One template directory.",
            {
                "recipe": Key(STRING, NO_DEFAULT, "its [recipes] entry", required=True),
                "node_type": Key(STRING, NO_DEFAULT, "its [node_types] entry", required=True),
                "sizes": Table(
                    "The sizes to write (01_tiny.sh ... 05_xlarge.sh).",
                    each=Table("One size.", _size_keys()),
                    names=SIZE_NAMES,
                ),
            },
        ),
    )


def profile_schema() -> Table:
    """The whole profile."""
    return Table(
        "A site profile (TOML).",
        {
            "name": Key(STRING, NO_DEFAULT, "the site's name (absent: the file name without .toml)"),
            "launchers": Key(
                STRINGS,
                ["RELION_STD_LAUNCHER", "relion-launch"],
                "words that mark a template line as the MPI launcher line",
            ),
            "exclusive_templates": Key(
                STRINGS, NO_DEFAULT, "node types that get a whole-node template (absent: the node types without GPUs)"
            ),
            "scratch": _scratch(),
            "gpu_types": _gpu_types(),
            "partitions": _partitions(),
            "policy": _policy(),
            "site_options": _site_options(),
            "submit": _submit(),
            "node_types": _node_types(),
            "fields": _fields(),
            "limits": _limits(),
            "queue": _queue(),
            "launcher": _launcher(),
            "memory": _memory(),
            "tools": _tools(),
            "recipes": _recipes(),
            "job_templates": _job_templates(),
        },
    )


# ---------------------------------------------------------------------------------------------- checking


def _type_ok(kind: str, value: object) -> bool:
    if kind == STRING:
        return isinstance(value, str)
    if kind == BOOLEAN:
        return isinstance(value, bool)
    if kind == INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == STRINGS:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == NUMBERS:
        return isinstance(value, list) and all(_type_ok(NUMBER, v) for v in value)
    return isinstance(value, int | str | list) and not isinstance(value, bool)  # MPI: profile.read_mpi says more


def _unknown(path: str, where: str, key: str, known: Iterable[str], section: bool) -> ProfileError:
    names = sorted(known)
    close = [name for d, name in nearest(key, 1, names) if d <= max(2, len(key) // 3)]
    what = "section" if section else "key"
    hint = f"did you mean {where}{close[0]}?" if close else f"known: {', '.join(names)}"
    return ProfileError(f"{path}: {where}{key}: unknown {what}; {hint}")


def _check_table(path: str, spec: Table, data: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if spec.free and key not in spec.keys:
            if not _type_ok(spec.free, value):
                raise ProfileError(f"{path}: {where}{key}: expected {_EXPECTED[spec.free]}, got {value!r}")
            out[key] = value
        elif spec.each is not None:
            if spec.names and key not in spec.names:
                raise _unknown(path, where, key, spec.names, True)
            out[key] = _check_node(path, spec.each, value, f"{where}{key}")
        elif key in spec.keys:
            out[key] = _check_node(path, spec.keys[key], value, f"{where}{key}")
        else:
            raise _unknown(path, where, key, spec.keys, isinstance(value, dict))
    for key, node in spec.keys.items():
        if key in out:
            continue
        if isinstance(node, Key):
            # A required key that is missing is reported by relion_qsub.profile, after the entry's name is checked.
            if node.fill and node.default is not NO_DEFAULT:
                out[key] = list(node.default) if isinstance(node.default, list) else node.default
        elif isinstance(node, Table) and node.each is None and (node.keys or not node.free):
            out[key] = _check_table(path, node, {}, f"{where}{key}.")
    return out


def _check_node(path: str, node: Node, value: Any, where: str) -> Any:
    if isinstance(node, Key):
        if not _type_ok(node.kind, value):
            raise ProfileError(f"{path}: {where}: expected {_EXPECTED[node.kind]}, got {value!r}")
        return value
    if isinstance(node, Array):
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ProfileError(f"{path}: {where}: expected an array of tables ([[{where}]]), got {value!r}")
        return [_check_table(path, node.item, item, f"{where}[{n}].") for n, item in enumerate(value, start=1)]
    if not isinstance(value, dict):
        raise ProfileError(f"{path}: {where}: expected a table, got {value!r}")
    return _check_table(path, node, value, f"{where}.")


def check(data: Mapping[str, Any], path: str) -> dict[str, Any]:
    """``data`` (a parsed profile) checked against the schema, with every default filled in."""
    return _check_table(path, profile_schema(), data, "")


def default(section: str, key: str) -> Any:
    """The default of ``[section] key`` (for the classes that hold it; the schema is where it is written)."""
    node = profile_schema().keys[section]
    assert isinstance(node, Table)
    leaf = node.keys[key]
    assert isinstance(leaf, Key)
    return tuple(leaf.default) if isinstance(leaf.default, list) else leaf.default


# ---------------------------------------------------------------------------------------------- reference


def _shown(value: Any) -> str:
    if value is NO_DEFAULT:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, list):
        return "`[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in value) + "]`"
    return f"`{value}`"


def _reference_rows(node: Node, where: str, rows: list[str], free_rows: Mapping[str, Sequence[str]]) -> None:
    if isinstance(node, Key):
        kind = node.kind + (" (required)" if node.required else "")
        rows.append(f"| `{where}` | {kind} | {_shown(node.default)} | {node.doc} |")
        return
    if isinstance(node, Array):
        rows.append(f"| `[[{where}]]` | array of tables | | {node.doc} |")
        _reference_rows(node.item, where, rows, free_rows)
        return
    if where:
        rows.append(f"| `[{where}]` | table | | {node.doc} |")
    if node.free and where in free_rows:
        rows.extend(free_rows[where])  # keys another part declares (the checks' [policy] keys)
    elif node.free:
        rows.append(f"| `{where}.<label>` | {node.free} | | a free label = value |")
    if node.each is not None:
        name = "<size>" if node.names else "<name>"
        if node.names:
            rows.append(f"| `{where}.{name}` | table | | one of {', '.join(node.names)} |")
        _reference_rows(node.each, f"{where}.{name}", rows, free_rows)
    for key, child in node.keys.items():
        _reference_rows(child, f"{where}.{key}" if where else key, rows, free_rows)


def reference(free_rows: Mapping[str, Sequence[str]]) -> str:
    """docs/profile-reference.md: every key with its type, default and meaning. ``free_rows``: the rows of an open
    table's keys that another part declares (``policy``: relion_qsub.checks.registry.reference_rows)."""
    rows: list[str] = []
    _reference_rows(profile_schema(), "", rows, free_rows)
    return "\n".join(
        [
            "# Site profile reference",
            "",
            "Generated from `relion_qsub/schema.py` (the `policy.*` checks: `relion_qsub/checks/registry.py`) by",
            "`relion-qsub site reference > docs/profile-reference.md`; do not edit. A key or section not listed here",
            "is an error naming the nearest known key. `—`: no default of its own (the meaning says what absent",
            "means). Examples: `relion_qsub/profiles/*.toml`; a starting profile for a live cluster:",
            "`relion-qsub site init`; check one: `relion-qsub site validate [--live]`.",
            "",
            "| key | type | default | meaning |",
            "| --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )
