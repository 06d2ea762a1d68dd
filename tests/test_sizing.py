"""The job fits its data: particles counted and boxed from every RELION version's STAR shape, and the judgements.

The STAR files are written here in the shapes RELION writes them: 3.0's single table (the box only in the MRC
header), 3.1's ``data_optics`` + ``data_particles`` (as relion_project 3.1.3 writes them, trailing blanks
included), 4.0's and 5.0's (same tables, other version line, more optics columns), several optics groups with
different boxes, and 3D subtomograms. The judgements' figures are worked out by hand from RELION's formulas
(relion_qsub/sizing.py cites the source of each).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from relion_qsub import sizing
from relion_qsub.formats import particles as pmod
from relion_qsub.formats.particles import OpticsGroup, Particles, ParticlesError

GIB = 1024**3


def _mrc(path: Path, nx: int, nz: int = 1) -> None:
    """An MRC header (mode 2, little-endian, 'MAP ' id), no data: only the header is read."""
    raw = bytearray(1024)
    struct.pack_into("<4i", raw, 0, nx, nx, nz, 2)
    raw[208:212] = b"MAP "
    raw[212:214] = b"\x44\x44"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(raw))


def _optics(version: str, groups: list[tuple[int, int, int]], extra: bool = False) -> str:
    """data_optics as RELION 3.1+ writes it: (group, box, dimensionality) per row."""
    labels = ["rlnOpticsGroup", "rlnOpticsGroupName", "rlnImagePixelSize", "rlnImageSize", "rlnImageDimensionality"]
    if extra:  # 4.0/5.0 add columns (RELION keeps labels it does not know)
        labels += ["rlnCtfDataAreCtfPremultiplied", "rlnMicrographOriginalPixelSize"]
    head = "".join(f"_{label} #{i} \n" for i, label in enumerate(labels, 1))
    rows = "".join(
        f"{g:12d}    optics{g}     1.000000 {box:12d} {dim:12d} " + ("0 0.885 " if extra else "") + "\n"
        for g, box, dim in groups
    )
    return f"\n# version {version}\n\ndata_optics\n\nloop_ \n{head}{rows} \n\n"


def _particles(version: str, rows: list[tuple[int, str]]) -> str:
    head = "_rlnAngleRot #1 \n_rlnAngleTilt #2 \n_rlnOpticsGroup #3 \n_rlnImageName #4 \n"
    body = "".join(f"    0.852697    91.891966 {g:12d} {name} \n" for g, name in rows)
    return f"\n# version {version}\n\ndata_particles\n\nloop_ \n{head}{body} \n"


def _stack_rows(n: int, group: int = 1, stack: str = "Extract/job007/parts.mrcs") -> list[tuple[int, str]]:
    return [(group, f"{i:06d}@{stack}") for i in range(1, n + 1)]


@pytest.mark.parametrize("version,extra", [("30001", False), ("40000", True), ("50001", True)])
def test_optics_shapes_31_40_50(tmp_path: Path, version: str, extra: bool) -> None:
    star = tmp_path / "particles.star"
    star.write_text(_optics(version, [(1, 256, 2)], extra) + _particles(version, _stack_rows(1234)))
    got = pmod.read(star, tmp_path)  # no MRC file exists: the box comes from data_optics alone
    assert got.shape == "3.1+ optics groups"
    assert (got.count, got.box) == (1234, 256)
    assert got.image_bytes() == 1234 * 256 * 256 * 4
    assert got.scratch_bytes() == got.image_bytes()


def test_30_single_table_box_from_the_mrc_header(tmp_path: Path) -> None:
    _mrc(tmp_path / "Extract/job007/parts.mrcs", 180, nz=500)
    star = tmp_path / "particles.star"
    rows = "".join(f"{i:06d}@Extract/job007/parts.mrcs 1.0 2.0\n" for i in range(1, 501))
    star.write_text(f"\ndata_\n\nloop_\n_rlnImageName #1\n_rlnDefocusU #2\n_rlnDefocusV #3\n{rows}\n")
    got = pmod.read(star, tmp_path)
    assert got.shape == "3.0 single table"
    assert (got.count, got.box) == (500, 180)


def test_real_relion_project_output_31(tmp_path: Path) -> None:
    """Verbatim layout of relion_project 3.1.3's parts.star (first rows), trailing spaces and blank lines."""
    text = (
        "\n# version 30001\n\ndata_optics\n\nloop_ \n_rlnOpticsGroup #1 \n_rlnOpticsGroupName #2 \n_rlnVoltage #3 \n"
        "_rlnSphericalAberration #4 \n_rlnImagePixelSize #5 \n_rlnImageSize #6 \n_rlnImageDimensionality #7 \n"
        "           1    optics1   300.000000     2.700000     3.000000           32            2 \n \n\n"
        "# version 30001\n\ndata_particles\n\nloop_ \n_rlnAngleRot #1 \n_rlnAngleTilt #2 \n_rlnAnglePsi #3 \n"
        "_rlnOriginX #4 \n_rlnOriginY #5 \n_rlnOpticsGroup #6 \n_rlnImageName #7 \n"
        "    0.852697    91.891966   187.513769     0.000000     0.000000            1 000001@parts.mrcs \n"
        "  182.424288   101.433098   183.157153     0.000000     0.000000            1 000002@parts.mrcs \n"
        " \n"
    )
    star = tmp_path / "parts.star"
    star.write_text(text)
    got = pmod.read(star, tmp_path)
    assert (got.count, got.box, got.groups[0].dimensionality) == (2, 32, 2)


