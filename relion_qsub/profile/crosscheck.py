"""Checks across sections of a profile: what one key says must agree with another (issue 14).

A recipe whose queue has no GPUs of its node type's kind, or a template size that asks a node for more CPUs,
memory, scratch or GPUs than its node type has, would build templates that relion-qsub itself (or sbatch) then
refuses. Each finding is a ProfileError naming the file, the key and the value that fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .. import gpus
from ..errors import ProfileError
from ..script import split_words
from ..slurm.options import parse_words
from ..units import memory_mb

if TYPE_CHECKING:
    from .recipes import NodeType, Recipe, Row, Size, TemplateSet
    from .site import Site


def _fail(site: Site, key: str, message: str) -> ProfileError:
    return ProfileError(f"{site.path}: {key}: {message}")


def partitions(site: Site) -> None:
    defaults = [p.name for p in site.partitions.values() if p.default]
    if len(defaults) > 1:
        raise _fail(
            site, f"partitions.{defaults[1]}.default", f"only one partition can be Slurm's default ({defaults[0]} is)"
        )


def _row_queue(site: Site, key: str, row: Row, node: NodeType | None) -> None:
    part = site.partitions.get(row.queue)
    if site.partitions and part is None:
        raise _fail(site, f"{key}.queue", f"{row.queue!r} is not a [partitions] entry ({', '.join(site.partitions)})")
    if part is None or node is None or not node.gpu_type:
        return
    if node.gpu_type not in part.gpu_types:
        fits = [p.name for p in site.partitions.values() if node.gpu_type in p.gpu_types]
        raise _fail(
            site,
            f"{key}.queue",
            f"partition {row.queue!r} has no {node.gpu_type} GPUs, which node type {node.name!r} needs: use "
            f"{' or '.join(fits) or 'a partition with them'}",
        )


def recipes(site: Site, recipes: Mapping[str, Recipe], node_types: Mapping[str, NodeType]) -> None:
    for name, recipe in recipes.items():
        for node_name, row in recipe.rows.items():
            _row_queue(site, f"recipes.{name}.rows.{node_name}", row, node_types.get(node_name))


def _options(size: Size) -> dict[str, str | None]:
    words, _ = split_words(size.directives)
    found: dict[str, str | None] = {"ntasks": str(size.mpi), "cpus-per-task": str(size.threads)}
    for parsed in parse_words(words, max_distance=0):
        if parsed.name is not None:
            found[parsed.name] = parsed.value
    if size.gres:
        found["gres"] = size.gres
    if size.memory:
        found["mem-per-cpu"] = size.memory
    return found


def _size_problem(size: Size, node: NodeType, scratch_gres: str) -> str | None:
    opts = _options(size)
    tasks = gpus.tasks_per_node(opts.get)
    cpus = (tasks or 1) * size.threads
    if cpus > node.cpus:
        tasks_text = f"{tasks or 1} tasks x {size.threads} threads"
        return f"{tasks_text} = {cpus} CPUs per node, but a {node.name} node has {node.cpus}"
    per_cpu = memory_mb(size.memory) if size.memory else None
    if per_cpu and per_cpu * cpus > node.memory_mb:
        return f"{size.memory} x {cpus} CPUs is more than the {node.memory_mb} MB of a {node.name} node"
    for item in (size.gres or "").split(","):
        parts = item.split(":")
        count = int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else None
        if parts[0] == scratch_gres and count and node.scratch_gb and count > node.scratch_gb:
            return f"{item} is more than the {scratch_gres}:{node.scratch_gb} of a {node.name} node"
        if parts[0] == "gpu" and count and count > node.gpus:
            return f"{item} is more than the {node.gpus} GPUs of a {node.name} node"
        if parts[0] == "gpu" and len(parts) == 3 and parts[1] != node.gpu_type:
            return f"{item} asks for {parts[1]} GPUs but a {node.name} node has {node.gpu_type or 'none'}"
    return None


def template_sizes(site: Site, sets: tuple[TemplateSet, ...], node_types: Mapping[str, NodeType]) -> None:
    for ts in sets:
        node = node_types[ts.node_type]
        for size in ts.sizes:
            problem = _size_problem(size, node, site.scratch.gres)
            if problem:
                raise _fail(site, f"job_templates.{ts.directory}.sizes.{size.name}", problem)
