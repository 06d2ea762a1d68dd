"""relion-qsub doctor on real files made here: MRC/TIFF images, STAR files, pipeline files, locks, job dirs.

MRC files are written with struct (no numpy/mrcfile): a 1024-byte header and zero data. The Slurm side of the job
check uses a fake runner here; the real-cluster version is in test_doctor_cluster.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relion_qsub import proc
from relion_qsub.cli import qsub_main
from relion_qsub.doctor import finding
from relion_qsub.doctor import images as doctor_images
from relion_qsub.doctor import job as doctor_job
from relion_qsub.doctor import main as doctor_main
from relion_qsub.doctor import pipeline as doctor_pipeline
from relion_qsub.errors import EX_DATAERR, EX_NOINPUT, EX_OK, CommandError
from relion_qsub.formats import mrc
from relion_qsub.formats import star as starfile
from relion_qsub.slurm import client

ROOT = Path(__file__).resolve().parent.parent

# ---- writers --------------------------------------------------------------------------------------------------


def mrc_header(nx: int, ny: int, nz: int, mode: int = 2, nsymbt: int = 0, big_endian: bool = False) -> bytes:
    order = ">" if big_endian else "<"
    header = bytearray(1024)
    struct.pack_into(order + "4i", header, 0, nx, ny, nz, mode)
    struct.pack_into(order + "i", header, 92, nsymbt)
    header[208:212] = b"MAP "
    header[212:216] = b"\x11\x11\x00\x00" if big_endian else b"\x44\x44\x00\x00"
    return bytes(header)


def write_mrc(path: Path, nx: int = 16, ny: int = 16, nz: int = 4, mode: int = 2, *, cut: int = 0, nsymbt: int = 0):
    """A consistent MRC file (zero data), ``cut`` bytes short of what the header promises."""
    header = mrc.parse_header(mrc_header(nx, ny, nz, mode, nsymbt))
    assert header is not None
    size = header.expected_size()
    assert size is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(mrc_header(nx, ny, nz, mode, nsymbt))
        fh.truncate(size - cut)
    return path


def star_loop(block: str, labels: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"_{label} #{i + 1}\n" for i, label in enumerate(labels))
    body = "".join(" ".join(row) + "\n" for row in rows)
    return f"\n# version 30001\n\ndata_{block}\n\nloop_\n{head}{body}\n"


# A pipeline exactly as relion_pipeliner 3.1.3 writes it after two Import jobs.
GOOD_PIPELINE = """
# version 30001

data_pipeline_general

_rlnPipeLineJobCounter                       3
 

# version 30001

data_pipeline_processes

loop_ 
_rlnPipeLineProcessName #1 
_rlnPipeLineProcessAlias #2 
_rlnPipeLineProcessType #3 
_rlnPipeLineProcessStatus #4 
Import/job001/       None            0            1 
Import/job002/       None            0            1 
 

# version 30001

data_pipeline_nodes

loop_ 
_rlnPipeLineNodeName #1 
_rlnPipeLineNodeType #2 
Import/job001/movies.star            0 
Import/job002/movies.star            0 
 

# version 30001

data_pipeline_output_edges

loop_ 
_rlnPipeLineEdgeProcess #1 
_rlnPipeLineEdgeToNode #2 
Import/job001/ Import/job001/movies.star 
Import/job002/ Import/job002/movies.star 
 
"""  # noqa: W291, W293  (byte for byte what RELION writes, trailing blanks included)
JOBS = ["Import/job001", "Import/job002"]
PIPE = "default_pipeline.star"


def run_doctor(*args: str) -> tuple[int, list[str]]:
    """Run through the real CLI dispatch; returns (exit code, stdout lines)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = qsub_main(["doctor", *args])
    return code, out.getvalue().splitlines()


