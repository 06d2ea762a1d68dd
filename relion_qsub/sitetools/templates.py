"""`relion-qsub templates build`: RELION queue templates rendered from the site recipes.

What Biowulf keeps by hand (``common.sh``, one directory per job type with ``01_tiny.sh`` ... ``05_xlarge.sh``,
``x2695_exclusive.sh``, ``lscratch_mon.sh``) generated for any site from its profile, with Jinja2 sources from the
package data in ``jinja/`` (``StrictUndefined``: a missing value is an error, never an empty string).

RELION reads a template line by line and replaces only its own placeholders (XXXmpinodesXXX, XXXthreadsXXX,
XXXqueueXXX, XXXextraNXXX, XXXnameXXX, XXXerrfileXXX, XXXoutfileXXX, XXXcommandXXX, ...; pipeline_jobs.cpp,
``saveJobSubmissionScript``). A line holding XXXcommandXXX is repeated once per command of the job, and a command
that is not a RELION MPI program is written bare, without the launcher prefix; so the launcher line holds nothing
but ``${RELION_STD_LAUNCHER} [options] XXXcommandXXX``. Output is deterministic: same profile, same bytes.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .. import profile
from ..argparser import Parser
from ..errors import InputError, ProfileError, UsageError
from ..fsio import atomic_write
from ..profile import recipes
from ..relion import gui

if TYPE_CHECKING:
    import jinja2

# Package data (pyproject.toml [tool.setuptools.package-data]), so a wheel carries them: found through
# importlib.resources, never relative to a checkout.
SOURCES = Path(str(importlib.resources.files(__package__) / "jinja"))
MONITOR = "lscratch_mon.sh"
MONITOR_LOG = "scratch_usage.log"


@dataclass(frozen=True)
class Rendered:
    """One output file and how RELION is meant to fill it (for the tests and the index)."""

    path: str  # relative to the output directory
    text: str
    kind: str  # common | size | exclusive | monitor | index
    mpi: int | None = None  # the request a fully filled template fixes (None: RELION's Running tab decides)
    threads: int | None = None
    recipe: str = ""
    node_type: str = ""

    @property
    def executable(self) -> bool:
        return self.kind == "monitor"


def _environment(sources: Path) -> jinja2.Environment:
    import jinja2  # lazily: only this subcommand needs it

    if not (sources / "common.sh.j2").is_file():
        raise InputError(
            f"template sources not found in {sources}: reinstall relion-qsub "
            "(its package data relion_qsub/sitetools/jinja/)"
        )
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(sources)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # shell scripts, not HTML
    )


def launch_line(site: profile.Site, memory: str | None) -> str:
    """``${RELION_STD_LAUNCHER} [--mem-per-cpu=...]``: the prefix RELION keeps only for RELION MPI commands."""
    line = "${" + site.profile.launcher.variable + "}"
    if site.profile.launcher.memory_option and memory:
        line += f" --mem-per-cpu={memory}"
    return line


def monitor_line(site: profile.Site, install_dir: str) -> str:
    """Start lscratch_mon.sh in the background, logging into the job directory (RELION fills XXXnameXXX).

    The monitor is a direct child of the job shell and watches the shell's pid (``$$``), and the shell's EXIT trap
    stops it. (``[ -x S ] && S ... &`` would run it in a background subshell that waits for it: a monitor watching
    its parent would then watch that subshell and never stop.)
    """
    if site.scratch.monitor_interval <= 0:
        return ""
    script = shlex.quote(f"{install_dir.rstrip('/')}/{MONITOR}")
    return (
        f"# Log local scratch use every {site.scratch.monitor_interval} s into <jobdir>{MONITOR_LOG}"
        " (stopped when this script ends).\n"
        f"if [ -x {script} ]; then\n"
        f'    {script} "{gui.NAME}{MONITOR_LOG}" {site.scratch.monitor_interval} $$ &\n'
        '    trap "kill $! 2>/dev/null" EXIT\n'
        "fi"
    )


def field_directive(field: recipes.GuiField) -> str:
    """``--time=XXXextra1XXX`` for an option field, the bare placeholder for an SBATCH Directives box."""
    return f"--{field.option}={field.placeholder}" if field.option else field.placeholder


def size_directives(size: recipes.Size) -> list[str]:
    lines = []
    if size.walltime:
        lines.append(f"--time={size.walltime}")
    lines.append(f"--mem-per-cpu={size.memory}")
    if size.gres:
        lines.append(f"--gres={size.gres}")
    if size.directives:
        lines.append(size.directives)
    return lines


def exclusive_directives(site: profile.Site, node: recipes.NodeType) -> list[str]:
    """Whole nodes: --exclusive alone gives neither all memory nor the scratch disk (seed), so ask for both."""
    lines = []
    time_field = site.profile.field_for("time")
    if time_field is not None:
        lines.append(field_directive(time_field))
    if node.constraint:
        lines.append(f"--constraint={node.constraint}")
    lines.append("--exclusive")
    # --mem-per-cpu (the site's memory policy: never --mem) x every CPU of the node = the node's memory.
    lines.append(f"--mem-per-cpu={node.mem_per_cpu_mb}M")
    if node.scratch_gb:
        lines.append(f"--gres={site.scratch.gres}:{node.scratch_gb}")
    return lines


def _size_templates(
    env: jinja2.Environment, base: dict[str, Any], site: profile.Site
) -> tuple[list[Rendered], list[dict[str, Any]]]:
    """<JobType>/01_tiny.sh ... per template set, and their rows for the index."""
    out, sized = [], []
    for tset in site.profile.template_sets:
        recipe = site.profile.recipes[tset.recipe]
        node = site.profile.node_types[tset.node_type]
        row = recipe.row(tset.node_type)
        for size in tset.sizes:
            name = f"{tset.directory}/{size.filename}"
            text = env.get_template("size.sh.j2").render(
                base,
                recipe=recipe,
                recipe_has_threads=row.threads is not None,
                node=node,
                row=row,
                size=size,
                name=name,
                source=recipe.source or f"recipe {recipe.key}",
                directives=size_directives(size),
                launch=launch_line(site, None if size.memory == site.profile.memory.whole_node else size.memory),
            )
            out.append(Rendered(name, text, "size", size.mpi, size.threads, recipe.key, node.name))
            sized.append({"name": name, "recipe": recipe.key, "node": node.name, "size": size})
    return out, sized


def _exclusive_templates(env: jinja2.Environment, base: dict[str, Any], site: profile.Site) -> list[Rendered]:
    """<node>_exclusive.sh: a whole node of each type the profile lists under exclusive."""
    out = []
    for node_name in site.profile.exclusive:
        node = site.profile.node_types[node_name]
        text = env.get_template("exclusive.sh.j2").render(
            base,
            node=node,
            time_field=site.profile.field_for("time"),
            directives=exclusive_directives(site, node),
            launch=launch_line(site, f"{node.mem_per_cpu_mb}M"),
        )
        out.append(Rendered(f"{node_name}_exclusive.sh", text, "exclusive", node_type=node_name))
    return out


def plan(site: profile.Site, install_dir: str, sources: Path = SOURCES) -> list[Rendered]:
    """Every file of the template tree, rendered, in a stable order."""
    if not site.profile.fields:
        raise ProfileError(f"{site.path}: fields: missing; add [[fields]] tables (Walltime, Memory, Gres, ...)")
    env = _environment(sources)
    monitor = monitor_line(site, install_dir)
    memory_field = site.profile.field_for("mem-per-cpu")
    base: dict[str, Any] = {"site": site, "fields": site.profile.fields, "monitor": monitor, "scratch": site.scratch}
    out = [
        Rendered(
            "common.sh",
            env.get_template("common.sh.j2").render(
                base,
                field_directives=[field_directive(f) for f in site.profile.fields],
                launch=launch_line(site, memory_field.placeholder if memory_field else None),
            ),
            "common",
        )
    ]
    sizes, sized = _size_templates(env, base, site)
    exclusive = _exclusive_templates(env, base, site)
    out += sizes + exclusive
    interval = site.scratch.monitor_interval
    mon = env.get_template("lscratch_mon.sh.j2").render(
        base, interval=interval or 60, job_dir=site.scratch.job_dir, root=site.scratch.root
    )
    out.append(Rendered(MONITOR, mon, "monitor"))
    index = env.get_template("README.md.j2").render(
        base, exclusive=[r.path for r in exclusive], sized=sized, interval=interval
    )
    out.append(Rendered("README.md", index, "index"))
    return out


def _check_relative(path: str) -> PurePosixPath:
    rel = PurePosixPath(path)
    if rel.is_absolute() or not rel.parts or any(part in ("", ".", "..") for part in rel.parts):
        raise InputError(f"refusing to write {path!r}: not a plain path inside --out (check the site profile)")
    return rel


def stale(rendered: Sequence[Rendered], out: Path) -> list[str]:
    """Files under ``out`` the build would not write (a removed template set, an edit by hand), sorted. Hidden
    names (``.git``, a tool's marker file) are not templates anyone would pick, and are left out."""
    if not out.is_dir():
        return []
    keep = {str(_check_relative(r.path)) for r in rendered}
    found = []
    for root, dirs, files in os.walk(out):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        shown = [f for f in files if not f.startswith(".")] + [d for d in dirs if (Path(root) / d).is_symlink()]
        for name in sorted(shown):
            rel = (Path(root) / name).relative_to(out).as_posix()
            if rel not in keep:
                found.append(rel)
    return sorted(found)


def write(rendered: Sequence[Rendered], out: Path) -> list[Path]:
    """Write the tree under ``out``, each file replaced whole (never through a symlink). Files not in the tree are
    left alone: callers look at ``stale`` first."""
    written = []
    for item in rendered:
        rel = _check_relative(item.path)
        path = out.joinpath(*rel.parts)
        try:
            out.mkdir(parents=True, exist_ok=True)
            parent = out
            for part in rel.parts[:-1]:
                parent = parent / part
                if parent.is_symlink():
                    raise InputError(f"{parent} is a symlink: remove it (the build writes only real directories)")
                parent.mkdir(exist_ok=True)
            atomic_write(path, item.text, 0o755 if item.executable else 0o644)
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc.strerror}; choose another --out directory") from exc
        written.append(path)
    return written


