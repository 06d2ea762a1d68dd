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
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import proc, profile
from ..argparser import Parser
from ..checks import registry
from ..errors import EX_CONFIG, EX_OK, InputError, UsageError
from . import cluster, recipegen

PROG = "relion-qsub site"
PING_TIMEOUT = 20  # seconds: a dead controller makes every scontrol call wait its full MessageTimeout, retried
WALLTIME = "1:00:00"  # the generated recipes' walltime, unless a partition's MaxTime is shorter


def _v(value: object) -> str:
    """A TOML value: strings as JSON strings (a subset of TOML basic strings), lists, booleans, numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_v(v) for v in value) + "]"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_v(v)}" for k, v in value.items()) + " }" if value else "{}"
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


def usable_kinds(kinds: Sequence[NodeKind], parts: Sequence[cluster.Partition]) -> list[NodeKind]:
    """The node kinds that get recipes: those whose partition allows at least WALLTIME. A partition with a shorter
    MaxTime (a service partition for tiny jobs such as relion-qsub's end-watcher) cannot hold a RELION job."""
    from ..units import minutes

    least = minutes(WALLTIME) or 60.0
    limit = {p.name: (minutes(p.max_time) if p.max_time else None) for p in parts}
    usable = [k for k in kinds if (limit.get(k.partition) or float("inf")) >= least]
    return usable or list(kinds)


def _walltime(parts: Sequence[cluster.Partition]) -> str:
    from ..units import minutes

    limits = [minutes(p.max_time) for p in parts if p.max_time]
    shortest = min((m for m in limits if m is not None), default=float("inf"))
    if (minutes(WALLTIME) or 0) <= shortest:
        return WALLTIME
    return next(p.max_time for p in parts if p.max_time and minutes(p.max_time) == shortest)


def _fields(bundled: profile.Site, walltime: str, memory: str, scratch: str, min_gb: int) -> list[str]:
    defaults = {"time": walltime, "mem-per-cpu": memory, "gres": f"{scratch}:{min_gb}" if scratch else ""}
    out = ["# REVIEW: the extra Running-tab boxes (RELION_QSUB_EXTRAn), as the bundled profile has them; boxes of"]
    out += ["# the same label are numbered, so that a message naming a box names one box."]
    labels = [f.label for f in bundled.profile.fields]
    for index, f in enumerate(bundled.profile.fields):
        same = [i for i, label in enumerate(labels) if label == f.label]
        label = f.label if len(same) == 1 or same[0] == index else f"{f.label} {same.index(index) + 1}"
        out += ["[[fields]]", f"label = {_v(label)}"]
        if f.option:
            out.append(f"option = {_v(f.option)}")
        default = defaults.get(f.option, "") if f.option else ""
        if default:
            out.append(f"default = {_v(default)}")
        out += [f"help = {_v(f.help)}", ""]
    return out


def _recipes(
    kinds: Sequence[NodeKind], parts: Sequence[cluster.Partition], bundled: profile.Site, scratch: str
) -> list[str]:
    """A recipe and template set for every RELION job type (``recipegen``), from this cluster's node kinds."""
    from ..units import minutes

    limits = {p.name: minutes(p.max_time) if p.max_time else None for p in parts}
    made = []
    for kind in kinds:
        n = kind.node
        gpu_type, gpus = n.gpus()
        made.append(
            recipegen.Kind(
                name=kind.name,
                partition=kind.partition,
                count=kind.count,
                cpus=n.cpus,
                memory_mb=n.memory_mb,
                gpu_type=gpu_type,
                gpus=gpus,
                scratch_gb=n.gres.get((scratch, ""), 0) if scratch else 0,
                constraint=next((f for f in n.features if not f.startswith("gpu")), ""),
                safe_threads=bundled.gpu_safe_threads.get(gpu_type, 1),
                max_minutes=limits.get(kind.partition) or float("inf"),
            )
        )
    where = recipegen.Site(scratch, bundled.scratch.job_dir, bundled.profile.memory.whole_node)
    tables = recipegen.tables([k for k in made if k.gpus], [k for k in made if not k.gpus], where)
    out = [
        "# REVIEW: a recipe and template set for every RELION job type, sized from the node types above by the",
        "# rules of the seed's recommended-parameters table (relion_qsub/sitetools/recipegen.py says which).",
    ]
    for name, items in tables:
        out += _table(name, items)
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
    usable = usable_kinds(kinds, parts)
    service = service_home(parts)
    default = next((p.name for p in parts if p.default), parts[0].name if parts else "")
    walltime = _walltime([p for p in parts if p.name in {k.partition for k in usable} or p.name == default])
    per_cpu = min((k.node.memory_mb // max(1, k.node.cpus) for k in usable), default=1000)
    max_scratch = max((n.gres.get((scratch, ""), 0) for n in nodes), default=0)
    min_gb = min(bundled.scratch.min_gb, max_scratch) if scratch else bundled.scratch.min_gb
    out = [
        f"# Site profile for {name}: written by `relion-qsub site init` from scontrol show partition and {source}.",
        "# Partitions and node types are what Slurm reported. Lines marked REVIEW are starting values modelled on",
        f"# the bundled profile {bundled.name!r}: check them. Every key: docs/profile-reference.md. Then run",
        "# `relion-qsub site validate --site THIS_FILE --live`.",
        f"name = {_v(name)}",
        "# Whole-node templates (<node>_exclusive.sh) for the CPU node types RELION jobs can use.",
        f"exclusive_templates = {_v([k.name for k in usable if not k.node.gpus()[1]])}",
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
    out += _recipes(usable, parts, bundled, scratch)
    return "\n".join(out).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------- validate


def _try_case(site: profile.Site, script: Path, live: bool, runner: Callable[..., proc.Result]) -> str | None:
    """Why RELION's script from one template would not go through (None: it would)."""
    from ..errors import RelionQsubError
    from ..prepare import prepare, write_output

    try:
        prepared = prepare(script, [], site)
    except RelionQsubError as exc:
        return str(exc)
    if not prepared.result.ok:
        return "; ".join(c.message for c in prepared.result.errors)
    if not live:
        return None
    write_output(prepared)
    result = runner(
        [site.submit.sbatch, "--test-only", str(prepared.output)],
        timeout=site.submit.timeout,
        cwd=script.parent.parent.parent,
    )
    if result.returncode != 0 or "to start at" not in result.stderr:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        return f"sbatch --test-only: {lines[-1].strip() if lines else f'exit {result.returncode}'}"
    return None


def validate(
    site: profile.Site,
    live: bool,
    runner: Callable[..., proc.Result] = proc.run,
    say: Callable[[str], None] | None = None,
) -> tuple[int, list[str]]:
    """(how many cases were tried, one line per failure) for every generated template filled as RELION would;
    ``say`` hears each case and its outcome (``-v``)."""
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
            if say is not None:
                say(f"{case.name} ({case.mpi} MPI x {case.threads} threads, queue {case.queue}): {problem or 'ok'}")
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
    common.add_argument(
        "-v", "--verbose", action="store_true", help="say each step and each script tried; tracebacks on errors"
    )
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
    check.add_argument(
        "--live",
        action="store_true",
        help="also compare partitions, features, GPU types and limits with Slurm's and try each script with "
        "sbatch --test-only",
    )
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


def _stderr(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


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
        return _init_main(args.name, args.output, args.force)
    return _validate_main(args.site, args.live, args.verbose)


def _init_main(name: str, output: str | None, force: bool) -> int:
    """site init: what it asks, and what it wrote, on stderr (the profile may be on stdout)."""
    if output and Path(output).exists() and not force:
        raise UsageError(f"-o {output}: exists; give --force to replace it")  # before asking Slurm
    _stderr(f"asking Slurm: scontrol ping (at most {PING_TIMEOUT} s)")
    cluster.ping(proc.run, PING_TIMEOUT)
    _stderr("asking Slurm: scontrol show partition, sinfo --json (or scontrol show node), scontrol show config")
    text = init(name)
    data = tomllib.loads(text)
    if output:
        _write(Path(output), text)
    else:
        sys.stdout.write(text)
    _stderr(
        f"wrote {output or 'the profile to stdout'}: {len(data['partitions'])} partitions, "
        f"{len(data['node_types'])} node types, {len(data['recipes'])} recipes, {len(data['job_templates'])} "
        "template directories; check the REVIEW lines, then run site validate --live"
    )
    return EX_OK


def _validate_main(name: str | None, live: bool, verbose: bool) -> int:
    say = _stderr if verbose else None
    site = profile.load(name, full=True)
    registry.policy(site.policy, site.path)  # the [policy] keys and actions: the checks declare them
    if say:
        say(f"{site.path}: the schema, the forms of times and memory sizes, the cross-checks and [policy]: ok")
    failures = []
    if live:
        from . import livecheck

        cluster.ping(proc.run, PING_TIMEOUT)
        parts, nodes, source = cluster.read()
        failures = livecheck.compare(site, parts, nodes)
        if say:
            say(f"partitions, features, GPU types and limits against scontrol and {source}: {len(failures)} differ")
    tried, more = validate(site, live, say=say)
    failures += more
    for line in failures:
        print(line)
    how = " and sbatch --test-only" if live else ""
    print(
        f"{PROG} validate: {site.path}: {tried} scripts (every template filled as RELION would), "
        f"{len(failures)} failed{how}",
        file=sys.stderr,
    )
    return EX_CONFIG if failures else EX_OK
