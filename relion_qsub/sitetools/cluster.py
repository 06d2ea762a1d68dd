"""The cluster as Slurm describes it: partitions and nodes read from ``scontrol`` and ``sinfo`` (issue 14).

``read`` asks the live cluster once (``relion-qsub site init``), never the submit path. Nodes come from
``sinfo --json`` where Slurm has it (21.08+; 22.05 on the testbed), else from ``scontrol show node -o``; partitions
from ``scontrol show partition -o`` (``scontrol --json`` is 23.02+). Parsing is pure and tested on captured output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .. import proc
from ..errors import CommandError

_PAREN = re.compile(r"\([^)]*\)")


@dataclass(frozen=True, slots=True)
class Node:
    """One node as Slurm describes it (RealMemory in MB, gres by (name, type))."""

    name: str
    cpus: int
    memory_mb: int
    gres: dict[tuple[str, str], int]
    features: tuple[str, ...]
    partitions: tuple[str, ...]

    def gpus(self) -> tuple[str, int]:
        """(GPU type, count): the first typed gpu gres ("" and 0 without GPUs)."""
        for (name, kind), count in self.gres.items():
            if name == "gpu":
                return kind, count
        return "", 0


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition as ``scontrol show partition`` describes it (MaxTime "" and MaxNodes 0: unlimited)."""

    name: str
    default: bool
    max_time: str
    max_nodes: int
    total_nodes: int
    oversubscribe: str = "NO"  # scontrol's OverSubscribe: NO, EXCLUSIVE, YES:4, FORCE:16


def parse_gres(text: str) -> dict[tuple[str, str], int]:
    """``gpu:p100:4(S:0-1),lscratch:800`` -> {("gpu", "p100"): 4, ("lscratch", ""): 800}."""
    out: dict[tuple[str, str], int] = {}
    for item in _PAREN.sub("", text or "").split(","):
        parts = item.strip().split(":")
        if not parts[0] or parts[0] in ("(null)", "N/A"):
            continue
        count = int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1
        kind = parts[1] if len(parts) > 2 else ""
        out[(parts[0], kind)] = count
    return out


def _words(line: str) -> dict[str, str]:
    """``Key=value Key2=value`` (scontrol -o); words without '=' belong to a value with spaces and are skipped."""
    return dict(word.split("=", 1) for word in line.split() if "=" in word)


def _features(text: str) -> tuple[str, ...]:
    return tuple(f for f in (text or "").split(",") if f and f != "(null)")


def parse_partitions(text: str) -> list[Partition]:
    out = []
    for line in text.splitlines():
        w = _words(line)
        if "PartitionName" not in w:
            continue
        max_time = w.get("MaxTime", "UNLIMITED")
        max_nodes = w.get("MaxNodes", "UNLIMITED")
        out.append(
            Partition(
                w["PartitionName"],
                w.get("Default") == "YES",
                "" if max_time == "UNLIMITED" else max_time,
                int(max_nodes) if max_nodes.isdigit() else 0,
                int(w.get("TotalNodes", "0") or 0),
                w.get("OverSubscribe", "NO"),
            )
        )
    return out


def parse_nodes_text(text: str) -> list[Node]:
    out = []
    for line in text.splitlines():
        w = _words(line)
        if "NodeName" not in w:
            continue
        out.append(
            Node(
                w["NodeName"],
                int(w.get("CPUTot", "0") or 0),
                int(w.get("RealMemory", "0") or 0),
                parse_gres(w.get("Gres", "")),
                _features(w.get("AvailableFeatures", "")),
                tuple(p for p in w.get("Partitions", "").split(",") if p),
            )
        )
    return out


def parse_nodes_json(text: str) -> list[Node]:
    """``sinfo --json``: {"nodes": [{"name", "cpus", "real_memory", "gres", "features", "partitions"}, ...]}."""
    data = json.loads(text)
    return [
        Node(
            str(n["name"]),
            int(n.get("cpus", 0)),
            int(n.get("real_memory", 0)),
            parse_gres(str(n.get("gres", ""))),
            _features(str(n.get("features", ""))),
            tuple(str(p) for p in n.get("partitions", [])),
        )
        for n in data.get("nodes", [])
    ]


def _ask(runner: Callable[..., proc.Result], argv: list[str]) -> proc.Result:
    result = runner(argv, timeout=60)
    if result.returncode != 0:
        raise CommandError(f"{' '.join(argv)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


def ping(runner: Callable[..., proc.Result], timeout: float) -> None:
    """Fail at once, with Slurm's words, when the controller does not answer: against a dead controller every
    scontrol and sinfo call waits out its message timeouts and retries (a minute and more, silently)."""
    try:
        result = runner(["scontrol", "ping"], timeout=timeout)
    except CommandError as exc:
        raise exc.again(f"the Slurm controller does not answer: {exc}") from exc
    if result.returncode != 0 or " is UP" not in result.stdout:
        lines = (result.stdout + result.stderr).splitlines()
        said = next((line.strip() for line in lines if line.strip().strip("*")), f"exit {result.returncode}")
        raise CommandError(f"the Slurm controller does not answer scontrol ping: {said} (is slurmctld up?)")


def read(runner: Callable[..., proc.Result] = proc.run) -> tuple[list[Partition], list[Node], str]:
    """The live cluster: (partitions, nodes, where the nodes came from)."""
    partitions = parse_partitions(_ask(runner, ["scontrol", "show", "partition", "-o"]).stdout)
    result = runner(["sinfo", "--json"], timeout=60)
    nodes: list[Node] = []
    source = "sinfo --json"
    if result.returncode == 0:
        try:
            nodes = parse_nodes_json(result.stdout)
        except (ValueError, KeyError, TypeError):
            nodes = []
    if not nodes:
        source = "scontrol show node -o"
        nodes = parse_nodes_text(_ask(runner, ["scontrol", "show", "node", "-o"]).stdout)
    return partitions, _unique(nodes), source


def _unique(nodes: Iterable[Node]) -> list[Node]:
    seen: dict[str, Node] = {}
    for node in nodes:
        seen.setdefault(node.name, node)  # sinfo --json lists a node once per partition on some versions
    return list(seen.values())
