"""``relion-qsub site init|validate|reference``: a starting profile from the live cluster, and its checks (issue 14).

``site init`` reads partitions and nodes from Slurm (``sitetools.cluster``) and writes a profile: every partition with
its MaxTime, MaxNodes, default flag and what its largest node has; a node type per kind of node (CPUs, memory, GPU type
and count, scratch gres, features); the GUI fields and a Class2D/3D recipe per node type modelled on the bundled
default profile, marked ``REVIEW`` for the admin. Its output passes ``site validate`` unchanged.

``site validate`` loads a profile with the schema and the cross-checks, renders its templates, fills every one as
RELION would (``sitetools.fillcases``) and runs the submit path's rules on each; ``--live`` also tries each with
``sbatch --test-only`` on the cluster. One line per failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import proc, profile
from ..argparser import Parser
from ..checks import registry
from ..errors import EX_CONFIG, EX_OK, InputError, UsageError
from . import cluster

PROG = "relion-qsub site"
WALLTIME = "1:00:00"  # the generated recipes' walltime, unless a partition's MaxTime is shorter


def _v(value: object) -> str:
    """A TOML value: strings as JSON strings (a subset of TOML basic strings), lists, booleans, numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_v(v) for v in value) + "]"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)


def _table(name: str, items: dict[str, object], comment: str = "") -> list[str]:
    head = [f"# {comment}"] if comment else []
    return [*head, f"[{name}]", *(f"{_key(k)} = {_v(v)}" for k, v in items.items()), ""]


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


@dataclass(frozen=True, slots=True)
class NodeKind:
    """One kind of node (same CPUs, memory, gres and features): a node type of the profile."""

    name: str
    node: cluster.Node
    partition: str
    count: int


def _scratch_gres(nodes: Sequence[cluster.Node], preferred: str) -> str:
    names = {name for n in nodes for (name, kind) in n.gres if name != "gpu" and not kind}
    if preferred in names:
        return preferred
    return sorted(names)[0] if names else ""


SERVICE_MAX_MINUTES = 60  # a home for tiny service jobs runs short jobs only


def service_home(parts: Sequence[cluster.Partition]) -> cluster.Partition | None:
    """The partition a site keeps for tiny service jobs, if it has one: every job shares its cores
    (OverSubscribe=FORCE, the jobs cannot opt out) and it takes short jobs only (MaxTime of an hour or less). There
    relion-qsub's end-watcher starts at once while the compute partitions are full (issue 20; testbed's service)."""
    from ..units import minutes

    for part in parts:
        limit = minutes(part.max_time) if part.max_time else None
        if part.oversubscribe.startswith("FORCE") and limit is not None and limit <= SERVICE_MAX_MINUTES:
            return part
    return None


def node_kinds(parts: Sequence[cluster.Partition], nodes: Sequence[cluster.Node]) -> list[NodeKind]:
    """Group nodes by what they have; each group's partition is its first non-default one (where RELION's
    recipes send it), else the default. Nodes only in the service home (service_home) run no RELION job."""
    defaults = {p.name for p in parts if p.default}
    service = service_home(parts)
    groups: dict[tuple[object, ...], list[cluster.Node]] = {}
    for n in nodes:
        if not n.partitions or (service is not None and set(n.partitions) <= {service.name}):
            continue
        groups.setdefault((n.cpus, n.memory_mb, tuple(sorted(n.gres.items())), n.features), []).append(n)
    kinds: list[NodeKind] = []
    for members in groups.values():
        first = members[0]
        others = sorted(p for p in first.partitions if p not in defaults)
        partition = others[0] if others else sorted(first.partitions)[0]
        gpu_type, _ = first.gpus()
        base = (
            gpu_type or next((f for f in first.features if not f.startswith("gpu")), "") or f"{partition}{first.cpus}"
        )
        name = base
        while any(k.name == name for k in kinds):
            name = f"{base}_{len(kinds) + 1}"
        kinds.append(NodeKind(name, first, partition, len(members)))
    return kinds


