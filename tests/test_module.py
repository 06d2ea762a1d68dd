"""`relion-qsub module`: modulefile text, quoting, and the values RELION would mangle (pure tests)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from relion_qsub import proc, profile
from relion_qsub.errors import CommandError, CommandTimeout, InputError, ProfileError, UsageError
from relion_qsub.profile import recipes
from relion_qsub.sitetools import module

ROOT = Path(__file__).resolve().parent.parent
QSUB = str(ROOT / "bin" / "relion-qsub")
BIOWULF = profile.load("biowulf")
PREFIX = "/usr/local/apps/relion-qsub/0.1.0"

# Issue 7: every variable the seed's module exports (RELION_QSUB_EXTRA1..6 come from the profile's fields).
ISSUE_VARIABLES = {
    "RELION_QSUB_COMMAND",
    "RELION_QSUB_TEMPLATE",
    "RELION_QSUB_EXTRA_COUNT",
    "RELION_QUEUE_USE",
    "RELION_QUEUE_NAME",
    "RELION_QSUB_NRMPI",
    "RELION_QSUB_NRTHREADS",
    "RELION_MPI_MAX",
    "RELION_THREAD_MAX",
    "RELION_MINIMUM_DEDICATED",
    "RELION_ERROR_LOCAL_MPI",
    "RELION_MPIRUN",
    "RELION_STD_LAUNCHER",
    "RELION_SCRATCH_DIR",
    "RELION_CTFFIND_EXECUTABLE",
    "RELION_GCTF_EXECUTABLE",
    "RELION_MOTIONCOR2_EXECUTABLE",
    "RELION_QSUB_SITE",
} | {f"RELION_QSUB_EXTRA{n}{s}" for n in range(1, 7) for s in ("", "_DEFAULT", "_HELP")}


def test_biowulf_module_sets_every_variable_of_the_issue() -> None:
    values = dict(module.variables(BIOWULF, PREFIX))
    empty_defaults = {f"RELION_QSUB_EXTRA{n}_DEFAULT" for n in (4, 5, 6)}  # empty boxes: left unset
    assert ISSUE_VARIABLES - empty_defaults <= set(values)
    assert values["RELION_QSUB_COMMAND"] == "relion-qsub"
    assert values["RELION_STD_LAUNCHER"] == "relion-launch --mpi=pmix"
    assert values["RELION_QSUB_SITE"] == f"{PREFIX}/etc/biowulf.toml"
    assert values["RELION_QSUB_TEMPLATE"] == f"{PREFIX}/share/templates/common.sh"
    assert values["RELION_QSUB_EXTRA_COUNT"] == "6" and values["RELION_QSUB_EXTRA2"] == "Memory Per Thread"
    assert values["RELION_QUEUE_USE"] == "yes" and values["RELION_SCRATCH_DIR"] == "/lscratch/$SLURM_JOB_ID"


def test_lua_and_tcl_text() -> None:
    lua = module.render(BIOWULF, PREFIX, "lua")
    assert f'prepend_path("PATH", "{PREFIX}/bin")' in lua and 'family("relion_qsub")' in lua
    assert 'setenv("RELION_SCRATCH_DIR", "/lscratch/$SLURM_JOB_ID")' in lua and "help([[" in lua
    tcl = module.render(BIOWULF, PREFIX, "tcl")
    assert tcl.startswith("#%Module1.0\n") and "conflict relion-qsub\n" in tcl
    assert 'setenv RELION_SCRATCH_DIR "/lscratch/\\$SLURM_JOB_ID"' in tcl  # no Tcl substitution
    assert 'module-whatis "Name: relion-qsub"' in tcl


def test_quoting() -> None:
    assert module.tcl_string('a "b" [c] {d} $e \\f') == '"a \\"b\\" \\[c\\] \\{d\\} \\$e \\\\f"'
    assert module.lua_string('a "b" \\c') == '"a \\"b\\" \\\\c"'


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"queue": recipes.Queue(use="Yes please")}, "queue.use: RELION reads only yes, no, true or false"),
        ({"limits": recipes.Limits(nr_mpi=128, mpi_max=2048)}, "limits.nr_mpi: RELION stores it in a char, so 128"),
        ({"limits": recipes.Limits(nr_threads=200, thread_max=256)}, "limits.nr_threads: RELION stores it in a char"),
        ({"limits": recipes.Limits(nr_mpi=65, mpi_max=64)}, "must not exceed mpi_max"),
        ({"fields": (recipes.GuiField(1, "Wall\ntime", "time"),)}, "RELION_QSUB_EXTRA1 has a line break"),
    ],
)
def test_values_relion_would_mangle_are_refused(change: dict[str, object], message: str) -> None:
    bad = dataclasses.replace(BIOWULF, built=dataclasses.replace(BIOWULF.profile, **change))
    for fmt in ("lua", "tcl"):
        with pytest.raises(ProfileError, match=message.replace("(", r"\(")):
            module.render(bad, PREFIX, fmt)


def test_profile_refuses_a_char_overflow_at_load(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[limits]\nnr_threads = 300\n")
    proc = subprocess.run(
        [QSUB, "module", "--site", str(path), "--format", "tcl"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 78 and proc.stderr.count("\n") == 1
    assert f"{path}: limits.nr_threads: expected a whole number <= 127" in proc.stderr


def test_cli_writes_a_modulefile(tmp_path: Path) -> None:
    out = tmp_path / "0.1.0.lua"
    proc = subprocess.run(
        [QSUB, "module", "--site", "testbed", "--format", "lua", "--prefix", "/opt/rq", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == module.render(profile.load("testbed"), "/opt/rq", "lua")
    usage = subprocess.run([QSUB, "module", "install", "--site", "testbed"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 64 and "install needs --prefix DIR and --moduledir DIR" in usage.stderr


def _lua_help(lua: str) -> str:
    """Run the modulefile under real Lua with Lmod's functions stubbed; return the help text it passes."""
    stubs = (
        "local got = {}\n"
        "function help(s) got.help = s end\nfunction whatis() end\nfunction family() end\n"
        "function prepend_path() end\nfunction setenv() end\n"
    )
    proc = subprocess.run(
        ["lua", "-"], input=stubs + lua + "\nio.write(got.help)\n", capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(shutil.which("lua") is None, reason="lua is not installed (it comes with Debian's lmod)")
@pytest.mark.parametrize("prefix", ["/opt/a]]b", "/opt/a]=]b]]c]==]"])
def test_close_brackets_in_prefix_stay_inside_the_lua_help(prefix: str) -> None:
    # Once refused as "the profile's help must not contain ']]'" although the ']]' came from --prefix.
    lua = module.render(BIOWULF, prefix, "lua")
    assert f"Submission script     {prefix}/share/templates/common.sh" in _lua_help(lua)


def test_a_bad_prefix_is_blamed_on_prefix(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^--prefix '/opt/a\\nb' has a line break"):
        module.render(BIOWULF, "/opt/a\nb", "lua")


def test_commands_run_through_proc_with_one_line_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CommandError, match=r"^creating the venv failed: /nonexistent/python: command not found"):
        module._run(["/nonexistent/python", "-m", "venv", "/tmp/x"], "creating the venv")
    real = proc.run
    seen: list[float | None] = []

    def quick(argv: list[str], **kw: Any) -> proc.Result:
        seen.append(kw.get("timeout"))
        return real(argv, **{**kw, "timeout": 0.3})

    monkeypatch.setattr(module.proc, "run", quick)
    with pytest.raises(CommandTimeout, match=r"^installing the runtime dependencies failed: sleep: no answer within"):
        module._run(["sleep", "5"], "installing the runtime dependencies")
    assert seen == [900]
    with pytest.raises(CommandError, match=r"^compiling the package failed \(false \.\.\.\)"):
        module._run(["false"], "compiling the package")


def test_install_write_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    testbed = profile.load("testbed")
    with pytest.raises(
        InputError, match=f"^cannot write {blocker}/relion-qsub: Not a directory \\(under --prefix {blocker}\\)$"
    ):
        module.install(testbed, blocker, tmp_path / "modules")
    proc_ = subprocess.run(
        [QSUB, "module", "install", "--site", "testbed", "--prefix", str(blocker), "--moduledir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc_.returncode == 66 and proc_.stderr.count("\n") == 1 and "cannot write" in proc_.stderr
    # The module directory: no venv or pip needed to get there.
    monkeypatch.setattr(module, "_run", lambda argv, what: None)
    with pytest.raises(InputError, match=f"^cannot write {blocker}/relion-qsub: .* \\(under --moduledir {blocker}\\)$"):
        module.install(testbed, tmp_path / "apps", blocker)


def test_install_keeps_and_lists_stale_templates_and_never_writes_through_symlinks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(module, "_run", lambda argv, what: None)
    testbed = profile.load("testbed")
    module.install(testbed, tmp_path / "apps", tmp_path / "modules")
    assert capsys.readouterr().err == ""
    shared = tmp_path / "apps" / "relion-qsub" / "templates"
    (shared / "Old_gpu").mkdir()
    (shared / "Old_gpu" / "01_tiny.sh").write_text("")
    target = tmp_path / "elsewhere.lua"
    target.write_text("mine\n")
    lua = tmp_path / "modules" / "relion-qsub" / f"{module.__version__}.lua"
    lua.unlink()
    lua.symlink_to(target)
    module.install(testbed, tmp_path / "apps", tmp_path / "modules", force=True)
    assert "also holds 1 file(s) this build did not write (kept): Old_gpu/01_tiny.sh" in capsys.readouterr().err
    assert target.read_text() == "mine\n" and not lua.is_symlink() and "setenv(" in lua.read_text()


def test_output_replaces_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("mine\n")
    out = tmp_path / "0.1.0.lua"
    out.symlink_to(target)
    proc_ = subprocess.run(
        [QSUB, "module", "--site", "testbed", "--prefix", "/opt/rq", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc_.returncode == 0, proc_.stderr
    assert target.read_text() == "mine\n" and not out.is_symlink() and "setenv(" in out.read_text()


def test_install_from_the_package_refuses_to_overwrite_and_keeps_one_template_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22: install copies the package it runs from (no checkout needed), never replaces an installed version
    silently, and points RELION at templates whose path outlives versions (RELION reads job.star's qsubscript again
    on Continue)."""
    monkeypatch.setattr(module, "_run", lambda argv, what: None)  # no venv, no pip
    testbed = profile.load("testbed")
    apps, modules = tmp_path / "apps", tmp_path / "modules"
    dest = module.install(testbed, apps, modules)
    assert (dest / "bin" / "relion-qsub").read_text() == (ROOT / "bin" / "relion-qsub").read_text()
    assert os.readlink(dest / "bin" / "relion-launch") == "relion-qsub"
    assert (dest / "relion_qsub" / "sitetools" / "jinja" / "common.sh.j2").is_file()
    lua = (modules / "relion-qsub" / f"{module.__version__}.lua").read_text()
    shared = apps.absolute() / "relion-qsub" / "templates"
    assert f'setenv("RELION_QSUB_TEMPLATE", "{shared}/common.sh")' in lua and module.__version__ not in str(shared)
    assert (shared / "common.sh").is_file() and (shared / "Class2D_gpu" / "01_tiny.sh").is_file()
    assert f'prepend_path("MANPATH", "{dest}/share/man")' in lua
    assert {p.name for p in (dest / "share" / "man" / "man1").iterdir()} >= {"relion-qsub.1", "relion-launch.1"}
    before = lua
    with pytest.raises(UsageError, match=rf"^relion-qsub {module.__version__} is installed already .*give --force"):
        module.install(testbed, apps, modules)
    assert module.install(testbed, apps, modules, force=True) == dest
    assert (modules / "relion-qsub" / f"{module.__version__}.lua").read_text() == before


def test_the_wrapper_in_the_package_is_bin_relion_qsub() -> None:
    assert module.WRAPPER.read_text() == (ROOT / "bin" / "relion-qsub").read_text()