def test_optics_groups_with_different_boxes_are_counted_per_group(tmp_path: Path) -> None:
    rows = _stack_rows(30, 1) + _stack_rows(20, 2, "Extract/job008/b.mrcs") + _stack_rows(5, 1)
    star = tmp_path / "p.star"
    star.write_text(_optics("50001", [(1, 200, 2), (2, 300, 2)], True) + _particles("50001", rows))
    got = pmod.read(star, tmp_path)
    assert [(g.number, g.box, g.count) for g in got.groups] == [(1, 200, 35), (2, 300, 20)]
    assert got.box == 300
    assert got.image_bytes() == 35 * 200 * 200 * 4 + 20 * 300 * 300 * 4


def test_subtomograms_3d_take_box_cubed_and_a_header_each_on_scratch(tmp_path: Path) -> None:
    star = tmp_path / "p.star"
    star.write_text(_optics("40000", [(1, 64, 3)]) + _particles("40000", [(1, "Extract/job1/sub1.mrc")] * 10))
    got = pmod.read(star, tmp_path)
    assert got.image_bytes() == 10 * 64**3 * 4
    assert got.scratch_bytes() == 10 * (64**3 * 4 + 1024)  # copyParticlesToScratch: += 1024 for 3D


def test_optics_without_image_size_reads_the_header(tmp_path: Path) -> None:
    _mrc(tmp_path / "Extract/job007/parts.mrcs", 128, nz=3)
    star = tmp_path / "p.star"
    optics = "\ndata_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnImagePixelSize #2\n1 1.0\n\n"
    star.write_text(optics + _particles("30001", _stack_rows(3)))
    assert pmod.read(star, tmp_path).box == 128


@pytest.mark.parametrize(
    "text,says",
    [
        (None, "cannot read the particles file"),
        ("data_\nloop_\n_rlnDefocusU #1\n1.0\n", "no loop with _rlnImageName"),
        ("data_\nloop_\n_rlnImageName #1\n1@missing.mrcs\n", "missing.mrcs (first image of"),
        ("data_optics\nloop_\n_rlnOpticsGroup #1\n_rlnImageSize #2\n1 big\n" + _particles("30001", []), "'big'"),
    ],
)
def test_unreadable_input_is_one_line_naming_the_file(tmp_path: Path, text: str | None, says: str) -> None:
    star = tmp_path / "p.star"
    if text is not None:
        star.write_text(text)
    with pytest.raises(ParticlesError) as err:
        pmod.read(star, tmp_path)
    assert says in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------ the command line


def test_refine_words() -> None:
    words = (
        "`which relion_refine_mpi` --o Refine3D/job012/run --auto_refine --i Extract/job007/particles.star "
        "--scratch_dir /lscratch/$SLURM_JOB_ID --keep_free_scratch 5 --pad 1 --gpu  --j 4"
    ).split()
    r = sizing.refine(words)
    assert r is not None and r.mpi and r.auto_refine and r.gpu and not r.preread and r.parallel_disc_io
    assert (r.star, r.scratch_dir, r.keep_free_gb, r.pad) == (
        "Extract/job007/particles.star", "/lscratch/$SLURM_JOB_ID", 5.0, 1.0)  # fmt: skip
    plain = sizing.refine(["relion_refine", "--i", "p.star", "--preread_images", "--no_parallel_disc_io"])
    assert plain is not None and not plain.mpi and plain.preread and not plain.parallel_disc_io
    assert (plain.keep_free_gb, plain.pad) == (10.0, 2.0)  # RELION's defaults
    assert sizing.refine(["relion_refine_mpi_x", "--i", "p.star"]) is None
    assert sizing.refine(["relion_preprocess_mpi", "--i", "p.star"]) is None


# ------------------------------------------------------------------------------------------ judgements