def _partition_items(part: cluster.Partition, nodes: Sequence[cluster.Node], scratch: str) -> dict[str, object]:
    members = [n for n in nodes if part.name in n.partitions]
    gpu_types = sorted({n.gpus()[0] for n in members if n.gpus()[0]})
    items: dict[str, object] = {}
    if part.default:
        items["default"] = True
    if gpu_types:
        items["gpu_types"] = gpu_types
        items["gpus_per_node"] = max(n.gpus()[1] for n in members)
    if part.max_time:
        items["max_time"] = part.max_time
    if part.max_nodes:
        items["max_nodes"] = part.max_nodes
    items["nodes"] = part.total_nodes or len(members)
    if members:
        items["cpus"] = max(n.cpus for n in members)
        items["memory"] = str(max(n.memory_mb for n in members))
        if scratch:
            items["scratch_gb"] = max(n.gres.get((scratch, ""), 0) for n in members)
        items["features"] = sorted({f for n in members for f in n.features})
    return items


def _walltime(parts: Sequence[cluster.Partition]) -> str:
    from ..units import minutes

    limits = [minutes(p.max_time) for p in parts if p.max_time]
    shortest = min((m for m in limits if m is not None), default=float("inf"))
    if (minutes(WALLTIME) or 0) <= shortest:
        return WALLTIME
    return next(p.max_time for p in parts if p.max_time and minutes(p.max_time) == shortest)


def _fields(bundled: profile.Site, walltime: str, memory: str, scratch: str, min_gb: int) -> list[str]:
    defaults = {"time": walltime, "mem-per-cpu": memory, "gres": f"{scratch}:{min_gb}" if scratch else ""}
    out = ["# REVIEW: the extra Running-tab boxes (RELION_QSUB_EXTRAn), as the bundled profile has them."]
    for f in bundled.profile.fields:
        out += ["[[fields]]", f"label = {_v(f.label)}"]
        if f.option:
            out.append(f"option = {_v(f.option)}")
        default = defaults.get(f.option, "") if f.option else ""
        if default:
            out.append(f"default = {_v(default)}")
        out += [f"help = {_v(f.help)}", ""]
    return out