def doctor_process(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """The doctor in its own process, for what could hang (a FIFO, a symlink loop): a hang fails, not blocks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}  # no job checks reach a real Slurm
    return subprocess.run(
        [sys.executable, "-m", "relion_qsub", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


def backdate(path: Path, seconds: float) -> None:
    """Make a file (a dir: also everything in it) look ``seconds`` old."""
    when = time.time() - seconds
    for item in [path, *(path.iterdir() if path.is_dir() else [])]:
        os.utime(item, (when, when), follow_symlinks=False)


LINE = re.compile(r"^(ok|warning|error): [^:]+(:\d+)?: .+$")

# ---- MRC headers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0, 1, 2, 3, 4, 6, 12, 101])
def test_every_mode_with_the_right_size_is_ok(mode: int) -> None:
    nx = 15 if mode == 101 else 16  # odd nx: 4-bit rows are padded to whole bytes
    header = mrc_header(nx, 8, 3, mode)
    size = mrc.parse_header(header).expected_size()  # type: ignore[union-attr]
    bpv = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2}
    assert size == 1024 + (8 * 8 * 3 if mode == 101 else nx * 8 * 3 * bpv[mode])
    assert mrc.judge_mrc(size, header) == mrc.Verdict("ok", f"{nx}x8x3 mode {mode}")
    assert mrc.judge_mrc(size - 1, header).level == "error"


def test_extended_header_counts() -> None:
    header = mrc_header(4, 4, 1, 2, nsymbt=4096)
    assert mrc.judge_mrc(1024 + 4096 + 64, header).level == "ok"
    assert "truncated" in mrc.judge_mrc(1024 + 64, header).what


def test_big_endian_header() -> None:
    header = mrc_header(32, 32, 2, 1, big_endian=True)
    parsed = mrc.parse_header(header)
    assert parsed is not None and (parsed.nx, parsed.mode, parsed.little_endian) == (32, 1, False)
    assert mrc.judge_mrc(1024 + 32 * 32 * 2 * 2, header).level == "ok"


@pytest.mark.parametrize(
    ("size", "raw", "expect"),
    [
        (0, b"", "empty file (0 bytes)"),
        (500, b"\1" * 500, "shorter than the 1024-byte MRC header"),
        (4096, bytes(1024), "the header is all zeros"),
        (4096, b"GIF89a" + bytes(1018), "not an MRC file"),
        (1024 + 64, mrc_header(4, 4, 1, 7), "unknown MRC mode 7"),
        (1024 + 64, mrc_header(4, 0, 1), "impossible header"),
        (1024 + 32, mrc_header(4, 4, 1), "truncated: 1056 of 1088 bytes"),
    ],
)
def test_damaged_headers_are_errors(size: int, raw: bytes, expect: str) -> None:
    verdict = mrc.judge_mrc(size, raw)
    assert verdict.level == "error" and expect in verdict.what, verdict


def test_missing_map_id_with_right_size_and_extra_bytes_are_warnings() -> None:
    old = bytearray(mrc_header(4, 4, 1))
    old[208:212] = bytes(4)
    assert mrc.judge_mrc(1024 + 64, bytes(old)).level == "warning"
    assert "more than the header" in mrc.judge_mrc(1024 + 100, mrc_header(4, 4, 1)).what


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 5000),
    st.integers(1, 5000),
    st.integers(1, 80),
    st.sampled_from([0, 1, 2, 4, 6, 12, 101]),
    st.integers(0, 3) | st.just(0),
    st.integers(1, 10**6),
)
def test_property_exact_size_ok_any_shortfall_error(nx: int, ny: int, nz: int, mode: int, ext: int, cut: int) -> None:
    header = mrc_header(nx, ny, nz, mode, nsymbt=ext * 1024)
    size = mrc.parse_header(header).expected_size()  # type: ignore[union-attr]
    assert size is not None
    assert mrc.judge_mrc(size, header).level == "ok"
    short = mrc.judge_mrc(max(1024, size - cut), header)
    assert short.level == "error" and "truncated" in short.what


def test_tiff_and_eer_magic() -> None:
    for magic in (b"II*\0", b"MM\0*", b"II+\0"):
        assert mrc.judge_tiff(1000, magic).level == "ok"
    assert mrc.judge_tiff(0, b"").what == "empty file (0 bytes)"
    assert "not a TIFF/EER" in mrc.judge_tiff(1000, b"\0\0\0\0").what


# ---- STAR -----------------------------------------------------------------------------------------------------


def test_star_reader_tolerates_and_reports() -> None:
    text = "data_optics\nloop_\n_rlnOpticsGroup #1\n1\n" + star_loop(
        "movies", ["rlnMicrographMovieName", "rlnOpticsGroup"], [["Movies/a.tif", "1"], ["'Movies/b c.tif'", "1"]]
    )
    star = starfile.parse(text + "Movies/c.tif\n")
    movies = star.block("movies")
    assert movies is not None and movies.column("rlnMicrographMovieName") == [
        "Movies/a.tif",
        "Movies/b c.tif",
        "Movies/c.tif",
    ]
    assert star.problems and "row with 1 value(s) in a loop of 2" in star.problems[0][1]
    assert doctor_images.names_in_star(star_loop("x", ["rlnMicrographName"], [["7@Mics/a.mrcs"]])) == ["Mics/a.mrcs"]
    assert starfile.parse("junk\n").problems[0][0] == 1


# ---- the image scan -------------------------------------------------------------------------------------------


@pytest.fixture
def image_project(tmp_path: Path) -> Path:
    """Ten good movies, one empty, one truncated, one not MRC, one undersized but consistent, one missing; TIFFs."""
    movies = tmp_path / "Movies"
    names = []
    for i in range(10):
        write_mrc(movies / f"good_{i:02d}.mrc", 64, 64, 8)
        names.append(f"Movies/good_{i:02d}.mrc")
    (movies / "empty.mrc").touch()
    write_mrc(movies / "truncated.mrc", 64, 64, 8, cut=10000)
    (movies / "magic.mrc").write_bytes(b"<html>" + bytes(64 * 64 * 8 * 4 + 1018))
    write_mrc(movies / "fewframes.mrc", 64, 64, 2)  # consistent header, 25% of its siblings' size
    names += ["Movies/empty.mrc", "Movies/truncated.mrc", "Movies/magic.mrc", "Movies/fewframes.mrc", "Movies/gone.mrc"]
    tiffs = tmp_path / "Tiffs"
    tiffs.mkdir()
    for i in range(4):
        (tiffs / f"t{i}.tif").write_bytes(b"II*\0" + bytes(4000))
    (tiffs / "zero.tif").touch()
    (tiffs / "small.tif").write_bytes(b"II*\0" + bytes(100))
    (tiffs / "fake.eer").write_bytes(b"\0" * 100)
    job = tmp_path / "Import" / "job001"
    job.mkdir(parents=True)
    optics = "\n# version 30001\n\ndata_optics\n\nloop_\n_rlnOpticsGroupName #1\nopticsGroup1\n"
    (job / "movies.star").write_text(
        optics + star_loop("movies", ["rlnMicrographMovieName", "rlnOpticsGroup"], [[n, "1"] for n in names])
    )
    return tmp_path


def by_where(findings: list[finding.Finding]) -> dict[str, finding.Finding]:
    return {f.where: f for f in findings}


def test_scan_from_the_movie_star_file(image_project: Path) -> None:
    findings, scanned = doctor_images.check(image_project, [])
    assert scanned == 15
    found = by_where(findings)
    assert found["Movies/empty.mrc"].what == "empty file (0 bytes)"
    assert found["Movies/truncated.mrc"].what.startswith("truncated: ")
    assert "not an MRC file" in found["Movies/magic.mrc"].what
    assert found["Movies/gone.mrc"].what.startswith("missing")
    assert (
        found["Movies/fewframes.mrc"].level == "warning" and "26% of the median" in found["Movies/fewframes.mrc"].what
    )
    assert found["Movies/empty.mrc"].fix.endswith("(listed in Import/job001/movies.star)")
    errors = {f.where for f in findings if f.level == "error"}
    assert errors == {"Movies/empty.mrc", "Movies/truncated.mrc", "Movies/magic.mrc", "Movies/gone.mrc"}
    assert not any(f.where.startswith("Movies/good") for f in findings)  # quiet about good files


def test_scan_by_glob_covers_tiff_and_eer(image_project: Path) -> None:
    findings, scanned = doctor_images.check(image_project, ["Tiffs/*"])
    assert scanned == 7
    found = by_where(findings)
    assert found["Tiffs/zero.tif"].level == "error"
    assert found["Tiffs/small.tif"].level == "warning" and "size outlier" in found["Tiffs/small.tif"].what
    assert "not a TIFF/EER" in found["Tiffs/fake.eer"].what
    assert found["Tiffs/zero.tif"].fix.endswith("(matched by --path Tiffs/*)")
    assert not any(f.where.startswith("Tiffs/t") for f in findings)


def test_default_dirs_without_star_files(tmp_path: Path) -> None:
    write_mrc(tmp_path / "Micrographs" / "sub" / "a.mrc")
    (tmp_path / "Micrographs" / "b.mrc").touch()
    (tmp_path / "Micrographs" / "notes.txt").touch()  # not an image: not scanned
    findings, scanned = doctor_images.check(tmp_path, [])
    assert scanned == 2 and [f.where for f in findings if f.level == "error"] == ["Micrographs/b.mrc"]
    fix = by_where(findings)["Micrographs/b.mrc"].fix
    assert "listed in --path" not in fix and fix.endswith(
        "(found by the default scan of Micrographs/**/* (no --path given, no micrograph/movie STAR file))"
    )
    assert doctor_images.check(tmp_path / "Micrographs" / "sub", [])[1] == 0


def test_glob_walk_names_files_as_glob_does(tmp_path: Path) -> None:
    import glob

    for name in ("Movies/a.mrc", "Movies/.hidden.mrc", "Movies/s1/b.mrc", "Movies/s1/deep/c.tif", ".h/x.mrc"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    (tmp_path / "Movies" / "dangling.mrc").symlink_to("nowhere")
    patterns = ["Movies/**/*", "Movies/*", "**/*.mrc", "Movies/**", "*/s1/*", "Movies/s1/b.mrc", "./Movies/*.mrc"]
    patterns += ["Movies/../Movies/s1/*", f"{tmp_path}/Movies/*.mrc", "Movies/[ab]*", ".*/*", "**", "nothing/*"]
    for pattern in patterns:
        names = glob.glob(pattern, root_dir=tmp_path, recursive=True)
        expect = sorted(n for n in names if not os.path.isdir(os.path.join(tmp_path, n)))
        assert sorted(doctor_images.walk_glob(tmp_path, pattern)) == expect, pattern


def test_glob_walk_survives_symlink_loops(tmp_path: Path) -> None:
    """The reviewer's repro: two links to . made the doctor run for minutes (glob's ** follows every link)."""
    for i in range(3):
        write_mrc(tmp_path / "Movies" / f"m{i}.mrc")
    write_mrc(tmp_path / "Movies" / "real" / "r.mrc")
    (tmp_path / "Movies" / "a").symlink_to(".")
    (tmp_path / "Movies" / "b").symlink_to(".")
    (tmp_path / "Movies" / "up").symlink_to("..")
    (tmp_path / "Movies" / "also").symlink_to("real")
    want = ["Movies/m0.mrc", "Movies/m1.mrc", "Movies/m2.mrc", "Movies/real/r.mrc"]  # real paths win over links
    assert sorted(doctor_images.walk_glob(tmp_path, "Movies/**/*")) == want
    for args in ([], ["--path", "Movies/**/*.mrc"], ["--path", "**"]):
        start = time.monotonic()
        done = doctor_process(str(tmp_path), *args)
        assert done.returncode == EX_OK, done.stdout + done.stderr
        assert "; 4 image files scanned" in done.stdout and time.monotonic() - start < 20, done.stdout


def test_only_regular_files_are_images(tmp_path: Path) -> None:
    """A FIFO named *.mrc is not "empty" and is never opened (that would block); a directory is not an image."""
    movies = tmp_path / "Movies"
    write_mrc(movies / "good.mrc")
    os.mkfifo(movies / "pipe.mrc")
    (movies / "dir.mrc").mkdir()
    (movies / "link.mrc").symlink_to("pipe.mrc")
    job = tmp_path / "Import" / "job001"
    job.mkdir(parents=True)
    names = ["Movies/good.mrc", "Movies/pipe.mrc", "Movies/dir.mrc", "Movies/link.mrc"]
    (job / "movies.star").write_text(star_loop("movies", ["rlnMicrographMovieName"], [[n] for n in names]))
    done = doctor_process(str(tmp_path))
    lines = done.stdout.splitlines()
    assert done.returncode == EX_DATAERR, lines
    assert any(line.startswith("error: Movies/pipe.mrc: not a regular file (a FIFO) — ") for line in lines), lines
    assert any(line.startswith("error: Movies/link.mrc: not a regular file (a FIFO) — ") for line in lines), lines
    assert any(line.startswith("error: Movies/dir.mrc: not a regular file (a directory) — ") for line in lines)
    assert not any("empty" in line for line in lines)
    # the default scan (no STAR file) and --path: the FIFO is found and reported, the directory is not a file
    (job / "movies.star").unlink()
    for args in ([], ["--path", "Movies/*"]):
        lines = doctor_process(str(tmp_path), *args).stdout.splitlines()
        assert any(line.startswith("error: Movies/pipe.mrc: not a regular file (a FIFO)") for line in lines), lines


def test_cli_lines_summary_and_exit_code(image_project: Path) -> None:
    (image_project / "default_pipeline.star").write_text(GOOD_PIPELINE.replace("Import/job002/", "Import/job001/"))
    code, lines = run_doctor(str(image_project))
    assert code == EX_DATAERR
    assert all(LINE.match(line) for line in lines[:-1]), lines
    assert re.match(r"relion-qsub doctor: 4 errors, 1 warning, \d+ ok in .*; 15 image files scanned", lines[-1])
    assert any(" — copy it again from the source" in line for line in lines)
    code, lines = run_doctor(str(image_project), "--no-images")
    assert code == EX_OK
    code, lines = run_doctor(str(image_project), "--json")
    doc = json.loads("\n".join(lines))
    assert (
        doc["summary"]["error"] == 4 and doc["summary"]["exit"] == EX_DATAERR and doc["summary"]["files_scanned"] == 15
    )
    assert {"level", "where", "what", "fix", "check", "fixed"} == set(doc["findings"][0])


def test_cli_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert qsub_main(["doctor", str(tmp_path / "nope")]) == EX_NOINPUT
    assert qsub_main(["doctor", str(tmp_path), "--job", "Class2D/job009"]) == EX_NOINPUT
    err = capsys.readouterr().err
    assert "relion-qsub doctor: error: Class2D/job009: no such job directory" in err
    assert qsub_main(["doctor", "--bogus"]) == 64
    assert "relion-qsub doctor: error: unrecognized arguments: --bogus" in capsys.readouterr().err
    assert qsub_main(["doctor", "--help"]) == EX_OK and "--fix" in capsys.readouterr().out


# ---- the pipeline file ----------------------------------------------------------------------------------------


def test_relions_own_pipeline_is_clean() -> None:
    assert doctor_pipeline.judge_pipeline(GOOD_PIPELINE, JOBS) == []
    relion4 = GOOD_PIPELINE.replace("_rlnPipeLineNodeType #2", "_rlnPipeLineNodeTypeLabel #2")
    assert doctor_pipeline.judge_pipeline(relion4, JOBS) == []


@pytest.mark.parametrize(
    ("damage", "expect"),
    [
        (("_rlnPipeLineNodeType #2", "_rlnMicrographName #2"), "cannot find name or type in pipeline_nodes table"),
        (("_rlnPipeLineProcessStatus #4 \n", ""), "line 18: row with 4 value(s) in a loop of 3 label(s)"),
        (("_rlnPipeLineEdgeToNode", "_rlnPipeLineEdgeFromNode"), "cannot find procname or tonodename"),
        (("data_pipeline_general", "data_general"), "no data_pipeline_general block"),
        (("Counter                       3", "Counter 2"), "_rlnPipeLineJobCounter is 2 but job002 exists"),
    ],
)
def test_damaged_pipelines(damage: tuple[str, str], expect: str) -> None:
    text = GOOD_PIPELINE.replace(*damage)
    assert text != GOOD_PIPELINE
    problems = doctor_pipeline.judge_pipeline(text, JOBS)
    assert any(p.level == "error" and expect in p.what for p in problems), problems


def test_empty_and_truncated_pipelines() -> None:
    assert doctor_pipeline.judge_pipeline("", JOBS)[0].level == "error"
    assert doctor_pipeline.judge_pipeline("", [])[0].level == "warning"
    cut = GOOD_PIPELINE[: GOOD_PIPELINE.index("data_pipeline_nodes")]
    cut = cut.replace("Import/job002/       None            0            1 \n", "")
    assert {p.level for p in doctor_pipeline.judge_pipeline(cut, JOBS)} == {"warning"}


@pytest.fixture
def pipeline_project(tmp_path: Path) -> Path:
    """Two jobs with RELION's per-job copies; the project's own file broken as in the seed."""
    for i, job in enumerate(JOBS):
        (tmp_path / job).mkdir(parents=True)
        copy = tmp_path / job / "default_pipeline.star"
        copy.write_text(GOOD_PIPELINE if i else GOOD_PIPELINE.split("Import/job002/")[0])
    old = time.time() - 100
    import os

    os.utime(tmp_path / JOBS[0] / "default_pipeline.star", (old, old))
    (tmp_path / "default_pipeline.star").write_text(GOOD_PIPELINE.replace("_rlnPipeLineNodeType", "_rlnBroken"))
    return tmp_path


def test_broken_pipeline_fixed_from_the_newest_job_copy(pipeline_project: Path) -> None:
    broken = (pipeline_project / "default_pipeline.star").read_text()
    code, lines = run_doctor(str(pipeline_project), "--no-images")
    assert code == EX_DATAERR
    assert any(
        line.startswith("error: default_pipeline.star: RELION: 'PipeLine::read: cannot find name or type")
        and "Import/job002/default_pipeline.star" in line
        for line in lines
    ), lines
    code, lines = run_doctor(str(pipeline_project), "--no-images", "--fix")
    assert code == EX_OK, lines
    assert (pipeline_project / "default_pipeline.star").read_text() == GOOD_PIPELINE
    backups = list(pipeline_project.glob("default_pipeline.star.broken-*"))
    assert len(backups) == 1 and backups[0].read_text() == broken
    assert run_doctor(str(pipeline_project), "--no-images")[0] == EX_OK


def counter_of(text: str) -> str:
    block = starfile.parse(text).block("pipeline_general")
    assert block is not None
    return block.pairs["rlnPipeLineJobCounter"]


def test_restored_copy_gets_a_counter_above_the_jobs_on_disk(tmp_path: Path) -> None:
    """The reviewer's repro: an empty pipeline file, job001's copy with counter 2, job002's copy empty. --fix used
    to restore job001's copy as it was, and the next run said the counter clashes with job002 (and offered the same
    repair again)."""
    for job in JOBS:
        (tmp_path / job).mkdir(parents=True)
    first = GOOD_PIPELINE.split("Import/job002/")[0].replace("Counter                       3", "Counter 2")
    (tmp_path / JOBS[0] / "default_pipeline.star").write_text(first)
    (tmp_path / JOBS[1] / "default_pipeline.star").write_text("")
    (tmp_path / "default_pipeline.star").write_text("")
    code, lines = run_doctor(str(tmp_path), "--no-images")
    assert code == EX_DATAERR
    raise_note = "raise its _rlnPipeLineJobCounter from 2 to 3 (Import/job002 exists)"
    assert any(line.startswith("error: default_pipeline.star: ") and raise_note in line for line in lines), lines
    code, lines = run_doctor(str(tmp_path), "--no-images", "--fix")
    assert code == EX_OK, lines
    assert any(
        "fixed: copied Import/job001/default_pipeline.star to default_pipeline.star; raised its "
        "_rlnPipeLineJobCounter from 2 to 3 (Import/job002 exists)" in line
        for line in lines
    ), lines
    restored = (tmp_path / "default_pipeline.star").read_text()
    assert counter_of(restored) == "3"
    assert restored == first.replace("Counter 2", "Counter 3")  # nothing else changed
    code, lines = run_doctor(str(tmp_path), "--no-images")
    assert code == EX_OK, lines
    assert not any(line.startswith("error: ") for line in lines), lines
    # job002 is on disk but not in the restored file: said, as a warning
    assert any(line.startswith("warning: default_pipeline.star: 1 job dir(s) on disk missing") for line in lines)


def test_a_copy_consistent_with_the_disk_is_preferred(pipeline_project: Path) -> None:
    one_job = GOOD_PIPELINE.split("Import/job002/")[0]  # lists job001 only
    newest, older = pipeline_project / JOBS[1] / PIPE, pipeline_project / JOBS[0] / PIPE

    def write(path: Path, counter: int, age: float) -> None:
        path.write_text(one_job.replace("Counter                       3", f"Counter {counter}"))
        backdate(path, age)

    write(newest, 2, 10)  # readable, but job002 exists on disk
    write(older, 3, 100)  # fits the disk
    best = doctor_pipeline.best_copy(pipeline_project, JOBS)
    assert best is not None and best.source == older and best.raise_to is None
    write(older, 2, 100)  # none fits the disk: the newest readable one, its counter raised
    best = doctor_pipeline.best_copy(pipeline_project, JOBS)
    assert best is not None and (best.source, best.counter, best.raise_to, best.highest) == (newest, 2, 3, JOBS[1])


def test_a_broken_newest_copy_is_passed_over(pipeline_project: Path) -> None:
    (pipeline_project / JOBS[1] / "default_pipeline.star").write_text("")
    findings = doctor_pipeline.check(pipeline_project)
    assert "Import/job001/default_pipeline.star" in next(f.fix for f in findings if f.level == "error")


@pytest.mark.skipif(shutil.which("relion_pipeliner") is None, reason="Debian's relion is not installed")
def test_relion_reads_the_repaired_pipeline(pipeline_project: Path) -> None:
    def add_job() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["relion_pipeliner", "--addJob", "Import", "--addJobOptions", "fn_in_raw == Movies/*.mrc;"],
            cwd=pipeline_project,
            capture_output=True,
            text=True,
            timeout=30,
        )

    failed = add_job()
    assert (
        failed.returncode != 0 and "cannot find name or type in pipeline_nodes table" in failed.stdout + failed.stderr
    )
    backdate(pipeline_project / ".relion_lock", 3600)  # the lock the failed read left behind, an hour later
    code, lines = run_doctor(str(pipeline_project), "--no-images", "--fix")
    assert code == EX_OK and any(line.startswith("ok: .relion_lock: stale") for line in lines), lines
    ok = add_job()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (pipeline_project / "Import" / "job003").is_dir()


# ---- the lock -------------------------------------------------------------------------------------------------


@pytest.fixture
def relion_fake(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """A live process named relion_fake whose cwd is a project: what a running RELION GUI looks like."""
    project = tmp_path / "held"
    project.mkdir()
    exe = tmp_path / "relion_fake"
    shutil.copy("/bin/sleep", exe)
    child = subprocess.Popen([str(exe), "60"], cwd=project)
    try:
        yield project, child
    finally:
        child.kill()
        child.wait()


def test_stale_lock_is_removed(tmp_path: Path) -> None:
    lock = tmp_path / ".relion_lock"
    lock.mkdir()
    (lock / "lock_default_pipeline.star").write_text("Undefined lock message")
    backdate(lock, doctor_pipeline.LOCK_STALE_SECONDS + 60)
    code, lines = run_doctor(str(tmp_path), "--no-images")
    assert code == EX_DATAERR and lines[0].startswith("error: .relion_lock: stale: made 11 min ago "), lines
    assert "only this host's processes were checked" in lines[0]
    code, lines = run_doctor(str(tmp_path), "--no-images", "--fix")
    assert code == EX_OK and lines[0].endswith("fixed: removed it") and not lock.exists()


def test_young_lock_is_not_stale(tmp_path: Path) -> None:
    """The reviewer's repro: a lock 9 s old was called stale and --fix removed it (a RELION on another node holds
    it, or this one just let go of it). Young: a warning, nothing removed, and the pipeline is not replaced."""
    lock = tmp_path / ".relion_lock"
    lock.mkdir()
    (lock / "lock_default_pipeline.star").write_text("Undefined lock message")
    backdate(lock, 9)
    (tmp_path / JOBS[0]).mkdir(parents=True)
    (tmp_path / JOBS[0] / PIPE).write_text(GOOD_PIPELINE.split("Import/job002/")[0])
    (tmp_path / PIPE).write_text("")
    code, lines = run_doctor(str(tmp_path), "--no-images", "--fix")
    assert lines[0].startswith("warning: .relion_lock: made 9 s ago: in use or just left; check again later"), lines
    assert "only this host's processes were checked" in lines[0] and "older than 10 min" in lines[0]
    assert lock.is_dir() and (tmp_path / PIPE).read_text() == ""
    assert code == EX_DATAERR and "when .relion_lock is gone or stale, copy Import/job001" in lines[1], lines
    # a lock dir whose file inside is new is young too, however old the dir
    backdate(lock, 3600)
    (lock / "lock_default_pipeline.star").touch()
    assert doctor_pipeline.check(tmp_path)[0].level == "warning"
    # old enough: stale, and both repairs run
    backdate(lock, 3600)
    code, lines = run_doctor(str(tmp_path), "--no-images", "--fix")
    assert code == EX_OK and not lock.exists() and counter_of((tmp_path / PIPE).read_text()) == "3", lines


def test_stale_lock_with_foreign_files_is_renamed_not_deleted(tmp_path: Path) -> None:
    lock = tmp_path / ".relion_lock"
    lock.mkdir()
    (lock / "my_notes.txt").write_text("keep me")
    backdate(lock, 3600)
    run_doctor(str(tmp_path), "--no-images", "--fix")
    (moved,) = tmp_path.glob(".relion_lock.stale-*")
    assert (moved / "my_notes.txt").read_text() == "keep me" and not lock.exists()


def test_live_lock_is_left_alone(relion_fake: tuple[Path, subprocess.Popen[bytes]]) -> None:
    project, child = relion_fake
    (project / ".relion_lock").mkdir()
    (project / "default_pipeline.star").write_text("")
    (project / "Import" / "job001").mkdir(parents=True)
    (project / "Import" / "job001" / "default_pipeline.star").write_text(GOOD_PIPELINE.split("Import/job002/")[0])
    holders = doctor_pipeline.relion_processes(project)
    assert [(h.pid, h.name) for h in holders] == [(child.pid, "relion_fake")]
    code, lines = run_doctor(str(project), "--no-images", "--fix")
    assert lines[0].startswith(
        f"warning: .relion_lock: held 0 s by a live RELION in this project: relion_fake (pid {child.pid})"
    )
    assert (project / ".relion_lock").is_dir()
    # and the pipeline is not replaced under a running RELION
    assert code == EX_DATAERR and f"close RELION (pid {child.pid})" in lines[1]
    assert (project / "default_pipeline.star").read_text() == ""


# ---- job dirs (Slurm faked; the real one is in test_doctor_cluster.py) ------------------------------------------


FORGOT = "slurm_load_jobs error: Invalid job id specified\n"
UNREACHABLE = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"


class FakeSlurm:
    def __init__(
        self,
        scontrol: str | None = None,
        sacct: str | None = None,
        srun: dict[str, str] | None = None,
        *,
        scontrol_error: str = FORGOT,
        missing: tuple[str, ...] = (),
    ):
        self.scontrol, self.sacct, self.srun = scontrol, sacct, srun
        self.scontrol_error, self.missing = scontrol_error, missing
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], timeout: float | None = None) -> proc.Result:
        self.calls.append(list(argv))
        if argv[0] in self.missing:
            raise CommandError(f"{argv[0]}: command not found; is Slurm installed and on PATH?")
        if argv[0] == "srun":
            if self.srun is None:
                return proc.Result(tuple(argv), 1, "", "srun: error: Unable to confirm allocation\n")
            return proc.Result(tuple(argv), 0, self.srun[argv[argv.index("--quiet") + 1]], "")
        if argv[0] == "scontrol":
            if self.scontrol is None:
                return proc.Result(tuple(argv), 1, "", self.scontrol_error)
            return proc.Result(tuple(argv), 0, self.scontrol, "")
        if self.sacct is None:
            return proc.Result(tuple(argv), 1, "", "Slurm accounting storage is disabled\n")
        return proc.Result(tuple(argv), 0, self.sacct, "")


def scontrol_line(job_id: str, state: str, reason: str = "None", exit_code: str = "0:0") -> str:
    return (
        f"JobId={job_id} JobName=run_submit.slurm UserId=me(0) JobState={state} Reason={reason} "
        f"ExitCode={exit_code} TimeLimit=00:05:00 NodeList=cn5 Command=/p q/Class2D/job001/run_submit.slurm "
        "WorkDir=/p q StdErr=/p q/Class2D/job001/run.err TresPerNode=gres:gpu:p100:4,gres:lscratch:10\n"
    )


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    job = tmp_path / "Class2D" / "job001"
    job.mkdir(parents=True)
    (job / "relion-qsub.jsonl").write_text(
        json.dumps({"submitted": True, "job_id": "41"}) + "\nnot json\n" + json.dumps({"job_id": "42"}) + "\n"
    )
    return job


def test_scontrol_parsing_keeps_values_with_spaces() -> None:
    info = client.parse_scontrol(scontrol_line("42", "TIMEOUT", "TimeLimit"))
    assert info["JobState"] == "TIMEOUT" and info["WorkDir"] == "/p q" and info["Command"].endswith(".slurm")


def test_running_in_relion_gone_from_slurm(job_dir: Path) -> None:
    fake = FakeSlurm()
    findings = doctor_job.check(job_dir.parent.parent, job_dir, runner=fake)
    assert [c[0] for c in fake.calls] == ["scontrol", "sacct"] and fake.calls[0][-1] == "42"
    (first,) = findings
    assert first.level == "error" and first.where == "Class2D/job001/"
    assert first.what.startswith("RELION thinks running, Slurm says ended: Slurm no longer knows job 42")
    doctor_main.apply_repairs(findings)
    assert first.level == "ok" and first.fixed and (job_dir / "RELION_JOB_EXIT_FAILURE").exists()
    assert "relion-qsub doctor: marked failed: Slurm job 42 ended" in (job_dir / "run.err").read_text()


@pytest.mark.parametrize(
    ("fake", "said"),
    [
        (FakeSlurm(scontrol_error=UNREACHABLE), "scontrol: " + UNREACHABLE.strip()),
        (FakeSlurm(scontrol_error=UNREACHABLE, missing=("sacct",)), "scontrol: " + UNREACHABLE.strip()),
        (FakeSlurm(scontrol_error=""), "scontrol: exit status 1"),
        (FakeSlurm(missing=("scontrol", "sacct")), "scontrol: command not found"),
    ],
)
def test_slurm_that_cannot_be_asked_is_not_an_ended_job(job_dir: Path, fake: FakeSlurm, said: str) -> None:
    """The reviewer's repro: scontrol failing for any reason (and no sacct) was read as "Slurm no longer knows the
    job", and --fix would have marked a running job failed. Only "Invalid job id specified" means forgotten."""
    (job_dir / "run.err").write_text(SEED_ERRORS["rank-died"] + "\n")  # a zombie only if known to run
    findings = doctor_job.check(job_dir.parent.parent, job_dir, runner=fake)
    (only,) = findings
    assert only.level == "warning" and only.repair is None, only
    assert only.what.startswith(f"RELION: running; Slurm could not be asked about job 42: {said}"), only.what
    assert "nothing was changed" in only.fix and "scontrol show job 42" in only.fix
    doctor_main.apply_repairs(findings)
    assert not (job_dir / "RELION_JOB_EXIT_FAILURE").exists() and not only.fixed


