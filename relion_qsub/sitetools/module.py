"""`relion-qsub module`: environment modulefiles (Lmod Lua, Environment Modules Tcl) from the site profile, and
`relion-qsub module install`: the site tree an admin installs once.

The module puts ``<prefix>/bin`` on PATH and sets every variable RELION's GUI reads for queued jobs (see
pipeline_jobs.cpp / gui_jobwindow.cpp): RELION_QSUB_COMMAND, RELION_QSUB_TEMPLATE, RELION_QSUB_EXTRA_COUNT,
RELION_QSUB_EXTRAn (+ _DEFAULT, _HELP), RELION_QUEUE_USE, RELION_QUEUE_NAME, RELION_QSUB_NRMPI,
RELION_QSUB_NRTHREADS, RELION_MPI_MAX, RELION_THREAD_MAX, RELION_MINIMUM_DEDICATED,
RELION_ALLOW_CHANGE_MINIMUM_DEDICATED, RELION_ERROR_LOCAL_MPI, RELION_MPIRUN, RELION_SCRATCH_DIR, the tool paths,
and the site's RELION_STD_LAUNCHER (expanded by the job shell, not by RELION) and RELION_QSUB_SITE (this profile).

Values RELION would silently mangle are refused: RELION_QUEUE_USE other than yes/no/true/false (anything else reads
as "no"), RELION_QSUB_NRMPI / NRTHREADS above 127 (stored in a char, they wrap to negative numbers), line breaks.

Site tree (``install``): ``<PREFIX>/relion-qsub/<version>/`` holds ``bin/``, ``relion_qsub/`` (with the Jinja2
sources as package data), ``etc/<site>.toml`` and ``venv/`` (the runtime dependencies; bin/relion-qsub uses it);
``<PREFIX>/relion-qsub/templates/`` the rendered templates, outside every version: RELION stores the template's path
in each job's job.star (``qsubscript``) and reads it again on Continue (pipeline_jobs.cpp, ``RelionJob::read``), so
a path with a version in it would break Continue of every older job once that version is removed;
``<MODULEDIR>/relion-qsub/<version>.lua`` and ``<version>`` (Tcl). Nothing else is written (pip runs with
--no-cache-dir). The package is copied from wherever this one runs: a checkout or a pip-installed wheel.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import __version__, proc, profile
from ..argparser import Parser
from ..errors import CommandError, InputError, ProfileError, UsageError
from ..fsio import atomic_write
from ..profile import recipes
from ..relion.jobdir import SUBMIT_SCRIPT

NAME = "relion-qsub"
PACKAGE = Path(__file__).resolve().parents[1]  # relion_qsub/, in a checkout or in site-packages
# bin/relion-qsub of the checkout, as package data (pyproject.toml), so a wheel can install a site tree too;
# tests/test_module.py keeps the two identical.
WRAPPER = Path(__file__).resolve().parent / "wrapper.sh"
RUNTIME_REQUIREMENTS = ("jinja2>=3.1", "python-hostlist>=2.0", "psutil>=5.9")  # pyproject.toml [project] dependencies


def template_dir(prefix: str) -> str:
    return f"{prefix.rstrip('/')}/share/templates"


def shared_template_dir(prefix_root: Path) -> Path:
    """The templates of an install: PREFIX/relion-qsub/templates, the same path for every version (see above)."""
    return (prefix_root / NAME / "templates").absolute()


def profile_path(prefix: str, site: profile.Site) -> str:
    return f"{prefix.rstrip('/')}/etc/{site.name}.toml"


def variables(site: profile.Site, prefix: str, templates: str = "") -> list[tuple[str, str]]:
    """Every variable the module sets, in a stable order (PATH and MANPATH are prepended separately)."""
    limits = site.profile.limits
    out = [
        ("RELION_QSUB_COMMAND", site.profile.queue.command),
        ("RELION_QSUB_TEMPLATE", f"{templates or template_dir(prefix)}/common.sh"),
        ("RELION_QSUB_SITE", profile_path(prefix, site)),
        ("RELION_QUEUE_USE", site.profile.queue.use),
        ("RELION_QUEUE_NAME", site.profile.queue.name),
        ("RELION_QSUB_NRMPI", str(limits.nr_mpi)),
        ("RELION_QSUB_NRTHREADS", str(limits.nr_threads)),
        ("RELION_MPI_MAX", str(limits.mpi_max)),
        ("RELION_THREAD_MAX", str(limits.thread_max)),
        ("RELION_MINIMUM_DEDICATED", str(limits.minimum_dedicated)),
        ("RELION_ALLOW_CHANGE_MINIMUM_DEDICATED", "true" if limits.allow_change_dedicated else "false"),
        ("RELION_ERROR_LOCAL_MPI", str(limits.error_local_mpi)),
        ("RELION_MPIRUN", limits.mpirun),
        (site.profile.launcher.variable, site.profile.launcher.command),
        ("RELION_SCRATCH_DIR", site.scratch.job_dir),
        ("RELION_QSUB_EXTRA_COUNT", str(len(site.profile.fields))),
    ]
    for f in site.profile.fields:
        out += [
            (f"RELION_QSUB_EXTRA{f.number}", f.label),
            (f"RELION_QSUB_EXTRA{f.number}_DEFAULT", f.default),
            (f"RELION_QSUB_EXTRA{f.number}_HELP", f.help),
        ]
    out += [(recipes.TOOL_VARIABLES[key], path) for key, path in site.profile.tools.items()]
    # An empty value is left unset: RELION reads an unset and an empty _DEFAULT/_HELP alike, and Lmod and
    # Environment Modules treat setenv "" differently.
    return [(name, value) for name, value in out if value]


def validate(site: profile.Site, values: Sequence[tuple[str, str]]) -> None:
    """Refuse what RELION would read differently from what the profile says."""
    where = site.path
    if site.profile.queue.use not in recipes.QUEUE_USE_WORDS:
        raise ProfileError(
            f"{where}: queue.use: RELION reads only yes, no, true or false (anything else is 'no'), got "
            f"{site.profile.queue.use!r}"
        )
    for key, number in (("nr_mpi", site.profile.limits.nr_mpi), ("nr_threads", site.profile.limits.nr_threads)):
        if not 1 <= number <= recipes.RELION_CHAR_MAX:
            raise ProfileError(f"{where}: limits.{key}: RELION stores it in a char, so {number} would wrap; use 1..127")
    if (
        site.profile.limits.nr_mpi > site.profile.limits.mpi_max
        or site.profile.limits.nr_threads > site.profile.limits.thread_max
    ):
        raise ProfileError(f"{where}: limits: nr_mpi/nr_threads must not exceed mpi_max/thread_max")
    for name, value in values:
        if any(c in value for c in "\n\r\0"):
            raise ProfileError(f"{where}: the value of {name} has a line break; environment values must be one line")
    if not site.profile.queue.command.strip():
        raise ProfileError(f"{where}: queue.command: empty; RELION would run nothing (use relion-qsub)")


def lua_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def tcl_string(value: str) -> str:
    """A Tcl double-quoted word with every substitution character escaped ($SLURM_JOB_ID stays literal)."""
    out = "".join("\\" + c if c in '\\"$[]{}' else c for c in value)
    return f'"{out}"'


def lua_long_string(value: str) -> str:
    """A Lua long string ``[==[...]==]`` whose level no ``]==]`` inside ``value`` can end early."""
    level = 0
    while f"]{'=' * level}]" in value:
        level += 1
    eq = "=" * level
    return f"[{eq}[\n{value}\n]{eq}]"


def check_prefix(prefix: str) -> None:
    """The modulefile and the templates name files under PREFIX: one line, absolute."""
    if any(c in prefix for c in "\n\r\0"):
        raise UsageError(f"--prefix {prefix!r} has a line break; give a directory name on one line")


def help_lines(site: profile.Site, prefix: str, templates: str = "") -> list[str]:
    fields = ", ".join(f.label for f in site.profile.fields)
    templates = templates or template_dir(prefix)
    launcher = site.profile.launcher
    return [
        f"relion-qsub {__version__}: RELION's queue submission for Slurm at site {site.name}.",
        "",
        "After `module load`, RELION (relion, relion_pipeliner) submits queued jobs through relion-qsub:",
        "  Queue submit command  relion-qsub (checks and repairs the script, then sbatch)",
        f"  Submission script     {templates}/common.sh",
        f"  Queue name            {site.profile.queue.name or '(type one)'};  extra fields: {fields}",
        f"  Launcher              ${{{launcher.variable}}} = {launcher.command} (runs RELION's MPI command)",
        f"Ready-made templates per job type and size: {templates}/ (see its README.md).",
        "Manual: man relion-qsub, man relion-launch.",
        "Recommended Running-tab values: relion-qsub recommend --list; relion-qsub recommend JOBTYPE --node-type T",
        f"Check a filled script without submitting: relion-qsub check <jobdir>/{SUBMIT_SCRIPT}",
    ]


def render_lua(site: profile.Site, prefix: str, templates: str = "") -> str:
    check_prefix(prefix)
    values = variables(site, prefix, templates)
    validate(site, values)
    # The help holds --prefix and profile text: any "]]" in either is kept, inside a long string of a higher level.
    help_text = "\n".join(help_lines(site, prefix, templates))
    lines = [
        f"-- relion-qsub {__version__} for site {site.name}: generated by `relion-qsub module`; do not edit.",
        f"help({lua_long_string(help_text)})",
        f'whatis("Name: {NAME}")',
        f'whatis("Version: {__version__}")',
        'whatis("Category: cryo-EM, batch submission")',
        f"whatis({lua_string(f'Description: RELION queue submission for Slurm (site {site.name})')})",
        # One relion-qsub at a time: Lmod swaps members of a family instead of stacking them.
        'family("relion_qsub")',  # a family name becomes part of LMOD_FAMILY_<NAME>: no hyphen
        f'prepend_path("PATH", {lua_string(prefix.rstrip("/") + "/bin")})',
        f'prepend_path("MANPATH", {lua_string(prefix.rstrip("/") + "/share/man")})',
    ]
    lines += [f"setenv({lua_string(name)}, {lua_string(value)})" for name, value in values]
    return "\n".join(lines) + "\n"


def render_tcl(site: profile.Site, prefix: str, templates: str = "") -> str:
    check_prefix(prefix)
    values = variables(site, prefix, templates)
    validate(site, values)
    lines = [
        "#%Module1.0",
        f"## relion-qsub {__version__} for site {site.name}: generated by `relion-qsub module`; do not edit.",
        "proc ModulesHelp { } {",
        *[f"    puts stderr {tcl_string(line)}" for line in help_lines(site, prefix, templates)],
        "}",
        f"module-whatis {tcl_string(f'Name: {NAME}')}",
        f"module-whatis {tcl_string(f'Version: {__version__}')}",
        f"module-whatis {tcl_string('Category: cryo-EM, batch submission')}",
        f"module-whatis {tcl_string(f'Description: RELION queue submission for Slurm (site {site.name})')}",
        f"conflict {NAME}",  # one relion-qsub version at a time
        f"prepend-path PATH {tcl_string(prefix.rstrip('/') + '/bin')}",
        f"prepend-path MANPATH {tcl_string(prefix.rstrip('/') + '/share/man')}",
    ]
    lines += [f"setenv {name} {tcl_string(value)}" for name, value in values]
    return "\n".join(lines) + "\n"


def render(site: profile.Site, prefix: str, fmt: str) -> str:
    if fmt == "lua":
        return render_lua(site, prefix)
    if fmt == "tcl":
        return render_tcl(site, prefix)
    raise UsageError(f"--format {fmt!r}: use lua (Lmod) or tcl (Environment Modules)")


# ---------------------------------------------------------------------------------------------- site install


def _copy_tree(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _run(argv: list[str], what: str) -> None:
    # argv is a list built here (venv python, pip, fixed requirements), never a shell string; proc.run maps a missing
    # program and the timeout to CommandError / CommandTimeout.
    # pip (also the one ensurepip runs) must not write its cache or version check into $HOME: only PREFIX is ours.
    # The installed tree runs with its own venv (not make site-install's RELION_QSUB_PYTHON) and writes no cache.
    env = {k: v for k, v in os.environ.items() if k != "RELION_QSUB_PYTHON"}
    env.update(PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1", RELION_QSUB_NO_CACHE="1")
    try:
        result = proc.run(argv, timeout=900, env=env)
    except CommandError as exc:
        raise exc.again(f"{what} failed: {exc}") from exc
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
        raise CommandError(
            f"{what} failed ({' '.join(argv[:3])} ...): {tail[0]}",
            argv=result.argv,
            returncode=result.returncode,
            stdout=result.stdout,
            stderr=result.stderr,
        )


def _write_error(exc: OSError, what: str) -> InputError:
    """One line for a failed write during install: the file, the reason, and which option put it there."""
    where, why = exc.filename or what, exc.strerror or str(exc)
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        _src, where, why = exc.args[0][0]  # copytree collects (source, destination, reason)
    return InputError(f"cannot write {where}: {why} (under {what})")


def _refuse_overwrite(dest: Path, modules: Path) -> None:
    """An installed version is never replaced silently: its users' running jobs and job.star files use it."""
    found = [p for p in (dest, modules / f"{__version__}.lua", modules / __version__) if p.exists() or p.is_symlink()]
    if found:
        raise UsageError(
            f"relion-qsub {__version__} is installed already ({found[0]}): give --force to replace it, or install "
            "another version beside it"
        )


