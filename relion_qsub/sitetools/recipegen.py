"""Recipes and template sets for every RELION job type, sized from the cluster's own nodes (issue 22).

``site init`` calls ``tables`` with the node kinds Slurm reported; each recipe follows the rule the seed's
"Recommended parameters" table follows (the bundled biowulf profile's [recipes] encode that table; the comments
below cite the row each rule comes from), scaled to what one node of each kind has:

* GPU programs (MotionCor2, Gctf, relion_refine --gpu, VDAM, Topaz, ModelAngelo, DynaMight) get rows for the GPU
  node kinds; CPU programs (RELION's own motion correction, CTFFIND, relion_refine without --gpu, Bayesian polishing,
  CTF refinement, local resolution, LoG picking) rows for the CPU node kinds (the GPU kinds where there are none).
* Threads per GPU rank by GPU type: the profile's ``[gpu_types] safe_threads`` ("Set Number of threads to 1 for k80,
  2 for p100, 4 for newer gpus ... IT WILL HANG THE NODE").
* GPU refinement (Class2D/3D, Refine3D, MultiBody) is homogeneous+1: ``--ntasks-per-node`` = GPUs + 1 on whole nodes
  (``--exclusive``, Memory Per Thread 0 = all of the node's memory, the whole local scratch disk); relion-launch
  places the leader on the first node and one worker per GPU.
* Refinement MPI counts are odd (a leader and an even number of workers for the two half sets).
* Jobs that take relion_refine's ``--scratch_dir`` get the scratch gres and "Copy particles to scratch directory".
* Walltimes are the seed's per job type, cut to the partition's MaxTime.

Output is data (TOML table name -> keys), written by ``siteinit``; same cluster, same tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..relion import jobtypes
from ..units import minutes, show_minutes

SIZES = ("tiny", "small", "medium", "large", "xlarge")
# The seed's walltimes (Recommended parameters) by recipe; the others are this project's choices, noted.
WALLTIMES = {
    "motioncor2": "8:00:00",
    "motcorrel": "8:00:00",
    "gctf": "8:00:00",
    "ctffind": "2:00:00",
    "class_gpu": "8:00:00",
    "class_cpu": "8:00:00",
    "refine_gpu": "2-00:00:00",
    "refine": "2-00:00:00",
    "vdam": "2-00:00:00",
    "topaz_picking": "24:00:00",
    "autopick_log": "2:00:00",  # choice: LoG picking is light, like ctffind
    "ctfrefine": "1-00:00:00",  # biowulf's site choice
    "localres": "4:00:00",  # biowulf's site choice
    "modelangelo": "8:00:00",  # choice: one map, hours on one GPU
    "dynamight": "2-00:00:00",  # choice: hundreds of epochs on one GPU, like VDAM
}

Tables = list[tuple[str, dict[str, object]]]
Rows = dict[str, dict[str, object]]


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of node, as a node type of the generated profile."""

    name: str
    partition: str
    count: int
    cpus: int
    memory_mb: int
    gpu_type: str = ""
    gpus: int = 0
    scratch_gb: int = 0
    constraint: str = ""
    safe_threads: int = 1
    max_minutes: float = float("inf")  # the partition's MaxTime

    @property
    def share_mb(self) -> int:
        """One CPU's share of the node's memory: what Slurm's --mem-per-cpu can give every CPU at once."""
        return max(1, self.memory_mb // max(1, self.cpus))


@dataclass(frozen=True, slots=True)
class Site:
    """What the recipes need besides the node kinds."""

    scratch_gres: str  # "" when the cluster has none
    scratch_dir: str  # "Copy particles to scratch directory:" (RELION_SCRATCH_DIR)
    whole_node: str  # Memory Per Thread that means all of the node's memory with --exclusive


def walltime(recipe: str, kinds: Sequence[Kind]) -> str:
    want = minutes(WALLTIMES[recipe]) or 60.0
    limit = min((k.max_minutes for k in kinds), default=float("inf"))
    return WALLTIMES[recipe] if want <= limit else show_minutes(limit)


def _scratch(kind: Kind, site: Site) -> str:
    return f"{site.scratch_gres}:{kind.scratch_gb}" if site.scratch_gres and kind.scratch_gb else ""


def _gres(*items: str) -> str:
    return ",".join(i for i in items if i)


def _constraint(kind: Kind) -> str:
    return f"--constraint={kind.constraint}" if kind.constraint and not kind.gpus else ""


def odd_sizes(total: int) -> list[int]:
    """2^k + 1 MPI procs (seed: 17, 33, 65, ...; refinement wants odd) that fit ``total`` task slots; 1 (RELION's
    non-MPI program) where not even 3 fit."""
    out = [n for n in (3, 5, 9, 17, 33, 65, 129, 257) if n <= total]
    return out[-5:] or [1]


def power_sizes(total: int, low: int = 2) -> list[int]:
    out = [n for n in (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048) if low <= n <= total]
    return out[-5:] or [low]


# ---------------------------------------------------------------------------------------------- rows per kind


def gpu_task_row(kind: Kind, recipe: str, kinds: Sequence[Kind], gpus_per_task: int) -> dict[str, object]:
    """MotionCor2, Gctf, Topaz: one task per GPU, 1 thread, a third of the node's memory over its GPUs (seed: 20g x 4
    tasks on a 240 GB node), the partition's GPUs by type."""
    per_node = kind.gpus // gpus_per_task
    row: dict[str, object] = {
        "mpi": [per_node * n for n in range(1, min(5, kind.count) + 1)],
        "threads": 1,
        "queue": kind.partition,
        "walltime": walltime(recipe, [kind]),
        "memory": f"{kind.memory_mb // 3 // max(1, per_node)}M",
        "gres": f"gpu:{kind.gpu_type}:{kind.gpus}",
        "directives": f"--ntasks-per-node={per_node}",
    }
    if len(row["mpi"]) == 1:  # type: ignore[arg-type]
        row["mpi"] = per_node
    return row


def homogeneous_row(kind: Kind, recipe: str, kinds: Sequence[Kind], site: Site) -> dict[str, object]:
    """relion_refine --gpu on whole nodes: GPUs + 1 tasks per node (seed: Class2D & Class3D on GPUs, 20 procs =
    4 nodes x 5 with --exclusive and Memory Per Thread 0), the GPU type's safe threads."""
    per_node = kind.gpus + 1
    nodes = min(4, kind.count)
    return {
        "mpi": per_node * nodes,
        "threads": max(1, min(kind.safe_threads, kind.cpus // per_node)),
        "queue": kind.partition,
        "walltime": walltime(recipe, [kind]),
        "memory": site.whole_node,
        "gres": _gres(_scratch(kind, site), f"gpu:{kind.gpu_type}:{kind.gpus}"),
        "directives": f"--nodes={nodes} --ntasks-per-node={per_node} --exclusive",
    }


def single_gpu_node_row(kind: Kind, recipe: str, kinds: Sequence[Kind], site: Site, threads: int) -> dict[str, object]:
    """One process on one whole GPU node (seed: VDAM optimization, 1 proc, --exclusive, Memory Per Thread 0)."""
    return {
        "mpi": 1,
        "threads": max(1, min(kind.cpus, threads)),
        "queue": kind.partition,
        "walltime": walltime(recipe, [kind]),
        "memory": site.whole_node,
        "gres": _gres(_scratch(kind, site), f"gpu:{kind.gpu_type}:{kind.gpus}"),
        "directives": "--exclusive",
    }


def one_gpu_row(kind: Kind, recipe: str, kinds: Sequence[Kind], threads: int | None) -> dict[str, object]:
    """ModelAngelo, DynaMight: one process on one GPU (their GUI boxes take one GPU by default), that GPU's share of
    the node's CPUs and memory."""
    cpus = max(1, kind.cpus // max(1, kind.gpus))
    row: dict[str, object] = {"mpi": 1}
    if threads is not None:
        row["threads"] = max(1, min(cpus, threads))
    row.update(
        queue=kind.partition,
        walltime=walltime(recipe, [kind]),
        memory=f"{kind.memory_mb // max(1, kind.gpus) // (threads or 1)}M",
        gres=f"gpu:{kind.gpu_type}:1",
    )
    return row


def cpu_row(kind: Kind, recipe: str, kinds: Sequence[Kind], threads: int | None, mpi: object) -> dict[str, object]:
    """A CPU program on CPU nodes: the seed's threads (cut to the node), each CPU's share of the node's memory
    (seed: Class2D/3D on CPUs, 4200m on 56-CPU 247 GB nodes)."""
    row: dict[str, object] = {"mpi": mpi}
    if threads is not None:
        row["threads"] = threads
    row.update(queue=kind.partition, walltime=walltime(recipe, [kind]), memory=f"{kind.share_mb}M")
    return row


def slots(kind: Kind, threads: int) -> int:
    """MPI tasks of ``threads`` CPUs that every node of this kind together can hold."""
    return max(1, kind.count * (kind.cpus // max(1, threads)))


def mpi_rule(rule: str, total: int) -> object:
    """'odd': the largest 2^k+1 that fits (refinement); 'range': 2 to all slots (seed: 128-2048); a number: that
    many, at most all slots (seed: ctffind 128)."""
    if rule == "odd":
        return odd_sizes(total)[-1]
    if rule == "range":
        return f"2-{total}" if total > 2 else total
    return max(1, min(int(rule), total))


def cpu_rows(kinds: Sequence[Kind], recipe: str, site: Site, threads: int | None, mpi: str, scratch: bool) -> Rows:
    """One row per CPU node kind, the node's feature as --constraint (seed: --constraint=x2695)."""
    rows: Rows = {}
    for kind in kinds:
        cut = None if threads is None else max(1, min(threads, kind.cpus))
        row = cpu_row(kind, recipe, kinds, cut, mpi_rule(mpi, slots(kind, cut or 1)))
        gres = _scratch(kind, site) if scratch else ""
        if gres:
            row["gres"] = gres
        if _constraint(kind):
            row["directives"] = _constraint(kind)
        rows[kind.name] = row
    return rows


# ---------------------------------------------------------------------------------------------- recipes


@dataclass(frozen=True, slots=True)
class Recipe:
    key: str
    title: str
    job: str  # the RELION job type (jobtypes.JOB_TYPES name)
    source: str
    tabs: dict[str, dict[str, str]]
    rows: Rows
    dirs: tuple[str, ...]  # the template directories built from it
    notes: tuple[str, ...] = ()

    @property
    def has_threads(self) -> bool:
        job = jobtypes.resolve(self.job)
        return job.has_threads if job else True


def _compute_tab(site: Site, gpu: bool) -> dict[str, dict[str, str]]:
    tab = {"Copy particles to scratch directory:": site.scratch_dir} if site.scratch_gres else {}
    tab["Use GPU acceleration?"] = "yes" if gpu else "no"
    if gpu:
        tab["Which GPUs to use:"] = ""  # empty: RELION maps the ranks to the GPUs Slurm gave the job
    return {"Compute": tab}


def _by_kind(kinds: Sequence[Kind], row: object) -> Rows:
    return {k.name: row(k) for k in kinds}  # type: ignore[operator]


def gpu_recipes(kinds: Sequence[Kind], site: Site) -> list[Recipe]:
    """The GPU programs, one row per GPU node kind."""
    seed = "generated by site init from the seed's rule: "
    motion = {"Use RELION's own implementation?": "no", "Use GPU acceleration?": "yes", "Which GPUs to use:": ""}
    return [
        Recipe(
            "motioncor2",
            "MotionCor2 with GPUs",
            "MotionCorr",
            seed + "MotionCor2 with GPUs, one task per GPU",
            {"Motion": motion},
            _by_kind(kinds, lambda k: gpu_task_row(k, "motioncor2", kinds, 1)),
            ("MotionCor2",),
        ),
        Recipe(
            "class_gpu",
            "Class2D & Class3D on GPUs",
            "Class2D",
            seed + "Class2D & Class3D on GPUs, homogeneous+1",
            _compute_tab(site, True),
            _by_kind(kinds, lambda k: homogeneous_row(k, "class_gpu", kinds, site)),
            ("Class2D_gpu", "Class3D_gpu"),
            ("Number of MPI procs = ntasks-per-node x nodes: one worker per GPU plus the leader (relion-launch).",),
        ),
        Recipe(
            "refine_gpu",
            "3D auto-refine and multi-body refinement on GPUs",
            "Refine3D",
            seed + "Class2D & Class3D on GPUs (same program: relion_refine_mpi --gpu), homogeneous+1",
            _compute_tab(site, True),
            _by_kind(kinds, lambda k: homogeneous_row(k, "refine_gpu", kinds, site)),
            ("Refine3D_gpu", "MultiBody_gpu"),
            ("relion-launch runs 1 + nodes x GPUs ranks: always odd, as refinement wants.",),
        ),
        *_gpu_single(kinds, site),
    ]


def _gpu_single(kinds: Sequence[Kind], site: Site) -> list[Recipe]:
    """The GPU programs that run as one process."""
    seed = "generated by site init from the seed's rule: "
    topaz = {"Perform topaz picking?": "Yes", "Perform topaz training?": "No"}
    return [
        Recipe(
            "vdam",
            "VDAM optimization (3D initial model)",
            "InitialModel",
            seed + "VDAM optimization, 4 threads per safe GPU thread",
            _compute_tab(site, True),
            _by_kind(kinds, lambda k: single_gpu_node_row(k, "vdam", kinds, site, 4 * k.safe_threads)),
            ("InitialModel",),
            ("VDAM uses no MPI but one process with threads on one GPU node.",),
        ),
        Recipe(
            "topaz_picking",
            "Picking with Topaz",
            "AutoPick",
            seed + "Using Topaz, Picking with Topaz: one GPU",
            {"Topaz": topaz, **_compute_tab(site, True)},
            _by_kind(
                kinds, lambda k: {**gpu_task_row(k, "topaz_picking", kinds, k.gpus), "gres": f"gpu:{k.gpu_type}:1"}
            ),
            ("AutoPick_gpu",),
            ("Topaz runs on a single GPU only: more than one makes the job fail.",),
        ),
        Recipe(
            "modelangelo",
            "ModelAngelo model building (RELION 5)",
            "ModelAngelo",
            "generated by site init: one process on one GPU (ModelAngelo has no MPI or threads boxes)",
            {},
            _by_kind(kinds, lambda k: one_gpu_row(k, "modelangelo", kinds, None)),
            ("ModelAngelo",),
        ),
        Recipe(
            "dynamight",
            "DynaMight (RELION 5)",
            "DynaMight",
            "generated by site init: one process on one GPU (DynaMight uses a single GPU), that GPU's CPUs",
            {},
            _by_kind(kinds, lambda k: one_gpu_row(k, "dynamight", kinds, k.cpus // max(1, k.gpus))),
            ("DynaMight",),
        ),
    ]


def _cpu_refinement(kinds: Sequence[Kind], site: Site) -> list[Recipe]:
    """relion_refine without --gpu, polishing and CTF refinement: MPI by node slots, threads per the seed."""
    seed = "generated by site init from the seed's rule: "
    cpu = _compute_tab(site, False)
    return [
        Recipe(
            "class_cpu",
            "Class2D & Class3D on CPUs",
            "Class2D",
            seed + "Class2D & Class3D on CPUs, 8 threads",
            cpu,
            cpu_rows(kinds, "class_cpu", site, 8, "range", True),
            ("Class2D_cpu", "Class3D_cpu"),
        ),
        Recipe(
            "refine",
            "3D auto-refine, multi-body refinement and Bayesian polishing",
            "Refine3D",
            seed + "3D auto-refine and Bayesian polishing, 16 threads, odd MPI procs",
            cpu,
            cpu_rows(kinds, "refine", site, 16, "odd", True),
            ("Refine3D_cpu", "MultiBody_cpu", "Polish"),
            ("The number of MPI procs must be odd.",),
        ),
        Recipe(
            "ctfrefine",
            "CTF refinement",
            "CtfRefine",
            "generated by site init: like polishing (biowulf's choice)",
            {},
            cpu_rows(kinds, "ctfrefine", site, 8, "odd", False),
            ("CtfRefine",),
        ),
    ]


def cpu_recipes(kinds: Sequence[Kind], site: Site, gpus: bool) -> list[Recipe]:
    """The CPU programs, one row per CPU node kind; InitialModel on CPUs only where no node has GPUs."""
    seed = "generated by site init from the seed's rule: "
    out = [
        Recipe(
            "motcorrel",
            "MotCorRel on CPUs only",
            "MotionCorr",
            seed + "MotCorRel on CPUs only, 8 threads",
            {"Motion": {"Use RELION's own implementation?": "yes", "Use GPU acceleration?": "no"}},
            cpu_rows(kinds, "motcorrel", site, 8, "range", False),
            ("MotCorRel",),
            (
                "Memory per MPI task is at least width x height x (frames + 2 + threads) x 4 bytes: "
                "relion-qsub recommend motcorrel --width W --height H --frames F.",
            ),
        ),
        Recipe(
            "ctffind",
            "CTF estimation with CTFFIND-4.1",
            "CtfFind",
            seed + "CTFRefinement using cttfind4, 128 procs",
            {"CTFFIND-4.1": {"Use CTFFIND-4.1?": "yes"}},
            cpu_rows(kinds, "ctffind", site, None, "128", False),
            ("CtfFind",),
        ),
        Recipe(
            "autopick_log",
            "Laplacian-of-Gaussian picking",
            "AutoPick",
            "generated by site init: like ctffind, per micrograph",
            {"Laplacian": {"OR: use Laplacian-of-Gaussian?": "Yes"}},
            cpu_rows(kinds, "autopick_log", site, None, "16", False),
            ("AutoPick_cpu",),
        ),
        Recipe(
            "localres",
            "Local resolution",
            "LocalRes",
            "generated by site init: one map (biowulf's choice, 16 procs)",
            {},
            cpu_rows(kinds, "localres", site, None, "16", False),
            ("LocalRes",),
        ),
        *_cpu_refinement(kinds, site),
    ]
    if not gpus:
        cpu = _compute_tab(site, False)
        out.append(
            Recipe(
                "initialmodel_cpu",
                "3D initial model on CPUs",
                "InitialModel",
                "generated by site init: no GPU nodes",
                cpu,
                cpu_rows(kinds, "class_cpu", site, 8, "1", True),
                ("InitialModel",),
            )
        )
    return out


# ---------------------------------------------------------------------------------------------- template sets

# How a recipe's fully filled templates (01_tiny.sh ...) grow: by whole nodes (homogeneous+1), through the row's
# MPI choices, by powers of two or odd counts up to every slot of the node kind, or not at all (one process).
SHAPES = {
    "motioncor2": "choices",
    "topaz_picking": "choices",
    "class_gpu": "nodes",
    "refine_gpu": "nodes",
    "vdam": "single",
    "modelangelo": "single",
    "dynamight": "single",
    "initialmodel_cpu": "single",
    "motcorrel": "range",
    "class_cpu": "range",
    "refine": "odd",
    "ctfrefine": "odd",
    "ctffind": "fixed",
    "autopick_log": "fixed",
    "localres": "fixed",
}


def sizes(recipe: Recipe, kind: Kind) -> dict[str, dict[str, object]]:
    """The template sizes of ``recipe`` on ``kind``, by its shape."""
    row = recipe.rows[kind.name]
    shape = SHAPES[recipe.key]
    if shape == "nodes":
        per_node = kind.gpus + 1
        counts = range(1, min(5, kind.count) + 1)
        made = [
            {"mpi": n * per_node, "directives": f"--nodes={n} --ntasks-per-node={per_node} --exclusive"} for n in counts
        ]
    elif shape == "choices":
        mpi = row["mpi"]
        made = [{"mpi": n} for n in (mpi if isinstance(mpi, list) else [mpi])]
    elif shape == "single":
        quarter = (minutes(str(row["walltime"])) or 60.0) / 4
        return {"tiny": {"walltime": show_minutes(quarter)}, "medium": {}}
    else:
        threads = int(row.get("threads", 1))  # type: ignore[call-overload]
        total = slots(kind, threads)
        if shape == "odd":
            counts_ = odd_sizes(total)
        elif shape == "range":
            counts_ = power_sizes(total)
        else:
            top = int(row["mpi"])  # type: ignore[call-overload]
            counts_ = sorted({max(1, top // 4), max(1, top // 2), top})
        made = [{"mpi": n} for n in counts_]
    return dict(zip(SIZES, made, strict=False))


def template_kind(recipe: Recipe, kinds: Sequence[Kind]) -> Kind:
    """The node kind a recipe's templates are built for: the one with the most nodes (first on a tie)."""
    have = [k for k in kinds if k.name in recipe.rows]
    return max(have, key=lambda k: k.count)


def tables(gpu: Sequence[Kind], cpu: Sequence[Kind], site: Site) -> Tables:
    """Every recipe and template set, as TOML tables in a stable order."""
    recipes = (gpu_recipes(gpu, site) if gpu else []) + cpu_recipes(cpu or gpu, site, bool(gpu))
    out: Tables = []
    for recipe in recipes:
        key = f"recipes.{recipe.key}"
        head: dict[str, object] = {"title": recipe.title, "relion_job": recipe.job, "source": recipe.source}
        head["has_threads"] = recipe.has_threads
        if recipe.notes:
            head["notes"] = list(recipe.notes)
        out.append((key, head))
        out += [(f"{key}.tabs.{_quoted(tab)}", dict(boxes)) for tab, boxes in recipe.tabs.items()]
        for node, row in recipe.rows.items():
            out.append((f"{key}.rows.{node}", {k: v for k, v in row.items() if k != "threads" or recipe.has_threads}))
    for recipe in recipes:
        kind = template_kind(recipe, [*gpu, *cpu])
        for directory in recipe.dirs:
            out.append((f"job_templates.{directory}", {"recipe": recipe.key, "node_type": kind.name}))
            out.append((f"job_templates.{directory}.sizes", dict(sizes(recipe, kind))))
    return out


def _quoted(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() else f'"{name}"'