def test_sacct_answers_when_the_controller_does_not(job_dir: Path) -> None:
    fake = FakeSlurm(sacct="COMPLETED|0:0|cn5|00:05:00\n", scontrol_error=UNREACHABLE)
    (first,) = doctor_job.check(job_dir.parent.parent, job_dir, runner=fake)
    assert first.level == "error" and first.what.endswith("Slurm says ended: Slurm job 42 COMPLETED")
    assert first.repair is not None


def test_unreachable_controller_and_a_running_accounting_record(job_dir: Path) -> None:
    """slurmdbd still says RUNNING for a job that may have ended while the controller was unreachable."""
    fake = FakeSlurm(sacct="RUNNING|0:0|cn5|00:05:00\n", scontrol_error=UNREACHABLE)
    (first,) = doctor_job.check(job_dir.parent.parent, job_dir, runner=fake)
    assert first.level == "warning" and "Slurm could not be asked about job 42" in first.what, first
    assert first.repair is None


def test_forgotten_job_without_sacct_command(job_dir: Path) -> None:
    fake = FakeSlurm(missing=("sacct",))
    (first,) = doctor_job.check(job_dir.parent.parent, job_dir, runner=fake)
    assert first.level == "error" and "Slurm no longer knows job 42" in first.what and first.repair is not None


