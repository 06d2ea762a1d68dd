"""`relion-qsub module`: modulefile text, quoting, and the values RELION would mangle (pure tests)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from relion_qsub import module, profile, site
from relion_qsub.errors import ProfileError

ROOT = Path(__file__).resolve().parent.parent
QSUB = str(ROOT / "bin" / "relion-qsub")
BIOWULF = site.load("biowulf")
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
        ({"queue": profile.Queue(use="Yes please")}, "queue.use: RELION reads only yes, no, true or false"),
        ({"limits": profile.Limits(nr_mpi=128, mpi_max=2048)}, "limits.nr_mpi: RELION stores it in a char, so 128"),
        ({"limits": profile.Limits(nr_threads=200, thread_max=256)}, "limits.nr_threads: RELION stores it in a char"),
        ({"limits": profile.Limits(nr_mpi=65, mpi_max=64)}, "must not exceed mpi_max"),
        ({"fields": (profile.GuiField(1, "Wall\ntime", "time"),)}, "RELION_QSUB_EXTRA1 has a line break"),
    ],
)
def test_values_relion_would_mangle_are_refused(change: dict[str, object], message: str) -> None:
    bad = BIOWULF.replace(**change)
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
    assert out.read_text() == module.render(site.load("testbed"), "/opt/rq", "lua")
    usage = subprocess.run([QSUB, "module", "install", "--site", "testbed"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 64 and "install needs --prefix DIR and --moduledir DIR" in usage.stderr
