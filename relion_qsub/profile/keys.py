"""Every section and key of a site profile, declared once, and what comes from the declarations.

``check`` walks a parsed profile: an unknown key or section is a ProfileError naming the file, the key and the
nearest known key (a misspelled ``gpus_per_nod`` would otherwise fall back to its default in silence); a value of the
wrong type is refused; the result is the profile with every default filled in, which ``relion_qsub.profile.files``
caches, so the submit path neither imports this module nor repeats a default. ``reference`` writes
docs/profile-reference.md (``relion-qsub site reference``; tests/test_site_schema.py checks it is up to date).

The sections read into one typed object each are declared by that object's dataclass (``declare.key`` fields in
``site`` and ``recipes``); the others are declared here. The checks that need several keys at once (a node type's
partition exists, a recipe's queue has the GPUs its node type needs, template sizes fit their nodes) are in
``relion_qsub.profile.recipes`` and ``relion_qsub.profile.crosscheck``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProfileError
from .declare import NO_DEFAULT, Kind, declared
from .reader import unknown_key
from .recipes import SIZE_NAMES, TOOL_VARIABLES, Launcher, Limits, MemoryPolicy, Queue
from .site import SITE_OPTION_ARGUMENTS, GpuType, Partition, Placeholder, Scratch, Submit


@dataclass(frozen=True, slots=True)
class Key:
    """One key: its type, its default (filled in when absent unless ``fill`` is off), what it means, and the
    choices its value must be one of (the ranges of the typed sections' keys are checked when they are read)."""

    kind: Kind
    default: Any
    doc: str
    fill: bool = True
    required: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Table:
    """A table of known keys, or (``each``) a table of named entries that all follow one table's schema; ``free``:
    any other key is a free label (``label`` in the reference) whose value follows that key's declaration."""

    doc: str
    keys: dict[str, Key | Table | Array] = field(default_factory=dict)
    each: Table | None = None
    free: Key | None = None
    names: tuple[str, ...] = ()
    label: str = "<label>"


@dataclass(frozen=True, slots=True)
class Array:
    """An array of tables (``[[fields]]``)."""

    doc: str
    item: Table


Node = Key | Table | Array


def section(cls: type, doc: str) -> Table:
    """The table a typed section's dataclass declares (relion_qsub.profile.declare)."""
    keys: dict[str, Node] = {}
    for name, kind, default, limits in declared(cls):
        shown = list(default) if isinstance(default, tuple) else default  # as TOML gives it: a list
        keys[name] = Key(kind, shown, limits["doc"], choices=limits.get("choices", ()))
    return Table(doc, keys)


STRING, INTEGER, NUMBER, BOOLEAN, STRINGS, MPI = (
    Kind.STRING,
    Kind.INTEGER,
    Kind.NUMBER,
    Kind.BOOLEAN,
    Kind.STRINGS,
    Kind.MPI,
)


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


def _policy() -> Node:
    # The checks' keys and actions are declared by relion_qsub.checks.registry, which validates them (and gives
    # the reference their rows): the profile keeps this table raw, as free text values.
    return Table(
        "What each check does when it fires: error (refuse), warn, fix (repair and say so) or off.",
        {"typo_distance": Key(INTEGER, 2, "how many typed characters an sbatch option may be off and still be read")},
        free=Key(STRING, NO_DEFAULT, "a check's action (relion_qsub/checks/registry.py declares the checks)"),
        label="<check>",
    )


def _gpu_types() -> Node:
    return Table("GPU types by their gres type name (gpu:<type>:N).", each=section(GpuType, "One GPU type."))


def _partitions() -> Node:
    return Table(
        "Slurm partitions (Queue name) and what their nodes have; `relion-qsub site init` writes them from "
        "scontrol/sinfo. A 0 or empty value means unknown: that check is not made.",
        each=section(Partition, "One partition."),
    )


def _site_options() -> Node:
    return Table(
        "The site's plugin (SPANK) options sbatch accepts (gpu_cmode = \"required\"): the name after '--' and "
        "its argument: none, required or optional. Passed through as sbatch parses them, never typo-repaired.",
        free=Key(
            STRING, NO_DEFAULT, "its argument: " + ", ".join(SITE_OPTION_ARGUMENTS), choices=SITE_OPTION_ARGUMENTS
        ),
        label="<option>",
    )


def _placeholders() -> Node:
    return Table(
        "Placeholders of templates written for a patched RELION (EasyBuild's XXXqosXXX, XXXaccountXXX, "
        "XXXtimelimitXXX, XXXgpuspecXXX, XXXextrasbatchXXX; VBC's XXXjobtypeXXX), which stock RELION leaves in the "
        "script: [placeholders.qos] declares how relion-qsub fills XXXqosXXX in the normalised script (RELION's own "
        "script is not changed). An undeclared one stays a warning (policy unfilled_placeholder).",
        each=section(Placeholder, "One placeholder, by its name between XXX and XXX."),
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
    return section(Limits, "Running-tab defaults and limits RELION reads from the environment.")


def _queue() -> Node:
    return section(Queue, "RELION's queue boxes.")


def _launcher() -> Node:
    return section(Launcher, "How templates start RELION's command.")


def _memory() -> Node:
    return section(MemoryPolicy, "Memory Per Thread values with a meaning.")


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
                    each=Table("One tab.", free=Key(STRING, NO_DEFAULT, "a free label = value")),
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
            "scratch": section(Scratch, "Node-local scratch, allocated as a count-only gres in GB."),
            "gpu_types": _gpu_types(),
            "partitions": _partitions(),
            "policy": _policy(),
            "site_options": _site_options(),
            "placeholders": _placeholders(),
            "submit": section(Submit, "How sbatch is run and retried."),
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


def _type_ok(kind: Kind, value: object) -> bool:
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
    if kind == Kind.NUMBERS:
        return isinstance(value, list) and all(_type_ok(NUMBER, v) for v in value)
    return isinstance(value, int | str | list) and not isinstance(value, bool)  # MPI: profile.read_mpi says more


def _check_table(path: str, spec: Table, data: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in spec.keys:
            out[key] = _check_node(path, spec.keys[key], value, f"{where}{key}")
        elif spec.free is not None:
            out[key] = _check_node(path, spec.free, value, f"{where}{key}")
        elif spec.each is not None:
            if spec.names and key not in spec.names:
                raise unknown_key(path, where, key, spec.names, True)
            out[key] = _check_node(path, spec.each, value, f"{where}{key}")
        else:
            raise unknown_key(path, where, key, spec.keys, isinstance(value, dict))
    for key, node in spec.keys.items():
        if key in out:
            continue
        if isinstance(node, Key):
            # A required key that is missing is reported by relion_qsub.profile.recipes, after the entry's name is
            # checked.
            if node.fill and node.default is not NO_DEFAULT:
                out[key] = list(node.default) if isinstance(node.default, list) else node.default
        elif isinstance(node, Table) and node.each is None:
            out[key] = _check_table(path, node, {}, f"{where}{key}.")
    return out


def _check_node(path: str, node: Node, value: Any, where: str) -> Any:
    if isinstance(node, Key):
        if not _type_ok(node.kind, value):
            raise ProfileError(f"{path}: {where}: expected {node.kind.value}, got {value!r}")
        if node.choices and value not in node.choices:
            raise ProfileError(f"{path}: {where}: expected one of {', '.join(node.choices)}, got {value!r}")
        return value
    if isinstance(node, Array):
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ProfileError(f"{path}: {where}: expected an array of tables ([[{where}]]), got {value!r}")
        return [_check_table(path, node.item, item, f"{where}[{n}].") for n, item in enumerate(value, start=1)]
    if not isinstance(value, dict):
        raise ProfileError(f"{path}: {where}: expected a table, got {value!r}")
    return _check_table(path, node, value, f"{where}.")


def check(data: Mapping[str, Any], path: str) -> dict[str, Any]:
    """``data`` (a parsed profile) checked against the declarations, with every default filled in."""
    return _check_table(path, profile_schema(), data, "")


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
        kind = node.kind.word + (" (required)" if node.required else "")
        rows.append(f"| `{where}` | {kind} | {_shown(node.default)} | {node.doc} |")
        return
    if isinstance(node, Array):
        rows.append(f"| `[[{where}]]` | array of tables | | {node.doc} |")
        _reference_rows(node.item, where, rows, free_rows)
        return
    if where:
        rows.append(f"| `[{where}]` | table | | {node.doc} |")
    if node.free is not None and where in free_rows:
        rows.extend(free_rows[where])  # keys another part declares (the checks' [policy] keys)
    elif node.free is not None:
        rows.append(f"| `{where}.{node.label}` | {node.free.kind.word} | | {node.free.doc} |")
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
            "Generated from the declarations in `relion_qsub/profile/` (`declare.key` fields of the typed sections,",
            "the rest in `keys.py`; the `policy.*` checks: `relion_qsub/checks/registry.py`) by",
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