@pytest.mark.parametrize("make", ["dir", "fifo"])
@pytest.mark.parametrize("name", ["run.err", "relion-qsub.jsonl"])
def test_unreadable_job_files_are_one_line_not_a_crash(job_dir: Path, name: str, make: str) -> None:
    """The reviewer's repro: run.err a directory crashed the doctor (IsADirectoryError, exit 70). A FIFO is not
    opened (it would block)."""
    path = job_dir / name
    if path.exists():
        path.unlink()
    path.mkdir() if make == "dir" else os.mkfifo(path)
    done = doctor_process(str(job_dir.parent.parent), "--job", "Class2D/job001", "--no-images")
    kind = "a directory" if make == "dir" else "a FIFO"
    line = f"warning: Class2D/job001/{name}: not checked: cannot read {name}: {kind}, not a regular file — "
    assert [x for x in done.stdout.splitlines() if x.startswith(line)], done.stdout + done.stderr
    assert "internal error" not in done.stderr and done.returncode != 70
    jobs = [x for x in done.stdout.splitlines() if ": Class2D/job001/" in x]
    if name == "relion-qsub.jsonl":  # the job id is unknown: not "no job id recorded" (which says to mark it failed)
        assert len(jobs) == 1, jobs


def test_unlistable_job_dir_is_one_line(job_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(path: object) -> list[str]:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(doctor_job.os, "listdir", denied)
    (only,) = doctor_job.check(job_dir.parent.parent, job_dir, runner=FakeSlurm())
    assert str(only).startswith("warning: Class2D/job001/: not checked: cannot read the job directory: Permission")


def test_marking_failed_does_not_need_a_writable_run_err(job_dir: Path) -> None:
    (job_dir / "run.err").mkdir()
    done = doctor_job.mark_ended(job_dir, "x")
    assert done.startswith("created RELION_JOB_EXIT_FAILURE (no line in run.err: a directory, not a regular file")
    assert (job_dir / "RELION_JOB_EXIT_FAILURE").exists()


def test_timeout_from_slurm_and_run_err_reported_once(job_dir: Path) -> None:
    (job_dir / "run.err").write_text(
        "Iteration 12\nslurmstepd: error: *** JOB 42 ON cn5 CANCELLED AT 2026-11-25T03:00:00 DUE TO TIME LIMIT ***\n"
    )
    findings = doctor_job.check(
        job_dir.parent.parent, job_dir, runner=FakeSlurm(scontrol_line("42", "TIMEOUT", "TimeLimit"))
    )
    texts = [str(f) for f in findings]
    assert texts[0].startswith("error: Class2D/job001/: RELION thinks running, Slurm says ended: Slurm job 42 TIMEOUT")
    assert texts[1].startswith("error: Class2D/job001/: Slurm: job 42 hit its time limit of 00:05:00")
    # Issue 22: the fix names the next walltime and the box by its label (it said --time).
    assert "ask 0:10:00 in the 'Walltime' box and continue from the last iteration" in texts[1], texts[1]
    assert len(texts) == 2  # run.err's TIME LIMIT line adds nothing new


def test_sacct_when_the_controller_forgot(job_dir: Path) -> None:
    fake = FakeSlurm(sacct="OUT_OF_MEMORY|0:125|cn5|00:05:00\n")
    (job_dir / "RELION_JOB_EXIT_FAILURE").touch()
    findings = doctor_job.check(job_dir.parent.parent, job_dir, runner=fake)
    assert [f.level for f in findings] == ["ok", "error"] and "ran out of memory" in findings[1].what


SEED_ERRORS = {
    "oom": "slurmstepd: error: Detected 1 oom-kill event(s) in StepId=42.0. Some of your processes may have been",
    "cancelled": "slurmstepd: error: *** JOB 42 ON cn5 CANCELLED AT 2026-11-25T03:00:00 ***",
    "bad-alloc": "terminate called after throwing an instance of 'std::bad_alloc'",
    "bad-image": "ERROR: FFTW plans cannot be created",
    "gpu-threads": "ERROR: CudaCustomAllocator out of memory",
    "gpu-memory": "ERROR: out of memory in /usr/local/apps/RELION/git/2.1.0/src/gpu_utils/cuda_mem_utils.h at line 576",
    "scratch-full": "cp: error writing '/lscratch/42/relion_volatile/x.mrcs': No space left on device",
    "gpus-busy": "Error: All GPUs are in use, quit.",
    "rank-died": "srun: error: cn1614: task 3: Exited with exit code 1",
    "not-submitted": "relion-qsub: job not submitted: sbatch refused the job: Invalid TRES specification",
}


def test_each_seed_message_is_recognised_once() -> None:
    text = "\n".join(["noise", *SEED_ERRORS.values(), *SEED_ERRORS.values()])
    hits = doctor_job.scan_err(text)
    assert [p.kind for _, p, _ in hits] == list(SEED_ERRORS)
    assert [n for n, _, _ in hits] == list(range(2, 2 + len(SEED_ERRORS)))


def test_run_err_endings_with_line_numbers(job_dir: Path) -> None:
    (job_dir / "RELION_JOB_EXIT_FAILURE").touch()
    (job_dir / "run.err").write_text("a\nb\n" + SEED_ERRORS["oom"] + "\n" + SEED_ERRORS["scratch-full"] + "\n")
    findings = doctor_job.check(
        job_dir.parent.parent, job_dir, runner=FakeSlurm(scontrol_line("42", "FAILED", exit_code="1:0"))
    )
    wheres = [(f.level, f.where) for f in findings]
    assert ("error", "Class2D/job001/run.err:3") in wheres and ("error", "Class2D/job001/run.err:4") in wheres
    assert any("fewer MPI ranks per node" in f.fix for f in findings)
    assert any("lscratch" in f.fix for f in findings)


def test_long_run_err_keeps_true_line_numbers(job_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_job, "TAIL_BYTES", 1000)
    (job_dir / "RELION_JOB_EXIT_FAILURE").touch()
    (job_dir / "run.err").write_text("x" * 50 + "\n" + "line\n" * 999 + SEED_ERRORS["bad-image"] + "\n")
    findings = doctor_job.check(job_dir.parent.parent, job_dir, runner=FakeSlurm(scontrol_line("42", "FAILED")))
    assert "Class2D/job001/run.err:1001" in {f.where for f in findings}


def test_zombie_rank_only_while_running(job_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (job_dir / "run.err").write_text(SEED_ERRORS["rank-died"] + "\n")
    site = tmp_path / "site.toml"
    scratch = tmp_path / "lscratch"
    (scratch / "42").mkdir(parents=True)
    site.write_text(f'name = "t"\n[scratch]\njob_dir = "{scratch}/$SLURM_JOB_ID"\n')
    monkeypatch.setenv("RELION_QSUB_SITE", str(site))
    findings = doctor_job.check(job_dir.parent.parent, job_dir, runner=FakeSlurm(scontrol_line("42", "RUNNING")))
    assert findings[0].level == "ok" and findings[0].what == "running: Slurm job 42 RUNNING on cn5"
    assert findings[1].level == "warning" and "Zombification" in findings[1].what
    assert findings[2].what.startswith(f"scratch {scratch}/42 on this host: ") and "GB free" in findings[2].what
    ended = doctor_job.check(job_dir.parent.parent, job_dir, runner=FakeSlurm(scontrol_line("42", "COMPLETED")))
    assert not any("Zombification" in f.what for f in ended)


def test_judge_matrix() -> None:
    alive = client.JobView("7", "RUNNING")
    done = client.JobView("7", "COMPLETED")
    assert doctor_job.judge("j/", "running", None)[0][0] == "warning"
    assert doctor_job.judge("j/", "success", None)[0][0] == "ok"
    assert doctor_job.judge("j/", "running", alive)[0][0] == "ok"
    assert doctor_job.judge("j/", "running", done)[0][:2] == (
        "error",
        "RELION thinks running, Slurm says ended: Slurm job 7 COMPLETED",
    )
    assert doctor_job.judge("j/", "success", alive)[0][0] == "warning"
    assert doctor_job.judge("j/", "success", done) == [("ok", "RELION: success; Slurm job 7 COMPLETED", "")]
    cancelled = doctor_job.judge("j/", "failure", client.JobView("7", "CANCELLED", exit_code="0:15"))
    assert [level for level, _, _ in cancelled] == ["ok", "warning"]


def test_run_err_of_a_successful_job_only_warns(job_dir: Path) -> None:
    (job_dir / "RELION_JOB_EXIT_SUCCESS").touch()
    (job_dir / "run.err").write_text(SEED_ERRORS["gpu-threads"] + "\n")
    findings = doctor_job.check(job_dir.parent.parent, job_dir, runner=FakeSlurm(scontrol_line("42", "COMPLETED")))
    assert [f.level for f in findings] == ["ok", "warning"]


def test_fix_never_overrides_relions_own_exit_file(job_dir: Path) -> None:
    (job_dir / "RELION_JOB_EXIT_SUCCESS").touch()
    assert doctor_job.mark_ended(job_dir, "x").startswith("left alone")
    assert not (job_dir / "RELION_JOB_EXIT_FAILURE").exists()


DF = """Filesystem     1024-blocks     Used Available Capacity Mounted on
/dev/vda         264212084 23210616  {avail}      22% /lscratch
"""


@pytest.mark.parametrize(
    ("avail_gb", "du_gb", "level", "fix"),
    [(80, 1, "ok", ""), (5, 1, "warning", "--keep_free_scratch"), (80, 9.5, "warning", "90% of its lscratch")],
)
def test_scratch_measured_on_the_node(
    job_dir: Path, monkeypatch: pytest.MonkeyPatch, avail_gb: int, du_gb: float, level: str, fix: str
) -> None:
    monkeypatch.setenv("RELION_QSUB_SITE", "testbed")  # scratch job_dir /lscratch/$SLURM_JOB_ID, gres lscratch
    srun = {"df": DF.format(avail=avail_gb << 20), "du": f"{int(du_gb * (1 << 20))}\t/lscratch/42\n"}
    fake = FakeSlurm(scontrol_line("42", "RUNNING"), srun=srun)
    finding = doctor_job.check(job_dir.parent.parent, job_dir, runner=fake)[-1]
    assert ["srun", "--jobid=42", "--overlap", "-N1", "-n1", "--quiet", "df", "-Pk", "/lscratch/42"] in fake.calls
    assert finding.what == (
        f"scratch /lscratch/42 on cn5: {du_gb:.1f} GB used by the job, {avail_gb:.1f} GB free (lscratch:10 requested)"
    )
    assert finding.level == level and fix in finding.fix


def test_scratch_not_reachable(job_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELION_QSUB_SITE", "testbed")
    finding = doctor_job.check(job_dir.parent.parent, job_dir, runner=FakeSlurm(scontrol_line("42", "RUNNING")))[-1]
    assert finding.level == "ok" and "not measured" in finding.what and "srun --jobid=42 --overlap" in finding.fix
    assert doctor_job.lscratch_gb("gres/gpu:p100=4,gres/lscratch=200") == 200
    assert doctor_job.lscratch_gb("gres:gpu:4") is None
