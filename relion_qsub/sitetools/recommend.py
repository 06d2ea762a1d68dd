"""`relion-qsub recommend JOBTYPE`: the Running/Compute tab values for a job, from the site profile's recipes.

Prints what to type into RELION's GUI (a table a person can copy, or ``--json``), the memory estimates of the seed
page, and warnings where the request would not fit the node type:

* motion correction (RELION's own, per MPI task): ``width x height x (frames + 2 + threads) x 4`` bytes, "and this
  can be multiplied by 4-10 times" (seed, Motion correction);
* pre-read particles (per MPI task): ``N x box^2 x 4`` bytes (seed, Pre-reading particles into memory).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import profile
from ..argparser import Parser
from ..errors import ScriptError, UsageError
from ..profile import Site
from ..profile.recipes import NodeType, Recipe, Row
from ..relion import jobtypes
from ..script import split_words
from ..slurm.options import parse_words
from ..units import memory_mb

GIB = 1024**3
_GPU = re.compile(r"(?:^|,)gpu(?::([\w.-]+))?:(\d+)")


def motion_bytes(width: int, height: int, frames: int, threads: int) -> int:
    """Seed: each MPI process minimally needs width * height * (frames + 2 + X) * 4 bytes, X >= threads."""
    return width * height * (frames + 2 + threads) * 4


def preread_bytes(particles: int, box: int) -> int:
    """Seed: N * box_size * box_size * 4 bytes per MPI task."""
    return particles * box * box * 4


def gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


@dataclass(frozen=True)
class Inputs:
    mpi: int | None = None
    threads: int | None = None
    particles: int | None = None
    box: int | None = None
    width: int | None = None
    height: int | None = None
    frames: int | None = None


@dataclass
class Advice:
    recipe: Recipe
    row: Row
    node: NodeType | None
    mpi: int
    threads: int
    running: list[tuple[str, str]]
    estimates: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def directive_options(directives: str) -> dict[str, str | None]:
    """The sbatch options of a row's directives by name, parsed as sbatch parses them (``--exclusive=user``,
    ``--ntasks-per-n 4`` and ``-N2`` included); the last of an option wins, as in sbatch. The profile loader has
    refused directives with problems, so anything unparsable is simply left out here."""
    try:
        words, _ = split_words(directives)
    except ScriptError:
        return {}
    return {p.option.name: p.value for p in parse_words(words, max_distance=0) if p.option and not p.problem}


def fixed_tasks_per_node(row: Row) -> int | None:
    """--ntasks-per-node when the row's directives fix it."""
    value = directive_options(row.directives).get("ntasks-per-node")
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def tasks_per_node(row: Row, node: NodeType | None, mpi: int, threads: int, task_mb: int | None = None) -> int:
    """Ranks on the busiest node: --ntasks-per-node when the row fixes it, else as many as CPUs and memory allow
    (Slurm packs a node until one of them runs out)."""
    fixed = fixed_tasks_per_node(row)
    if fixed is not None:
        return min(mpi, fixed)
    if node is None:
        return mpi
    fit = node.cpus // max(1, threads)
    if task_mb:
        fit = min(fit, node.memory_mb // task_mb)
    return max(1, min(mpi, fit))


def memory_per_task_mb(site: Site, row: Row, node: NodeType | None, threads: int, per_node: int) -> int | None:
    """What Slurm gives one MPI task: Memory Per Thread x threads, or the node's share with the whole-node value."""
    if row.memory == site.profile.memory.whole_node and "exclusive" in directive_options(row.directives):
        return node.memory_mb // per_node if node else None
    value = memory_mb(row.memory) if row.memory else None
    return value * threads if value is not None else None


def running_tab(site: Site, row: Row, mpi_text: str, threads: int | None) -> list[tuple[str, str]]:
    """The Running tab as RELION labels it, the extra fields under the site's own labels."""
    rows = [("Number of MPI procs:", mpi_text)]
    if threads is not None:
        rows.append(("Number of threads:", str(threads)))
    rows += [("Submit to queue?", "yes"), ("Queue name:", row.queue)]
    for option, value in (
        ("time", row.walltime),
        ("mem-per-cpu", row.memory),
        ("gres", row.gres),
        ("", row.directives),
    ):
        gui = site.profile.field_for(option)
        if value and gui is not None:
            rows.append((gui.label + ":", value))
        elif value:
            rows.append((f"(sbatch --{option})" if option else "(sbatch options)", value))
    return rows


def fit_warnings(site: Site, advice: Advice, per_node: int, per_task_mb: int | None) -> list[str]:
    """Where the request will not fit the node type (or RELION's GUI will not let it be typed)."""
    out: list[str] = []
    node, row, mpi, threads = advice.node, advice.row, advice.mpi, advice.threads
    if not advice.row.mpi.allows(mpi):
        out.append(f"{mpi} MPI procs is not what this recipe recommends ({row.mpi.text()})")
    if mpi > site.profile.limits.mpi_max:
        out.append(f"{mpi} MPI procs is above the GUI's limit RELION_MPI_MAX={site.profile.limits.mpi_max}")
    if threads > site.profile.limits.thread_max:
        out.append(f"{threads} threads is above the GUI's limit RELION_THREAD_MAX={site.profile.limits.thread_max}")
    if node is None:
        return out
    if threads > node.cpus:
        out.append(f"{threads} threads per MPI proc but a {node.name} node has {node.cpus} CPUs")
    elif per_node * threads > node.cpus:
        out.append(
            f"{per_node} tasks x {threads} threads = {per_node * threads} CPUs per node; a {node.name} node has "
            f"{node.cpus}: lower threads or --ntasks-per-node"
        )
    gpu = _GPU.search(row.gres)
    if gpu and node.has_gpus:
        count = int(gpu.group(2))
        if count > node.gpus:
            out.append(f"Gres asks {count} GPUs per node; a {node.name} node has {node.gpus}")
        workers = per_node - 1 if per_node > count else per_node
        if mpi > 1 and node.safe_threads and workers >= count and threads > node.safe_threads:
            out.append(
                f"{threads} threads per GPU rank; {node.gpu_type} GPUs hang above {node.safe_threads} (seed: 'IT WILL "
                "HANG THE NODE')"
            )
    elif gpu and not node.has_gpus:
        out.append(f"Gres asks for GPUs but {node.name} nodes have none")
    scratch = re.search(rf"(?:^|,){re.escape(site.scratch.gres)}:(\d+)", row.gres)
    if scratch and node.scratch_gb and int(scratch.group(1)) > node.scratch_gb:
        out.append(f"{site.scratch.gres}:{scratch.group(1)} but a {node.name} node has {node.scratch_gb} GB")
    if per_task_mb is not None and per_task_mb > node.memory_mb:
        out.append(f"one MPI task gets {per_task_mb} MB but a {node.name} node has {node.memory_mb} MB")
    elif per_task_mb is not None and per_task_mb * per_node > node.memory_mb:
        out.append(
            f"{per_node} tasks x {per_task_mb} MB = {per_node * per_task_mb} MB per node; a {node.name} node has "
            f"{node.memory_mb} MB: lower Memory Per Thread or the tasks per node"
        )
    return out


def estimate(site: Site, advice: Advice, inputs: Inputs, per_node: int, per_task_mb: int | None) -> None:
    """Append the seed's memory estimates to ``advice`` and warn where they exceed the allocation or the node."""
    needs: list[tuple[str, int]] = []
    if inputs.width and inputs.height and inputs.frames:
        n = motion_bytes(inputs.width, inputs.height, inputs.frames, advice.threads)
        needs.append(("motion correction", n))
        advice.estimates.append(
            f"motion correction: {inputs.width} x {inputs.height} x ({inputs.frames} + 2 + {advice.threads}) x 4 B "
            f"= {gib(n)} per MPI task at least (the seed: often 4-10 times more)"
        )
    if inputs.particles and inputs.box:
        n = preread_bytes(inputs.particles, inputs.box)
        needs.append(("pre-read particles", n))
        advice.estimates.append(
            f"pre-read particles: {inputs.particles} x {inputs.box}^2 x 4 B = {gib(n)} per MPI task; "
            f"{per_node} tasks on the busiest node = {gib(n * per_node)}"
        )
    for what, n in needs:
        if per_task_mb is not None and n > per_task_mb * 1024**2:
            advice.warnings.append(
                f"{what} needs {gib(n)} per MPI task but it gets {gib(per_task_mb * 1024**2)} "
                f"(Memory Per Thread {advice.row.memory} x {advice.threads} threads)"
            )
        if advice.node is not None and n * per_node > advice.node.memory_mb * 1024**2:
            advice.warnings.append(
                f"{what}: {per_node} tasks x {gib(n)} = {gib(n * per_node)} does not fit a {advice.node.name} node "
                f"({gib(advice.node.memory_mb * 1024**2)}): use fewer tasks per node"
            )


def advise(site: Site, recipe: Recipe, row_key: str, node_name: str | None, inputs: Inputs) -> Advice:
    row = recipe.rows[row_key]
    node = site.profile.node_types.get(row_key if row_key != "any" else (node_name or ""))
    mpi = inputs.mpi or row.mpi.value
    threads = inputs.threads or row.threads or 1
    mpi_text = str(inputs.mpi) if inputs.mpi else row.mpi.text()
    advice = Advice(recipe, row, node, mpi, threads, running_tab(site, row, mpi_text, inputs.threads or row.threads))
    per_node = tasks_per_node(row, node, mpi, threads)
    per_task = memory_per_task_mb(site, row, node, threads, per_node)
    if per_task is not None and row.memory != site.profile.memory.whole_node:
        per_node = tasks_per_node(row, node, mpi, threads, per_task)
        if node is not None and per_node < mpi and fixed_tasks_per_node(row) is None:
            advice.estimates.append(
                f"Slurm can place at most {per_node} such tasks on a {node.name} node "
                f"({per_task} MB and {threads} CPUs each): the job spans at least {-(-mpi // per_node)} nodes"
            )
    advice.warnings += fit_warnings(site, advice, per_node, per_task)
    estimate(site, advice, inputs, per_node, per_task)
    return advice


def _exact(site: Site, jobtype: str, node_type: str | None) -> tuple[Recipe, str | None] | None:
    """A recipe key or a template directory, exactly, then in any case."""
    # Exact spellings first: "CtfFind" is the template directory (built for one node type), "ctffind" the recipe.
    for same in (str.__eq__, lambda a, b: a.lower() == b.lower()):
        for key, recipe in site.profile.recipes.items():
            if same(key, jobtype):
                return recipe, None
        for tset in site.profile.template_sets:
            if same(tset.directory, jobtype):
                return site.profile.recipes[tset.recipe], node_type or tset.node_type
    return None


def find_recipes(site: Site, jobtype: str, node_type: str | None) -> list[tuple[Recipe, str | None]]:
    """What ``jobtype`` names: a recipe key (class_gpu), a template directory (Class3D_gpu: its node type), or a
    RELION job type as users name it (Class3D, class3d, relion.class3d, "3D classification"): then every recipe
    for it, found by the recipe's relion_job or by the template directories built for the job type."""
    exact = _exact(site, jobtype, node_type)
    if exact is not None:
        return [exact]
    job = jobtypes.resolve(jobtype)
    if job is None:
        raise UsageError(
            f"no recipe {jobtype!r} in site profile {site.name}; known: {', '.join(site.profile.recipes)} "
            f"or a RELION job type ({jobtypes.names()})"
        )
    keys = [t.recipe for t in site.profile.template_sets if jobtypes.of_directory(t.directory) is job]
    keys += [r.key for r in site.profile.recipes.values() if jobtypes.resolve(r.relion_job) is job]
    found = [site.profile.recipes[k] for k in dict.fromkeys(keys)]
    if not found:
        raise UsageError(
            f"site profile {site.name} has no recipe for {job.name}; known: {', '.join(site.profile.recipes)}"
        )
    if node_type:
        found = [r for r in found if node_type in r.rows or "any" in r.rows]
        if not found:
            raise UsageError(f"no recipe for {job.name} in site profile {site.name} has a row for {node_type!r}")
    return [(r, None) for r in found]


def row_keys(recipe: Recipe, node_type: str | None, site: Site) -> list[str]:
    if node_type is None:
        return list(recipe.rows)
    if node_type not in site.profile.node_types:
        raise UsageError(
            f"--node-type {node_type!r} is not in site profile {site.name}; known: {', '.join(site.profile.node_types)}"
        )
    if node_type in recipe.rows:
        return [node_type]
    if "any" in recipe.rows:
        return ["any"]
    raise UsageError(f"recipe {recipe.key} has no row for node type {node_type!r}; it has: {', '.join(recipe.rows)}")


def render_text(site: Site, advice: Advice) -> str:
    node = advice.node
    where = f"{node.name} ({node.description or node.partition})" if node else "any node"
    lines = [
        f"{advice.recipe.title} on {where}: site {site.name}"
        + (f"; {advice.recipe.source}" if advice.recipe.source else "")
    ]
    tables = [*((f"{tab} tab", rows) for tab, rows in advice.recipe.tabs), ("Running tab", tuple(advice.running))]
    for title, rows in tables:
        width = max((len(label) for label, _ in rows), default=0)
        lines += ["", title]
        lines += [f"  {label:<{width}}  {value or '(leave blank)'}" for label, value in rows]
    for title, items in (
        ("Memory", advice.estimates),
        ("Warnings", advice.warnings),
        ("Notes", list(advice.recipe.notes)),
    ):
        if items:
            lines += ["", title] + [f"  - {item}" for item in items]
    return "\n".join(lines) + "\n"


def as_json(site: Site, advice: Advice) -> dict[str, Any]:
    return {
        "site": site.name,
        "recipe": advice.recipe.key,
        "title": advice.recipe.title,
        "relion_job": advice.recipe.relion_job,
        "node_type": advice.node.name if advice.node else advice.row.node_type,
        "tabs": {tab: dict(rows) for tab, rows in advice.recipe.tabs},
        "running": dict(advice.running),
        "mpi": advice.mpi,
        "mpi_recommended": advice.row.mpi.text(),
        "threads": advice.threads,
        "estimates": advice.estimates,
        "warnings": advice.warnings,
        "notes": list(advice.recipe.notes),
    }


def _parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="relion-qsub recommend",
        description="Print the RELION Running/Compute tab values the site recommends for a job type, the seed's "
        "memory estimates, and warnings where the request does not fit the node type.",
        epilog="examples:\n  relion-qsub recommend Class3D\n"
        "  relion-qsub recommend class_gpu --node-type p100 --particles 100000 --box 350\n"
        "  relion-qsub recommend motcorrel --width 3710 --height 3838 --frames 49 --json\n"
        "  relion-qsub recommend --list",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "jobtype",
        nargs="?",
        help="RELION job type (Class3D, relion.class3d, '3D classification'), recipe (class_gpu) or template "
        "directory (Class3D_gpu)",
    )
    profile.add_site_option(p)
    p.add_argument("--node-type", help="one node type (default: every node type the recipe has a row for)")
    p.add_argument("--list", action="store_true", help="list the recipes and node types")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    for name, what in (
        ("mpi", "Number of MPI procs you plan"),
        ("threads", "Number of threads you plan"),
        ("particles", "number of particles (pre-read estimate)"),
        ("box", "box size in pixels (pre-read estimate)"),
        ("width", "movie width in pixels (motion correction estimate)"),
        ("height", "movie height in pixels"),
        ("frames", "frames per movie"),
    ):
        p.add_argument(f"--{name}", type=_positive, help=what)
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    return p


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def list_text(site: Site) -> str:
    lines = [f"recipes in site profile {site.name}:"]
    lines += [f"  {key:<16} {r.title} [{', '.join(r.rows)}]" for key, r in site.profile.recipes.items()]
    lines += ["node types:"]
    lines += [
        f"  {n.name:<16} {n.partition}, {n.cpus} CPUs, {n.memory_mb} MB"
        + (f", {n.gpus} x {n.gpu_type}" if n.gpus else "")
        + (f", {site.scratch.gres}:{n.scratch_gb}" if n.scratch_gb else "")
        for n in site.profile.node_types.values()
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0) and 64
    site = profile.load(args.site)
    if args.list:
        print(list_text(site), end="")
        return 0
    if not args.jobtype:
        raise UsageError("name a JOBTYPE (relion-qsub recommend --list shows them)")
    inputs = Inputs(args.mpi, args.threads, args.particles, args.box, args.width, args.height, args.frames)
    advices = []
    for recipe, found_node in find_recipes(site, args.jobtype, args.node_type):
        # The node type the user named, or the one the template directory is built for (CtfFind -> its node type).
        node_type = args.node_type or found_node
        advices += [advise(site, recipe, key, node_type, inputs) for key in row_keys(recipe, node_type, site)]
    if args.json:
        print(json.dumps([as_json(site, a) for a in advices], indent=2))
    else:
        print("\n".join(render_text(site, a) for a in advices), end="")
    return 0