def _copy_program(dest: Path) -> None:
    """The package this one runs from (checkout or wheel) and bin/: relion-qsub from the wrapper, relion-launch a
    link beside it (the wrapper picks the entry point by its own name)."""
    _copy_tree(PACKAGE, dest / "relion_qsub")
    (dest / "bin").mkdir(parents=True, exist_ok=True)
    atomic_write(dest / "bin" / "relion-qsub", WRAPPER.read_text(), 0o755)
    launch = dest / "bin" / "relion-launch"
    if launch.is_symlink() or launch.exists():
        launch.unlink()
    launch.symlink_to("relion-qsub")


def _render_templates(site: profile.Site, templates: Path, dest: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("jinja2") is None:
        # This interpreter (make site-install's python3) lacks the runtime dependencies; the installed tree has them.
        argv = [str(dest / "bin" / "relion-qsub"), "templates", "build", f"--site={profile_path(str(dest), site)}"]
        _run([*argv, f"--out={templates}", "--force", "-q"], "rendering the templates")
        return
    from .templates import plan, stale, write

    rendered = plan(site, str(templates))
    extra = stale(rendered, templates)
    write(rendered, templates)
    if extra:
        print(
            f"relion-qsub module install: {templates} also holds {len(extra)} file(s) this build did not write "
            f"(kept): {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}",
            file=sys.stderr,
        )


def _venv(dest: Path, python: str) -> None:
    venv = dest / "venv"
    if not (venv / "bin" / "python").exists():
        _run([python, "-m", "venv", str(venv)], "creating the venv")
    env_pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-cache-dir"]
    _run([*env_pip, "--disable-pip-version-check", *RUNTIME_REQUIREMENTS], "installing the runtime dependencies")
    # Users cannot write __pycache__ into the prefix: without compiled bytecode every RELION "Run" would compile
    # relion-qsub from source first (~30 ms instead of ~4 ms of start-up).
    _run([str(venv / "bin" / "python"), "-m", "compileall", "-q", str(dest / "relion_qsub")], "compiling the package")


def install(
    site: profile.Site, prefix_root: Path, moduledir: Path, python: str = sys.executable, force: bool = False
) -> Path:
    """The site tree: PREFIX/relion-qsub/<version>/, PREFIX/relion-qsub/templates/ and the two modulefiles."""
    dest = (prefix_root / NAME / __version__).absolute()
    templates = shared_template_dir(prefix_root)
    modules = moduledir / NAME
    if not force:
        _refuse_overwrite(dest, modules)
    lua = render_lua(site, str(dest), str(templates))  # validate before writing anything
    tcl = render_tcl(site, str(dest), str(templates))
    try:
        profile_text = Path(site.path).read_text()
    except OSError as exc:
        raise InputError(f"cannot read the site profile {site.path}: {exc.strerror}") from exc
    try:
        _copy_program(dest)
        (dest / "etc").mkdir(parents=True, exist_ok=True)
        atomic_write(Path(profile_path(str(dest), site)), profile_text, 0o644)
    except OSError as exc:
        raise _write_error(exc, f"--prefix {prefix_root}") from exc
    _venv(dest, python)
    _render_templates(site, templates, dest)
    venv_python = dest / "venv" / "bin" / "python"
    try:
        write_manpages(dest / "share" / "man", str(venv_python if venv_python.exists() else python), dest)
    except OSError as exc:
        raise _write_error(exc, f"--prefix {prefix_root}") from exc
    try:
        modules.mkdir(parents=True, exist_ok=True)
        atomic_write(modules / f"{__version__}.lua", lua, 0o644)
        atomic_write(modules / __version__, tcl, 0o644)
    except OSError as exc:
        raise _write_error(exc, f"--moduledir {moduledir}") from exc
    return dest


def write_manpages(mandir: Path, python: str, root: Path) -> list[Path]:
    """The man pages (``mandir/man1``) and the bash completion (``mandir/../bash-completion/completions``) from the
    help of the programs under ``root`` (a site tree or the package's parent), run by ``python`` as bin/relion-qsub
    runs them."""
    from . import completion, manpages

    def run_help(program: str, args: Sequence[str]) -> str:
        func = "launch_main" if program == "relion-launch" else "qsub_main"
        code = (
            "import sys; sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = sys.argv.pop(1); "
            f"from relion_qsub.cli import {func}; sys.exit({func}())"
        )
        result = proc.run([python, "-s", "-c", code, str(root), program, *args], timeout=120)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
            raise CommandError(f"{program} {' '.join(args)} failed while writing the man pages: {tail[0]}")
        return result.stdout

    written = manpages.write(mandir, run_help)
    completions = mandir.parent / "bash-completion" / "completions"
    completions.mkdir(parents=True, exist_ok=True)
    atomic_write(completions / "relion-qsub", completion.script(run_help), 0o644)
    (completions / "relion-launch").unlink(missing_ok=True)
    (completions / "relion-launch").symlink_to("relion-qsub")  # bash-completion loads a file by the command's name
    return [*written, completions / "relion-qsub"]


def _parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="relion-qsub module",
        description="Write an environment modulefile (Lmod Lua or Environment Modules Tcl) from a site profile, or "
        "install the whole site tree (install).",
        epilog="examples:\n"
        "  relion-qsub module --site biowulf --format lua --prefix /usr/local/apps/relion-qsub/0.1.0\n"
        "  relion-qsub module install --site mysite.toml --prefix /usr/local/apps --moduledir /usr/local/modulefiles\n"
        "  relion-qsub module man -o /usr/local/apps/relion-qsub/0.1.0/share/man",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=["write", "install", "man"],
        default="write",
        help="write a modulefile (default), install the site tree, or write the man pages into -o DIR",
    )
    profile.add_site_option(p)
    p.add_argument("--format", choices=["lua", "tcl"], default="lua", help="write: Lmod (lua) or Environment Modules")
    p.add_argument(
        "--prefix",
        help="write: the installed relion-qsub directory (default: this one); install: the root, "
        "the tree goes to PREFIX/relion-qsub/<version>",
    )
    p.add_argument("--moduledir", type=Path, help="install: where modulefiles go (MODULEDIR/relion-qsub/<version>)")
    p.add_argument("-o", "--output", type=Path, help="write: the modulefile (default: stdout)")
    p.add_argument("--force", action="store_true", help="install: replace this version if it is installed already")
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    return p


