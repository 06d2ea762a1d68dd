"""RELION's job-dir contract: one mark_failed for relion-qsub, relion-launch and doctor (issue 11)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from relion_qsub import submit
from relion_qsub.doctor import job as doctor_job
from relion_qsub.launch.main import Pipeline
from relion_qsub.relion import jobdir


@pytest.fixture
def job(tmp_path: Path) -> Path:
    d = tmp_path / "Class2D" / "job007"
    d.mkdir(parents=True)
    return d


def _submit(d: Path) -> None:
    submit.mark_failed(d, "why")


def _launch(d: Path) -> None:
    Pipeline(str(d)).mark_failure("why", echo=False)


def _doctor(d: Path) -> None:
    doctor_job.mark_ended(d, "why")


CALLERS = [_submit, _launch, _doctor]


@pytest.mark.parametrize("caller", CALLERS)
def test_exit_file_even_when_run_err_cannot_be_written(caller, job: Path) -> None:
    """Before: submit appended to run.err first and so created no exit file when run.err was unwritable."""
    (job / jobdir.RUN_ERR).mkdir()
    caller(job)
    assert (job / jobdir.EXIT_FAILURE).is_file()


@pytest.mark.parametrize("caller", CALLERS)
def test_reason_line_in_run_err(caller, job: Path) -> None:
    caller(job)
    assert (job / jobdir.EXIT_FAILURE).is_file()
    assert "why" in (job / jobdir.RUN_ERR).read_text()


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("name", jobdir.EXIT_FILES)
def test_never_over_an_existing_exit_file(caller, job: Path, name: str) -> None:
    (job / name).touch()
    caller(job)
    assert [n for n in jobdir.EXIT_FILES if (job / n).exists()] == [name]
    assert not (job / jobdir.RUN_ERR).exists()


def test_fifo_run_err_is_never_opened(job: Path) -> None:
    os.mkfifo(job / jobdir.RUN_ERR)
    marked = jobdir.mark_failed(job, "x")
    assert marked.created and "FIFO" in marked.err_note


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("Class2D/job012/run_submit.script", "Class2D/job012"),
        ("Refine3D/job1234/other.sh", "Refine3D/job1234"),
        ("mine/run_submit.script", "mine"),
        ("scripts/job12/x.sh", None),
        ("scripts/jobabc/x.sh", None),
        ("x.sh", None),
    ],
)
def test_of_script(path: str, expected: str | None) -> None:
    found = jobdir.of_script(Path(path))
    assert (str(found) if found is not None else None) == expected