def _set(count: int, box: int) -> Particles:
    return Particles("Extract/job007/particles.star", "3.1+ optics groups", (OpticsGroup(1, box, 2, count),))


def _refine(extra: str = "") -> sizing.Refine:
    r = sizing.refine(f"relion_refine_mpi --i p.star --auto_refine --gpu {extra}".split())
    assert r is not None
    return r


def test_scratch_needs_the_data_plus_keep_free() -> None:
    data = _set(1_000_000, 256)  # 1e6 * 256^2 * 4 = 244.1 GiB
    job = _refine("--scratch_dir /lscratch/$SLURM_JOB_ID")
    assert sizing.scratch_needed_gb(data) == 255  # ceil(244.14 + 10)
    assert sizing.scratch_verdict(data, job, 255, "the Local scratch box") is None
    msg = sizing.scratch_verdict(data, job, 200, "the Local scratch box")
    assert msg is not None
    assert "1,000,000 particles of box 256 px" in msg and "244.1 GB" in msg
    assert "about 78% of them" in msg and "ask lscratch:255 in the Local scratch box" in msg
    assert "none of them" in (sizing.scratch_verdict(data, job, 8, "x") or "")
    keep1 = _refine("--scratch_dir /lscratch/x --keep_free_scratch 1")
    assert sizing.scratch_needed_gb(data, keep1.keep_free_gb) == 246
    assert sizing.scratch_verdict(data, _refine(), 1, "x") is None  # no --scratch_dir: nothing is copied
    assert sizing.scratch_verdict(data, _refine("--scratch_dir /l --preread_images"), 1, "x") is None


def test_preread_counts_every_rank_on_the_busiest_node() -> None:
    data = _set(100_000, 200)  # 100,000 * 200^2 * 4 = 14.9 GiB per rank
    job = _refine("--preread_images")
    # homogeneous+1, 5 tasks per node: the leader's node runs 5 ranks, all holding the data (parallel disc I/O)
    assert sizing.preread_holders(job, 5) == 5
    fits = 5 * 16 * 1024  # 16 GB per rank
    assert sizing.preread_verdict(data, job, 5, fits, (10, "CPUs"), "box") is None
    msg = sizing.preread_verdict(data, job, 5, 5 * 10 * 1024, (10, "CPUs"), "the Memory Per Thread box")
    assert msg is not None
    assert "each of the 5 MPI ranks" in msg and "14.9 GB each, 74.5 GB on that node" in msg
    assert "ask at least 8 GB in the Memory Per Thread box (10 CPUs on that node)" in msg  # ceil(74.5 / 10)
    leader_only = _refine("--preread_images --no_parallel_disc_io")
    assert sizing.preread_holders(leader_only, 5) == 1
    assert sizing.preread_verdict(data, leader_only, 5, 16 * 1024, (1, ""), "box") is None
    assert sizing.preread_verdict(data, _refine(), 5, 1, (1, ""), "box") is None  # no pre-read


def test_gpu_box_limit_is_relions_check_fixed_sized_objects() -> None:
    p100 = 16 * GIB
    # (16 GiB / (1.05 * 2.5 * 4 * 1))^(1/3) / 2 = (1.636e9)^(1/3) / 2 = 1178.5 / 2 -> 589
    assert sizing.gpu_box_limit(p100, 1) == 589
    assert sizing.gpu_box_limit(p100, 2) == 467
    assert sizing.gpu_box_limit(p100, 1, pad=1) == 1178
    assert sizing.gpu_shares(4, 4) == 1 and sizing.gpu_shares(8, 4) == 2 and sizing.gpu_shares(2, 0) == 2
    data = _set(1000, 512)
    assert sizing.gpu_verdict(data, _refine(), "p100", p100, 1) is None
    msg = sizing.gpu_verdict(data, _refine(), "p100", p100, 2)
    assert msg is not None and "box 512 px" in msg and "467 px" in msg and "shared by 2 MPI ranks" in msg
    assert sizing.gpu_verdict(data, _refine("--pad 1"), "p100", p100, 2) is None
    class3d = sizing.refine("relion_refine_mpi --i p.star --gpu".split())
    assert (
        class3d is not None and sizing.gpu_verdict(data, class3d, "p100", p100, 8) is None
    )  # RELION: auto-refine only


def test_preread_with_ranks_slurm_places_judges_the_least_there_can_be() -> None:
    data = _set(20_000, 256)  # 4.9 GiB
    msg = sizing.preread_verdict(data, _refine("--preread_images"), None, 1024, (1, "CPUs"), "the box")
    assert msg is not None
    assert "every MPI rank holds all of them (4.9 GB each, 4.9 GB on a node with one rank)" in msg
    assert "ask at least 5 GB in the box (1 CPU on that node)" in msg