def _shown(paths: Sequence[str], limit: int = 3) -> str:
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="relion-qsub templates",
        description="Render RELION queue templates (common.sh, one directory per job type with 01_tiny.sh ... "
        "05_xlarge.sh, <node>_exclusive.sh, lscratch_mon.sh) from a site recipes.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="render the template tree into --out")
    profile.add_site_option(build)
    build.add_argument("--out", required=True, type=Path, help="output directory (created)")
    build.add_argument(
        "--install-dir",
        help="where the templates will live, for the path of lscratch_mon.sh inside them (default: --out)",
    )
    build.add_argument(
        "--force",
        action="store_true",
        help="build even when --out holds files the build would not write (they are kept and listed)",
    )
    build.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    build.add_argument("-q", "--quiet", action="store_true", help="do not list the files written")
    return parser


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage
        return int(exc.code or 0) and 64
    site = profile.load(args.site)
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a directory")
    install_dir = args.install_dir or str(out.resolve())
    rendered = plan(site, install_dir)
    extra = stale(rendered, out)
    if extra and not args.force:
        raise UsageError(
            f"--out {out} holds {len(extra)} file(s) this build would not write ({_shown(extra)}): remove them, "
            "choose an empty --out, or pass --force to build and keep them"
        )
    written = write(rendered, out)
    if extra:
        print(
            f"relion-qsub templates: kept {len(extra)} file(s) this build did not write: {_shown(extra)}",
            file=sys.stderr,
        )
    if not args.quiet:
        for path in written:
            print(path)
    return 0
