"""Does the job fit its data? relion_refine's particles against the scratch, memory and GPU memory the job asks.

The particles file is relion_refine's ``--i`` (relative to the project directory, where RELION runs the Queue
submit command); it is read once per submission, only when a check needs it (``--scratch_dir``, ``--preread_images``
or a GPU auto-refine), and cheaply (relion_qsub.formats.particles). What RELION does with the data, and so each
limit, is in relion_qsub.sizing with the RELION source it comes from. A file that cannot be read is one warning
(``data_input``), never a refusal by itself; the other checks then say nothing.
"""

from __future__ import annotations

import dataclasses
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .. import gpus, sizing
from ..relion import gui, jobdir
from ..script import Script
from . import fit, scratch
from .core import Context, Report, as_int, effective, gres_entries, implements

if TYPE_CHECKING:
    from ..formats.particles import Particles


class Data(NamedTuple):
    """The relion_refine command that needs sizing and its particles (or why they could not be read)."""

    line: int  # the command's line in the script
    refine: sizing.Refine
    particles: Particles | None
    problem: str | None


def _needs_data(job: sizing.Refine) -> bool:
    scratch_copy = job.scratch_dir is not None and not job.preread
    return scratch_copy or job.preread or (job.gpu and job.auto_refine and job.mpi)


def project_dir(script: Script) -> Path:
    """Where RELION runs the job (its paths are relative to it): above the job dir, else the current directory."""
    if script.path:
        found = jobdir.of_script(Path(script.path))
        if found is not None and jobdir.is_job_dir_name(found.name):
            return found.parent.parent
    return Path()


def continued_input(script: Script) -> str | None:
    """A continued run's particles: relion_refine has --continue instead of --i; RELION's job.star (written before
    every run, src/pipeliner.cpp runJob) still names the input the user chose, joboption ``fn_img``."""
    saved = gui.job_star(jobdir.of_script(Path(script.path))) if script.path else None
    return saved.text("fn_img") if saved is not None else None


@lru_cache(maxsize=16)
def _read(path: str, project: str, stamp: tuple[int, int]) -> Particles | str:
    """The particles of ``path``, or why not; cached by (mtime, size): the checks ask once each per submission."""
    del stamp  # part of the cache key only
    # The reader (STAR, MRC header) is imported only for a job whose particles exist: `check` of any other job, and
    # a missing input (one warning), pay nothing for it.
    from ..formats import particles as particles_mod
    from ..formats.particles import ParticlesError

    try:
        return particles_mod.read(path, project)
    except ParticlesError as exc:
        return str(exc)


def job_data(script: Script) -> Data | None:
    """The first relion_refine command whose scratch, pre-read or GPU box depends on its particles."""
    for r in scratch.refines(script):
        job = sizing.refine(r.line.text.split())
        if job is None or not _needs_data(job):
            continue
        star = job.star or continued_input(script)
        if not star:
            continue
        project = project_dir(script)
        path = project / star
        try:
            st = os.stat(path)
        except OSError as exc:
            named = "--i" if job.star else "fn_img in job.star"
            why = f"cannot read the particles file {path} ({named}): {exc.strerror}"
            return Data(r.line.number, job, None, why)
        found = _read(str(path), str(project), (st.st_mtime_ns, st.st_size))
        if isinstance(found, str):
            return Data(r.line.number, job, None, found)
        return Data(r.line.number, job, dataclasses.replace(found, path=star), None)  # named as the job names it
    return None


def _where(script: Script, ctx: Context, option: str) -> str:
    return gui.box(ctx, script, option, fit.size_guard(script) is not None)


@implements("data_input")
def data_input(script: Script, ctx: Context, report: Report) -> None:
    data = job_data(script)
    if data is not None and data.problem is not None:
        report.note(data.line, f"{data.problem}: the job's scratch, memory and GPU box are not sized from its data")