def main(argv: Sequence[str]) -> int:
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0) and 64
    # An install writes nothing outside PREFIX and MODULEDIR: not even the profile cache in the admin's home.
    environ = {**os.environ, "RELION_QSUB_NO_CACHE": "1"} if args.action == "install" else os.environ
    if args.action == "man":
        if args.output is None:
            raise UsageError("man needs -o DIR (the man pages go to DIR/man1)")
        for path in write_manpages(args.output, sys.executable, PACKAGE.parent):
            print(path)
        return 0
    site = profile.load(args.site, environ)
    if args.action == "install":
        if not args.prefix or args.moduledir is None:
            raise UsageError("install needs --prefix DIR and --moduledir DIR")
        dest = install(site, Path(args.prefix), args.moduledir, force=args.force)
        print(f"installed {dest}; module: {args.moduledir / NAME / __version__}(.lua)")
        return 0
    prefix = os.path.abspath(args.prefix) if args.prefix else str(PACKAGE.parent)
    text = render(site, prefix, args.format)  # validates the profile first: its errors say more
    if not args.prefix and not Path(profile_path(prefix, site)).is_file():
        # The modulefile points at PREFIX/etc/<site>.toml and PREFIX/share/templates: a checkout has neither.
        raise UsageError(
            f"give --prefix DIR: the modulefile refers to DIR/etc/{site.name}.toml and DIR/share/templates, which "
            "`make site-install PREFIX=... MODULEDIR=...` creates (this source tree has no etc/)"
        )
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            atomic_write(args.output, text, 0o644)
        except OSError as exc:
            raise InputError(f"cannot write {args.output}: {exc.strerror}") from exc
    return 0
