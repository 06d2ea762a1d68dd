"""RELION's job types as users name them (issue 22): one table, read by ``site init`` and ``recommend``.

Each entry is a job type RELION's pipeliner knows, by its directory name (pipeline_jobs.h, ``PROC_*_DIRNAME``: the
name in ``Class3D/job012/``), its pipeline label (``PROC_*_LABELNEW``: ``relion.class3d``), whether its Running tab
has "Number of MPI procs" and "Number of threads" (pipeline_jobs.cpp, ``RelionJob::initialise``: ``has_mpi`` and
``has_thread`` per job type), and the other words people use for it (the GUI's job-type list, the tutorial's section
titles). ``resolve`` maps any of them, in any case and with or without spaces, dashes or the ``relion.`` prefix, to
the entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class JobType:
    name: str  # RELION's directory name: MotionCorr, CtfFind, Class3D, ...
    label: str  # RELION's pipeline label (job.star _rlnJobTypeLabel): relion.class3d
    has_mpi: bool  # RelionJob::initialise: the Running tab has "Number of MPI procs"
    has_threads: bool  # ... and "Number of threads"
    words: tuple[str, ...] = ()  # what else people call it
    since: str = "3.1"  # the first RELION release with it


JOB_TYPES = (
    JobType(
        "MotionCorr",
        "relion.motioncorr",
        True,
        True,
        ("motion", "motion correction", "motioncor", "motioncor2", "motcorrel"),
    ),
    JobType("CtfFind", "relion.ctffind", True, False, ("ctf", "ctf estimation", "ctffind4", "gctf")),
    JobType("AutoPick", "relion.autopick", True, False, ("auto-picking", "picking", "pick", "topaz")),
    JobType("Class2D", "relion.class2d", True, True, ("2d classification", "2d class", "2d")),
    JobType("Class3D", "relion.class3d", True, True, ("3d classification", "3d class", "3d")),
    JobType("Refine3D", "relion.refine3d", True, True, ("3d auto-refine", "auto-refine", "3d refine", "autorefine")),
    JobType("InitialModel", "relion.initialmodel", True, True, ("3d initial model", "initial model", "vdam")),
    JobType("Polish", "relion.polish", True, True, ("bayesian polishing", "polishing", "motion refine")),
    JobType("CtfRefine", "relion.ctfrefine", True, True, ("ctf refinement",)),
    JobType("LocalRes", "relion.localres", True, False, ("local resolution", "resmap")),
    JobType("MultiBody", "relion.multibody", True, True, ("multi-body refinement", "multi-body", "multibody")),
    # RELION 5: pipeline_jobs.cpp RelionJob::initialise: DynaMight has_mpi = false, has_thread = true; ModelAngelo
    # neither (one process on the GPUs its "Which GPUs to use" box names).
    JobType("ModelAngelo", "modelangelo", False, False, ("model angelo", "model building"), since="5.0"),
    JobType("DynaMight", "dynamight", False, True, ("dyna might",), since="5.0"),
)

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def _key(text: str) -> str:
    text = text.strip().lower()
    text = text.removeprefix("relion.")
    return _NOT_ALNUM.sub("", text)


_BY_KEY: dict[str, JobType] = {}
for _job in JOB_TYPES:
    for _word in (_job.name, _job.label, *_job.words):
        _BY_KEY.setdefault(_key(_word), _job)


def resolve(text: str) -> JobType | None:
    """The job type ``text`` names (``Class3D``, ``class3d``, ``relion.class3d``, ``3D classification``), else None."""
    return _BY_KEY.get(_key(text))


def of_directory(directory: str) -> JobType | None:
    """The job type of a template directory: ``Class3D_gpu`` -> Class3D; ``MotCorRel`` -> MotionCorr via the
    caller's recipe (None here)."""
    return resolve(directory) or resolve(directory.split("_", 1)[0])


def names() -> str:
    return ", ".join(j.name for j in JOB_TYPES)
