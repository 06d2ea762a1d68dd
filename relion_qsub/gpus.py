"""GPUs a job asks for per node through --gpus-per-node, --gpus or --gpus-per-task (the --gres gpu form is in rules).

Every GPU rule counts these as it counts ``--gres=gpu:TYPE:N`` (issue 14: ``--gpus=2`` used to be invisible to the
threads-per-GPU and tasks-per-GPU rules). Import-light: only the submit path's own helpers.
"""

from __future__ import annotations

from collections.abc import Callable

# sbatch: --gpus=[type:]number, --gpus-per-node=[type:]number, --gpus-per-task=[type:]number; a comma list of such.
OPTIONS = ("gpus-per-node", "gpus", "gpus-per-task")


def _count(text: str) -> int | None:
    digits = ""
    for ch in text.strip():
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else None


def split(value: str) -> tuple[str | None, int | None]:
    """``v100:2`` -> ("v100", 2); ``2`` -> (None, 2); the first entry of a comma list."""
    first = value.split(",")[0]
    kind, _, count = first.rpartition(":")
    return (kind.split(":")[-1] or None) if kind else None, _count(count)


def tasks_per_node(get: Callable[[str], str | None]) -> int | None:
    """Tasks on the busiest node, when the directives fix it (--ntasks-per-node, or --ntasks on one node)."""
    per_node = _count(get("ntasks-per-node") or "")
    nodes = _count(get("nodes") or "")
    ntasks = _count(get("ntasks") or "")
    if per_node is not None:
        return per_node
    if ntasks is not None and nodes:
        return -(-ntasks // nodes)
    return None


def per_node(get: Callable[[str], str | None]) -> tuple[str | None, int, str] | None:
    """(type, GPUs per node, the option as written) from the --gpus* options, or None when there are none."""
    nodes = _count(get("nodes") or "") or 1
    for name in OPTIONS:
        value = get(name)
        if not value:
            continue
        kind, count = split(value)
        if count is None:
            continue
        if name == "gpus":
            count = -(-count // nodes)
        elif name == "gpus-per-task":
            count *= tasks_per_node(get) or 1
        return kind, count, f"gpu:{kind + ':' if kind else ''}{count} (from --{name}={value})"
    return None
