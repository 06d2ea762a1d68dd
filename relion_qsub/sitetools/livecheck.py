"""`site validate --live`: the profile's names and limits against what Slurm says now (issue 22).

A partition the cluster does not have, a feature no node of the partition has, a GPU type, a MaxTime, a CPU count
or a memory size that differs from Slurm's: the rules of the submit path trust these values (walltime over MaxTime,
--constraint no node has, more CPUs or memory than a node has), so a wrong one refuses good jobs or lets bad ones
pend for ever. One line per finding, naming the file, the key, the profile's value and Slurm's.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import profile
from ..units import memory_mb, minutes
from . import cluster


def _partition(
    site: profile.Site, part: profile.Partition, slurm: cluster.Partition, nodes: Sequence[cluster.Node]
) -> list[str]:
    key = f"{site.path}: partitions.{part.name}"
    members = [n for n in nodes if part.name in n.partitions]
    out = []
    features = sorted({f for n in members for f in n.features})
    for feature in part.features:
        if feature not in features:
            out.append(
                f"{key}.features: {feature!r} is on no node of the partition (Slurm: {', '.join(features) or 'none'})"
            )
    gpu_types = sorted({n.gpus()[0] for n in members if n.gpus()[0]})
    for gpu in part.gpu_types:
        if gpu not in gpu_types:
            out.append(
                f"{key}.gpu_types: {gpu!r} is on no node of the partition (Slurm: {', '.join(gpu_types) or 'none'})"
            )
    if part.max_time and minutes(part.max_time) != minutes(slurm.max_time or "UNLIMITED"):
        out.append(f"{key}.max_time: {part.max_time!r} but Slurm's MaxTime is {slurm.max_time or 'UNLIMITED'!r}")
    if members and part.cpus > max(n.cpus for n in members):
        out.append(f"{key}.cpus: {part.cpus} but its largest node has {max(n.cpus for n in members)} (Slurm)")
    biggest = max((n.memory_mb for n in members), default=0)
    if members and part.memory and (memory_mb(part.memory) or 0) > biggest:
        out.append(f"{key}.memory: {part.memory!r} but its largest node has {biggest} MB (Slurm RealMemory)")
    return out


def _node_types(site: profile.Site, nodes: Sequence[cluster.Node]) -> list[str]:
    out = []
    for name, node in site.profile.node_types.items():
        key = f"{site.path}: node_types.{name}"
        members = [n for n in nodes if node.partition in n.partitions]
        features = ", ".join(sorted({f for n in members for f in n.features})) or "none"
        where = f"is on no node of partition {node.partition}"
        if node.constraint and node.constraint not in features.split(", "):
            out.append(f"{key}.constraint: {node.constraint!r} {where} (Slurm: {features})")
        gpu_types = ", ".join(sorted({n.gpus()[0] for n in members if n.gpus()[0]})) or "none"
        if node.gpu_type and node.gpu_type not in gpu_types.split(", "):
            out.append(f"{key}.gpu_type: {node.gpu_type!r} {where} (Slurm: {gpu_types})")
    return out


def compare(site: profile.Site, parts: Sequence[cluster.Partition], nodes: Sequence[cluster.Node]) -> list[str]:
    """One line per profile value Slurm contradicts (empty: none)."""
    slurm = {p.name: p for p in parts}
    out = []
    for name, part in site.partitions.items():
        if name not in slurm:
            out.append(f"{site.path}: partitions.{name}: no such partition (Slurm has: {', '.join(slurm)})")
        else:
            out += _partition(site, part, slurm[name], nodes)
    return out + _node_types(site, nodes)
