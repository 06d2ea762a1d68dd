"""relion/jobstar.py: the job.star RELION 3.1, 4.0 and 5.0 write (RelionJob::write in src/pipeline_jobs.cpp).

class2d-3.1.3.job.star was written by the real relion_pipeliner 3.1.3 (Debian's relion) in a scratch project:
``relion_pipeliner --addJob Class2D --addJobOptions "fn_img == particles.star;nr_mpi == 4;nr_threads == 3;use_gpu ==
Yes;gpu_ids == 0:1;do_queue == Yes;qsub == relion-qsub;qsubscript == slurm.sh;queuename == gpu;min_dedicated == 8;
qsub_extra1 == 2:00:00;scratch_dir == /lscratch/$SLURM_JOB_ID;do_preread_images == No;other_args == --maxsig 30"`` with
RELION_QSUB_EXTRA1 and RELION_QSUB_EXTRA2 set. The 4.0.1 and 5.0.1 files are written from those tags' source (their
header comments say which functions).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from relion_qsub.errors import InputError
from relion_qsub.relion import jobstar

DATA = Path(__file__).resolve().parent / "data" / "relion"
VERSIONS = ["3.1.3", "4.0.1", "5.0.1"]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_version_reads_the_same_queued_class2d_job(version: str) -> None:
    job = jobstar.read(DATA / f"class2d-{version}.job.star")
    assert job is not None
    assert job.type == "relion.class2d" and not job.is_continue and not job.is_tomo
    assert job.type_code == (8 if version == "3.1.3" else None)  # 3.1 writes the integer code, 4.0+ the label
    assert (job.nr_mpi, job.nr_threads, job.min_dedicated) == (4, 3, 8)
    assert (job.use_gpu, job.do_queue, job.do_preread_images) == (True, True, False)
    assert job.text("gpu_ids") == "0:1" and job.text("queuename") == "gpu" and job.text("qsubscript") == "slurm.sh"
    assert job.text("qsub") == "relion-qsub" and job.text("fn_img") == "particles.star"
    assert job.text("scratch_dir") == "/lscratch/$SLURM_JOB_ID"
    assert job.text("other_args") == "--maxsig 30"  # written in quotes: it has a blank
    assert job.extras == {1: "2:00:00", 2: ""}  # qsub_extra2 was left empty: RELION writes ""
    assert job.text("no_such_box") is None and job.number("no_such_box") is None and job.flag("no_such") is None


def test_the_job_dir_is_enough_and_no_job_star_is_none(tmp_path: Path) -> None:
    assert jobstar.read(tmp_path) is None
    assert jobstar.read(tmp_path / "job.star") is None
    (tmp_path / "job.star").write_bytes((DATA / "class2d-5.0.1.job.star").read_bytes())
    found = jobstar.read(tmp_path)
    assert found is not None and found.path == tmp_path / "job.star"


def test_of_job_dir_reads_each_version_once_and_only_in_a_job_dir(tmp_path: Path) -> None:
    job = tmp_path / "Class2D" / "job012"
    job.mkdir(parents=True)
    assert jobstar.of_job_dir(job) is None  # no job.star (a standalone script's dir)
    star = job / "job.star"
    star.write_bytes((DATA / "class2d-5.0.1.job.star").read_bytes())
    first = jobstar.of_job_dir(job)
    assert first is not None and first.nr_mpi == 4
    assert jobstar.of_job_dir(job) is first  # asked by every check: read once
    # RELION writes job.star anew on each run (Continue, a changed box): the new version is read
    star.write_text(re.sub(r"^(\s*nr_mpi\s+)4", r"\g<1>8", star.read_text(), flags=re.M))
    again = jobstar.of_job_dir(job)
    assert again is not None and again.nr_mpi == 8
    star.write_text("not a job.star")
    assert jobstar.of_job_dir(job) is None  # not one RELION wrote: the script alone is judged, no error
    elsewhere = tmp_path / "mine"
    elsewhere.mkdir()
    (elsewhere / "job.star").write_bytes((DATA / "class2d-5.0.1.job.star").read_bytes())
    assert jobstar.of_job_dir(elsewhere) is None  # not a <Type>/jobNNN/ dir


def test_a_continued_tomo_job_and_rare_values(tmp_path: Path) -> None:
    text = (DATA / "class2d-5.0.1.job.star").read_text()
    text = text.replace("_rlnJobIsContinue                       0", "_rlnJobIsContinue                       1")
    text = text.replace("_rlnJobIsTomo                           0", "_rlnJobIsTomo                           1")
    text = text.replace("    nr_mpi          4 ", "    nr_mpi   $$n_mpi ")  # a Schemes variable (4.0+)
    # escapeStringForSTAR (strings.cpp): an inner quote that a blank follows gets a \a before it
    text = text.replace('"--maxsig 30"', '"--o \a"a b\a""')
    (tmp_path / "job.star").write_text(text)
    job = jobstar.read(tmp_path)
    assert job is not None and job.is_continue and job.is_tomo
    assert job.nr_mpi is None and job.text("nr_mpi") == "$$n_mpi"
    assert job.text("other_args") == '--o "a b"'


def test_an_unknown_31_code_keeps_the_code(tmp_path: Path) -> None:
    text = (
        (DATA / "class2d-3.1.3.job.star")
        .read_text()
        .replace("_rlnJobType                             8", "_rlnJobType 77")
    )
    (tmp_path / "job.star").write_text(text)
    job = jobstar.read(tmp_path)
    assert job is not None and job.type == "" and job.type_code == 77


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda t: t.replace("data_job\n", "data_other\n"), "no data_job block"),
        (lambda t: t.replace("_rlnJobTypeLabel             relion.class2d\n", ""), "no _rlnJobTypeLabel"),
        (lambda t: t.replace("_rlnJobIsContinue                       0", "_rlnJobIsContinue yes"), "not 0 or 1"),
        (lambda t: t.split("\ndata_joboptions_values")[0], "no data_joboptions_values block"),
        (lambda t: t.replace("queuename        gpu ", "queuename"), "'queuename' is not 'variable value'"),
        (lambda t: t[: t.index(" queuename") + 10], "'queuename' is not 'variable value'"),  # truncated,
    ],
)
def test_a_damaged_job_star_is_one_error_naming_the_file(tmp_path: Path, damage, says: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "job.star"
    path.write_text(damage((DATA / "class2d-5.0.1.job.star").read_text()))
    with pytest.raises(InputError) as caught:
        jobstar.read(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not a job.star as RELION writes it (") and says in message, message
    assert "\n" not in message


def test_undecodable_bytes_are_the_same_error(tmp_path: Path) -> None:
    (tmp_path / "job.star").write_bytes(b"data_job\n\xff\xfe\n")
    with pytest.raises(InputError, match=r"not a job\.star as RELION writes it"):
        jobstar.read(tmp_path)


def test_importing_it_is_cheap() -> None:
    """Other issues read job.star on the submit path: importing it pulls in no other part of the package."""
    code = "import sys, relion_qsub.relion.jobstar\nprint(sorted(m for m in sys.modules if 'relion_qsub.' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert ast.literal_eval(out) == [
        "relion_qsub.errors",
        "relion_qsub.relion",
        "relion_qsub.relion.jobdir",
        "relion_qsub.relion.jobstar",
    ]