@implements("data_scratch")
def data_scratch(script: Script, ctx: Context, report: Report) -> None:
    data = job_data(script)
    if data is None or data.particles is None or data.refine.scratch_dir is None:
        return
    site = ctx.site.scratch
    root = site.root.rstrip("/") + "/"
    if not data.refine.scratch_dir.startswith(root):
        return  # not the node-local scratch the job allocates: its size is not known here
    gres = next((g for g in gres_entries(script, ctx) if g.name == site.gres and g.count is not None), None)
    if gres is None or gres.count is None:
        return
    message = sizing.scratch_verdict(data.particles, data.refine, gres.count, _where(script, ctx, "gres"), site.gres)
    if message is None:
        return
    part = fit.target(script, ctx)
    need = sizing.scratch_needed_gb(data.particles, data.refine.keep_free_gb)
    if part is not None and part.scratch_gb and need > part.scratch_gb:
        message += f" (more than the {part.scratch_gb} GB of a partition {part.name!r} node: only part can be copied)"
    report.problem(data.line, message)


@implements("preread_memory")
def preread_memory(script: Script, ctx: Context, report: Report) -> None:
    data = job_data(script)
    if data is None or data.particles is None or not data.refine.preread:
        return
    asked = fit.memory_request(script, ctx)
    if asked is None:
        return  # no memory option: the partition's default, which the profile does not know
    name, _, node_mb, factor = asked
    ranks = fit.cpus_per_node(lambda option: effective(script, ctx, option))[1]  # None: Slurm places them
    per = (factor, {"mem": "", "mem-per-cpu": "CPUs", "mem-per-gpu": "GPUs"}[name])
    message = sizing.preread_verdict(data.particles, data.refine, ranks, node_mb, per, _where(script, ctx, name))
    if message is not None:
        report.problem(data.line, message)


def _gpu_memory(script: Script, ctx: Context) -> tuple[str, float] | None:
    """(GPU type, bytes of one GPU) the job gets: the typed gres, else the largest the partition may give."""
    typed = next((g.type for g in gres_entries(script, ctx) if g.name == "gpu" and g.type), None)
    asked = gpus.per_node(lambda option: effective(script, ctx, option))
    part = fit.target(script, ctx)
    kinds = [typed] if typed else [asked[0]] if asked and asked[0] else list(part.gpu_types) if part else []
    known = [(k, ctx.site.gpu_memory_mb.get(k, 0)) for k in kinds]
    best = max(known, key=lambda item: item[1], default=None)
    return (best[0], best[1] * sizing.MIB) if best and best[1] else None


def _gpus_on_node(script: Script, ctx: Context) -> int:
    gres = next((g for g in gres_entries(script, ctx) if g.name == "gpu" and g.count), None)
    asked = gpus.per_node(lambda option: effective(script, ctx, option))
    part = fit.target(script, ctx)
    return (gres.count if gres else None) or (asked[1] if asked else 0) or (part.gpus_per_node if part else 0) or 1


def _workers_on_busiest_node(script: Script, ctx: Context) -> int:
    """relion_refine_mpi's followers on the node with the most of them (the leader, rank 0, is on the first)."""

    def get(option: str) -> str | None:
        return effective(script, ctx, option)

    tasks = fit.cpus_per_node(get)[1] or 1
    nodes = as_int(get("nodes")) or 1
    plus_one = nodes > 1 and tasks > 2 and tasks % 2 == 1  # relion-launch: leader alone-extra, k-1 workers a node
    return tasks - 1 if nodes == 1 or plus_one else tasks


@implements("gpu_box")
def gpu_box(script: Script, ctx: Context, report: Report) -> None:
    data = job_data(script)
    if data is None or data.particles is None:
        return
    gpu = _gpu_memory(script, ctx)
    if gpu is None:
        return  # the profile does not say how much memory the GPU has
    shares = sizing.gpu_shares(_workers_on_busiest_node(script, ctx), _gpus_on_node(script, ctx))
    message = sizing.gpu_verdict(data.particles, data.refine, gpu[0], gpu[1], shares)
    if message is not None:
        report.problem(data.line, message)
