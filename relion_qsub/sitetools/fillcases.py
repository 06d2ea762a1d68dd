"""Fill every generated template the way RELION fills it (relionfill.py), for `site validate --live` and the tests.

A case is one ``run_submit.script`` RELION would write from one generated template: the fully filled size
templates with their own MPI procs x threads, the exclusive templates with a CPU request, and the common template
with every recipe row of the profile typed into the Running tab (the GUI fields the module defines).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import profile
from ..profile import recipes
from ..relion.jobdir import SUBMIT_SCRIPT
from .relionfill import relion_command
from .templates import Rendered, plan

INSTALL_DIR = "/opt/relion-qsub/templates"  # what the golden files are rendered for

# RELION job type -> (program, arguments) of a RELION-like command; {jobdir} and {threads} filled in.
PROGRAMS = {
    "MotionCorr": ("relion_run_motioncorr", "--i Import/job001/movies.star --o {jobdir} --j {threads}"),
    "CtfFind": ("relion_run_ctffind", "--i MotionCorr/job002/corrected_micrographs.star --o {jobdir}"),
    "Class2D": ("relion_refine", "--o {jobdir}run --i particles.star --K 50 --j {threads}"),
    "Refine3D": (
        "relion_refine",
        "--o {jobdir}run --auto_refine --split_random_halves --i particles.star --j {threads}",
    ),
    "InitialModel": ("relion_refine", "--o {jobdir}run --grad --denovo_3dref --i particles.star --j {threads}"),
    "AutoPick": ("relion_autopick", "--i micrographs.star --odir {jobdir} --topaz_extract"),
    "PseudoSubtomo": ("relion_tomo_subtomo", "--o {jobdir} --j {threads}"),
    "CtfRefine": ("relion_ctf_refine", "--i Refine3D/job020/run_data.star --o {jobdir} --fit_defocus --j {threads}"),
    "LocalRes": ("relion_postprocess", "--locres --i Refine3D/job020/run_half1_class001_unfil.mrc --o {jobdir}relion"),
    "Class3D": ("relion_refine", "--o {jobdir}run --i particles.star --ref ref.mrc --K 4 --j {threads}"),
    "MultiBody": (
        "relion_refine",
        "--continue Refine3D/job020/run_it017_optimiser.star --o {jobdir}run --multibody_masks bodies.star "
        "--j {threads}",
    ),
    "Polish": ("relion_motion_refine", "--i CtfRefine/job021/particles_ctf_refine.star --o {jobdir} --j {threads}"),
    # RELION 5 (pipeline_jobs.cpp getCommandsModelAngeloJob / getCommandsDynaMightJob): python programs, no MPI.
    "ModelAngelo": ("relion_python_modelangelo", "build -v PostProcess/job030/postprocess.mrc -o {jobdir} -d 0"),
    "DynaMight": ("relion_python_dynamight", "optimize-deformations --output-directory {jobdir} --n-threads {threads}"),
}
NO_MPI = ("ModelAngelo", "DynaMight")  # RelionJob::initialise: has_mpi = false


@dataclass(frozen=True)
class Case:
    name: str
    template: str  # relative path in the rendered tree
    jobdir: str
    commands: tuple[str, ...]
    mpi: int
    threads: int
    queue: str
    extras: dict[int, str]


def commands_for(relion_job: str, jobdir: str, mpi: int, threads: int, gpu: bool) -> tuple[str, ...]:
    program, args = PROGRAMS[relion_job]
    args = args.format(jobdir=jobdir, threads=threads) + (' --gpu ""' if gpu else "")
    return (relion_command(program, args, jobdir=jobdir, mpi=mpi, mpi_capable=relion_job not in NO_MPI),)


def uses_gpus(row: recipes.Row, node: recipes.NodeType | None) -> bool:
    """Whether RELION would be told --gpu: the row asks GPUs of a GPU node (a CPU program on a GPU node does not)."""
    asks = any(item.split(":")[0] == "gpu" for item in row.gres.split(",")) if row.gres else False
    return bool(node and node.has_gpus and asks)


def default_extras(site: profile.Site) -> dict[int, str]:
    """The GUI fields as a freshly loaded module shows them (RELION_QSUB_EXTRAn_DEFAULT)."""
    return {f.number: f.default for f in site.profile.fields}


def row_extras(site: profile.Site, row: recipes.Row) -> dict[int, str]:
    """A recipe row typed into the GUI fields (the first SBATCH Directives box takes the directives)."""
    extras = {f.number: "" for f in site.profile.fields}
    for option, value in (
        ("time", row.walltime),
        ("mem-per-cpu", row.memory),
        ("gres", row.gres),
        ("", row.directives),
    ):
        field = site.profile.field_for(option)
        if field is not None:
            extras[field.number] = value
    return extras


def cases(site: profile.Site, rendered: list[Rendered]) -> list[Case]:
    out: list[Case] = []
    by_kind = {r.path: r for r in rendered}
    for r in rendered:
        if r.kind == "size":
            assert r.mpi is not None and r.threads is not None
            recipe, node = site.profile.recipes[r.recipe], site.profile.node_types[r.node_type]
            jobdir = f"{recipe.relion_job}/job{len(out) + 1:03d}/"
            cmds = commands_for(recipe.relion_job, jobdir, r.mpi, r.threads, uses_gpus(recipe.row(node.name), node))
            out.append(
                Case(r.path, r.path, jobdir, cmds, r.mpi, r.threads, site.profile.queue.name, default_extras(site))
            )
        elif r.kind == "exclusive":
            node = site.profile.node_types[r.node_type]
            threads = min(8, node.cpus)
            jobdir = f"Class2D/job{len(out) + 1:03d}/"
            cmds = commands_for("Class2D", jobdir, 4, threads, False)
            out.append(Case(r.path, r.path, jobdir, cmds, 4, threads, site.profile.queue.name, default_extras(site)))
    assert "common.sh" in by_kind
    jobdir = "Class2D/job900/"
    out.append(
        Case(
            "common.sh-defaults",
            "common.sh",
            jobdir,
            commands_for("Class2D", jobdir, 2, 1, False),
            2,
            1,
            site.profile.queue.name,
            default_extras(site),
        )
    )
    for key, recipe in site.profile.recipes.items():
        for node_name, row in recipe.rows.items():
            jobdir = f"{recipe.relion_job}/job{len(out) + 1:03d}/"
            row_node = site.profile.node_types.get(node_name)
            mpi, threads = row.mpi.value, row.threads or 1
            cmds = commands_for(recipe.relion_job, jobdir, mpi, threads, uses_gpus(row, row_node))
            out.append(
                Case(
                    f"common.sh-{key}-{node_name}",
                    "common.sh",
                    jobdir,
                    cmds,
                    mpi,
                    threads,
                    row.queue,
                    row_extras(site, row),
                )
            )
    return out


def render(site: profile.Site) -> list[Rendered]:
    return plan(site, INSTALL_DIR)


def fill_case(case: Case, rendered: list[Rendered]) -> str:
    from .relionfill import fill

    text = next(r.text for r in rendered if r.path == case.template)
    return fill(
        text,
        jobdir=case.jobdir,
        commands=list(case.commands),
        mpi=case.mpi,
        threads=case.threads,
        queue=case.queue,
        extras=case.extras,
    )


def write_project(case: Case, script: str, project: Path) -> Path:
    """Lay the filled script out as RELION does: <project>/<jobdir>run_submit.script."""
    job = project / case.jobdir
    job.mkdir(parents=True, exist_ok=True)
    path = job / SUBMIT_SCRIPT
    path.write_text(script)
    return path