def _gpu_recipe(kind: NodeKind, safe: int, scratch: str, walltime: str, job_dir: str) -> list[str]:
    n = kind.node
    gpu_type, gpus = n.gpus()
    per_node = gpus + 1  # one rank per GPU plus the leader (relion-launch puts it on the first node)
    threads = max(1, min(safe, n.cpus // per_node))
    gres = f"gpu:{gpu_type}:{gpus}"
    if scratch and n.gres.get((scratch, ""), 0):
        gres = f"{scratch}:{min(100, n.gres[(scratch, '')])},{gres}"
    key = f"class_{kind.name}"
    out = [f"[recipes.{key}]", f'title = "Class2D & Class3D on {kind.name} GPUs (generated: REVIEW)"']
    out += ['relion_job = "Class2D"', f"[recipes.{key}.tabs.Compute]", '"Use GPU acceleration?" = "yes"']
    if scratch:
        out.append(f'"Copy particles to scratch directory:" = {_v(job_dir)}')
    row = {
        "mpi": per_node,
        "threads": threads,
        "queue": kind.partition,
        "walltime": walltime,
        "memory": str(n.memory_mb // max(1, n.cpus)),
        "gres": gres,
        "directives": f"--nodes=1 --ntasks-per-node={per_node}",
    }
    out += _table(f"recipes.{key}.rows.{kind.name}", row)
    sizes = []
    for index, size in enumerate(("tiny", "small", "medium", "large")[: max(1, min(4, kind.count))], start=1):
        sizes.append(
            f'{size} = {{ mpi = {index * per_node}, directives = "--nodes={index} --ntasks-per-node={per_node}" }}'
        )
    out += [f"[job_templates.Class2D_{kind.name}]", f'recipe = "{key}"', f'node_type = "{kind.name}"']
    out += [f"[job_templates.Class2D_{kind.name}.sizes]", *sizes, ""]
    return out


def _cpu_recipe(kind: NodeKind, scratch: str, walltime: str, job_dir: str) -> list[str]:
    n = kind.node
    threads = min(4, n.cpus)
    total = kind.count * n.cpus // threads  # ranks that fit all nodes of this kind
    key = f"class_{kind.name}"
    out = [f"[recipes.{key}]", f'title = "Class2D & Class3D on {kind.name} CPUs (generated: REVIEW)"']
    out += ['relion_job = "Class2D"', f"[recipes.{key}.tabs.Compute]", '"Use GPU acceleration?" = "no"']
    if scratch:
        out.append(f'"Copy particles to scratch directory:" = {_v(job_dir)}')
    row: dict[str, object] = {
        "mpi": f"2-{max(2, total)}",
        "threads": threads,
        "queue": kind.partition,
        "walltime": walltime,
        "memory": str(n.memory_mb // max(1, n.cpus)),
    }
    if scratch and n.gres.get((scratch, ""), 0):
        row["gres"] = f"{scratch}:{min(100, n.gres[(scratch, '')])}"
    feature = next((f for f in n.features if not f.startswith("gpu")), "")
    if feature:
        row["directives"] = f"--constraint={feature}"
    out += _table(f"recipes.{key}.rows.{kind.name}", row)
    sizes = [
        f"{s} = {{ mpi = {m} }}"
        for s, m in zip(("tiny", "small", "medium", "large", "xlarge"), (2, 4, 8, 16, 32), strict=True)
        if m <= total
    ]
    out += [f"[job_templates.Class2D_{kind.name}]", f'recipe = "{key}"', f'node_type = "{kind.name}"']
    out += [f"[job_templates.Class2D_{kind.name}.sizes]", *sizes, ""]
    return out


def _node_type(kind: NodeKind, scratch: str) -> list[str]:
    n = kind.node
    gpu_type, gpus = n.gpus()
    items: dict[str, object] = {"partition": kind.partition}
    feature = next((f for f in n.features if not f.startswith("gpu")), "")
    if feature and not gpu_type:
        items["constraint"] = feature
    if gpu_type:
        items["gpu_type"], items["gpus"] = gpu_type, gpus
    items["cpus"], items["memory"] = n.cpus, str(n.memory_mb)
    if scratch and n.gres.get((scratch, ""), 0):
        items["scratch_gb"] = n.gres[(scratch, "")]
    items["description"] = f"{kind.count} node(s) like {n.name}"
    return _table(f"node_types.{kind.name}", items)


def _running_tab(
    bundled: profile.Site,
    kinds: Sequence[NodeKind],
    walltime: str,
    memory: str,
    scratch: str,
    min_gb: int,
    queue: str,
) -> list[str]:
    """The GUI's boxes and RELION's environment, from the bundled profile with this cluster's values."""
    out = _fields(bundled, walltime, memory, scratch, min_gb)
    limits = bundled.profile.limits
    out += _table(
        "limits",
        {
            "nr_mpi": 1,
            "nr_threads": 1,
            "mpi_max": limits.mpi_max,
            "thread_max": max((k.node.cpus for k in kinds), default=limits.thread_max),
            "minimum_dedicated": 1,
            "error_local_mpi": limits.error_local_mpi,
            "mpirun": limits.mpirun,
        },
        "REVIEW: the Running tab's defaults and slider limits",
    )
    out += _table("queue", {"use": "yes", "name": queue, "command": bundled.profile.queue.command})
    out += _table(
        "launcher",
        {"variable": bundled.profile.launcher.variable, "command": bundled.profile.launcher.command},
        "REVIEW: add --mpi=pmix (or your MPI plugin) if srun needs it",
    )
    out += _table("memory", {"whole_node": "0", "default": memory})
    return out


def generate(
    name: str, parts: Sequence[cluster.Partition], nodes: Sequence[cluster.Node], bundled: profile.Site, source: str
) -> str:
    """The starting profile's TOML text."""
    scratch = _scratch_gres(nodes, bundled.scratch.gres)
    kinds = node_kinds(parts, nodes)
    service = service_home(parts)
    walltime = _walltime([p for p in parts if p is not service])  # RELION jobs never go to the service home
    per_cpu = min((k.node.memory_mb // max(1, k.node.cpus) for k in kinds), default=1000)
    default = next((p.name for p in parts if p.default), parts[0].name if parts else "")
    max_scratch = max((n.gres.get((scratch, ""), 0) for n in nodes), default=0)
    min_gb = min(bundled.scratch.min_gb, max_scratch) if scratch else bundled.scratch.min_gb
    out = [
        f"# Site profile for {name}: written by `relion-qsub site init` from scontrol show partition and {source}.",
        "# Partitions and node types are what Slurm reported. Lines marked REVIEW are starting values modelled on",
        f"# the bundled profile {bundled.name!r}: check them. Every key: docs/profile-reference.md. Then run",
        "# `relion-qsub site validate --site THIS_FILE --live`.",
        f"name = {_v(name)}",
        "",
    ]
    out += _table(
        "scratch",
        {
            "gres": scratch or bundled.scratch.gres,
            "root": bundled.scratch.root,
            "job_dir": bundled.scratch.job_dir,
            "min_gb": min_gb,
            "monitor_interval": bundled.scratch.monitor_interval,
        },
        "REVIEW: root and job_dir are not known to Slurm" + ("" if scratch else "; no scratch gres was found"),
    )
    gpu_types = sorted({n.gpus()[0] for n in nodes if n.gpus()[0]})
    if gpu_types:
        out += ["# REVIEW: threads per GPU before a node hangs (bundled values where known, else 1).", "[gpu_types]"]
        out += [f"{_key(t)} = {{ safe_threads = {bundled.gpu_safe_threads.get(t, 1)} }}" for t in gpu_types] + [""]
    for part in parts:
        out += _table(f"partitions.{part.name}", _partition_items(part, nodes, scratch))
    if service is not None:
        why = f"REVIEW: the end-watcher goes to {service.name!r} (OverSubscribe={service.oversubscribe}, MaxTime "
        out += _table("submit", {"watch_options": [f"--partition={service.name}"]}, why + f"{service.max_time})")
    for kind in kinds:
        out += _node_type(kind, scratch)
    out += _running_tab(bundled, kinds, walltime, str(per_cpu), scratch, min_gb, default)
    job_dir = bundled.scratch.job_dir
    for kind in kinds:
        if kind.node.gpus()[1]:
            out += _gpu_recipe(kind, bundled.gpu_safe_threads.get(kind.node.gpus()[0], 1), scratch, walltime, job_dir)
        else:
            out += _cpu_recipe(kind, scratch, walltime, job_dir)
    return "\n".join(out).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------- validate


def _try_case(site: profile.Site, script: Path, live: bool, runner: Callable[..., proc.Result]) -> str | None:
    """Why RELION's script from one template would not go through (None: it would)."""
    from .. import submit
    from ..errors import RelionQsubError

    try:
        prepared = submit.prepare(script, [], site)
    except RelionQsubError as exc:
        return str(exc)
    if not prepared.result.ok:
        return "; ".join(c.message for c in prepared.result.errors)
    if not live:
        return None
    submit.write_output(prepared)
    result = runner(
        [site.submit.sbatch, "--test-only", str(prepared.output)],
        timeout=site.submit.timeout,
        cwd=script.parent.parent.parent,
    )
    if result.returncode != 0 or "to start at" not in result.stderr:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        return f"sbatch --test-only: {lines[-1].strip() if lines else f'exit {result.returncode}'}"
    return None


def validate(site: profile.Site, live: bool, runner: Callable[..., proc.Result] = proc.run) -> tuple[int, list[str]]:
    """(how many cases were tried, one line per failure) for every generated template filled as RELION would."""
    from .fillcases import cases, fill_case, write_project
    from .templates import plan, write

    with tempfile.TemporaryDirectory(prefix="relion-qsub-validate-") as tmp:
        tree = Path(tmp) / "templates"
        rendered = plan(site, str(tree))
        write(rendered, tree)
        failures = []
        all_cases = cases(site, rendered)
        for case in all_cases:
            path = write_project(case, fill_case(case, rendered), Path(tmp) / "project")
            problem = _try_case(site, path, live, runner)
            if problem:
                failures.append(f"{site.path}: {case.name}: {problem}")
    return len(all_cases), failures


# ---------------------------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Site profiles: a starting one from the live cluster, checks, and the reference of every key.",
        epilog="examples:\n"
        "  relion-qsub site init --name mysite -o mysite.toml\n"
        "  relion-qsub site validate --site mysite.toml --live\n"
        "  relion-qsub site reference > docs/profile-reference.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = Parser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    sub = parser.add_subparsers(dest="action", required=True)
    init = sub.add_parser(
        "init", parents=[common], help="write a starting profile from scontrol/sinfo (stdout, or -o FILE)"
    )
    init.add_argument("--name", default="", help="the site's name (default: Slurm's ClusterName, else 'site')")
    init.add_argument("-o", "--output", help="write here (refused if it exists, unless --force)")
    init.add_argument("--force", action="store_true", help="replace --output if it exists")
    check = sub.add_parser(
        "validate", parents=[common], help="schema, cross-checks, every template filled as RELION would"
    )
    profile.add_site_option(check)
    check.add_argument("--live", action="store_true", help="also try each with sbatch --test-only on the cluster")
    sub.add_parser(
        "reference", parents=[common], help="print docs/profile-reference.md (every key, type, default, meaning)"
    )
    return parser


def _cluster_name(runner: Callable[..., proc.Result]) -> str:
    result = runner(["scontrol", "show", "config"], timeout=60)
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "ClusterName" and value.strip():
            return value.strip()
    return "site"


def init(name: str, runner: Callable[..., proc.Result] = proc.run) -> str:
    from ..profile.recipes import NAME_EXPECTED, plain_name

    parts, nodes, source = cluster.read(runner)
    name = name or _cluster_name(runner)
    if not plain_name(name):
        raise UsageError(f"--name {name!r}: expected {NAME_EXPECTED}")
    if not parts or not nodes:
        raise InputError("Slurm reported no partitions or no nodes: is this the cluster's login node?")
    return generate(name, parts, nodes, profile.load(profile.DEFAULT_PROFILE, full=True), source)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"-o {path}: cannot write it ({exc.strerror})") from exc


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    if args.action == "reference":
        from ..profile.keys import reference

        sys.stdout.write(reference({"policy": registry.reference_rows()}))
        return EX_OK
    if args.action == "init":
        if args.output and Path(args.output).exists() and not args.force:
            raise UsageError(f"-o {args.output}: exists; give --force to replace it")  # before asking Slurm
        text = init(args.name)
        if args.output:
            _write(Path(args.output), text)
        else:
            sys.stdout.write(text)
        return EX_OK
    site = profile.load(args.site, full=True)
    registry.policy(site.policy, site.path)  # the [policy] keys and actions: the checks declare them
    tried, failures = validate(site, args.live)
    for line in failures:
        print(line)
    how = " and sbatch --test-only" if args.live else ""
    print(
        f"{PROG} validate: {site.path}: {tried} scripts (every template filled as RELION would), "
        f"{len(failures)} failed{how}",
        file=sys.stderr,
    )
    return EX_CONFIG if failures else EX_OK
