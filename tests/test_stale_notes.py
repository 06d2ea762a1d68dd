"""One job dir, many runs: a new submission removes the notes of earlier runs that no job can still need.

relion-qsub leaves two kinds of its own files in a RELION job dir: the note of a run whose end-watcher Slurm refused
(jobdir.UNWATCHED, read by that run's job only) and the kept-job file of a submission whose sbatch answer was lost
(jobdir.KEPT_PREFIX, read by every job of that token). The record is written by its one writer (record.append),
as the submit path writes it. sbatch is faked (pytest-subprocess) only to count the controller calls.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_subprocess import FakeProcess

from relion_qsub.cli import qsub_main
from relion_qsub.relion import jobdir, record, runs

NOW = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)
OLD = NOW - timedelta(seconds=runs.NOTE_KEPT_S)
RECENT = NOW - timedelta(seconds=runs.NOTE_KEPT_S - 60)
HEX = "1f2e3d4c5b6a7988"


def submitted(job: Path, job_id: str | None, when: datetime, **more: object) -> None:
    line = record.Record(time=when.strftime("%Y-%m-%dT%H:%M:%S%z"), submitted=job_id is not None, job_id=job_id, **more)  # type: ignore[arg-type]
    assert record.append(job / jobdir.RECORD, line) == ""


def note(job: Path, job_id: str) -> Path:
    assert jobdir.leave_unwatched_note(job, job_id, f"relion-qsub: refused watcher of {job_id}") == ""
    return jobdir.unwatched_note(job, job_id)


def test_only_old_superseded_notes_are_stale(hostile_path: Path) -> None:
    """Stale: 11 (superseded by 12, a day old) and 12 (superseded by 14 across a refused submission). Kept: 13
    (superseded but recent: its job may still run), 14 (the dir's last job), 15 (the current submission's own),
    99 (the record does not know it), the kept-job file, and every file that is not a note."""
    job = hostile_path
    submitted(job, "15", OLD - timedelta(days=400))  # Slurm recycled the id: the current job's note stays anyway
    submitted(job, "11", OLD - timedelta(hours=1), token=f"relion-qsub:{HEX}")
    submitted(job, "12", OLD)
    submitted(job, None, OLD, error="refused")
    submitted(job, "13", RECENT)
    submitted(job, "14", RECENT)
    for job_id in ("11", "12", "13", "14", "15", "99"):
        note(job, job_id)
    others = [jobdir.kept_name(f"relion-qsub:{HEX}"), jobdir.RUN_ERR, f"{jobdir.UNWATCHED}.12.old", jobdir.UNWATCHED]
    for name in others:
        (job / name).write_text("")
    assert runs.stale_notes(job, "15", NOW) == [jobdir.unwatched_note(job, "11"), jobdir.unwatched_note(job, "12")]
    submitted(job, "15", NOW)  # once 15 is recorded, 14 is superseded too: still too recent
    assert runs.stale_notes(job, "15", NOW + timedelta(seconds=59)) == [
        jobdir.unwatched_note(job, "11"),
        jobdir.unwatched_note(job, "12"),
    ]
    assert [p.name for p in runs.stale_notes(job, "15", NOW + timedelta(seconds=60))][-2:] == [
        f"{jobdir.UNWATCHED}.13",
        f"{jobdir.UNWATCHED}.14",
    ]
    assert not (job.parent / "pwned").exists() and not (job / "pwned").exists()


def test_without_an_earlier_note_the_record_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The happy path: one directory listing; a kept-job file or the current job's own note is no reason to read
    the record."""

    def unread(job_dir: Path) -> list[record.Record]:
        raise AssertionError(f"read the record of {job_dir}")

    monkeypatch.setattr(runs, "entries", unread)
    (tmp_path / jobdir.kept_name(f"relion-qsub:{HEX}")).write_text("")
    note(tmp_path, "15")
    assert runs.stale_notes(tmp_path, "15", NOW) == []
    assert runs.stale_notes(tmp_path / "gone", "15", NOW) == []
    with pytest.raises(AssertionError, match="read the record"):
        runs.stale_notes(tmp_path, "16", NOW)


def test_a_line_without_a_time_keeps_its_note(tmp_path: Path) -> None:
    assert record.append(tmp_path / jobdir.RECORD, record.Record(job_id="11")) == ""
    submitted(tmp_path, "12", NOW)
    note(tmp_path, "11")
    assert runs.stale_notes(tmp_path, "13", NOW + timedelta(days=30)) == []


SCRIPT = "#!/bin/bash\n#SBATCH --ntasks=1 --partition=norm --time=0:05:00\nhostname\n"


def test_a_rerun_removes_the_stale_note_with_two_controller_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fp: FakeProcess
) -> None:
    """A re-run (a RELION Continue) into a dir whose earlier runs left notes and a kept-job file: the submission
    makes the same two controller calls as any (its job's sbatch and its watcher's, refused again), and afterwards
    only the recent run's note, the kept-job file and the record's lines are left of the earlier runs, beside this
    run's own note."""
    job = tmp_path / "Class2D" / "job007"
    job.mkdir(parents=True)
    (job / "run_submit.script").write_text(SCRIPT)
    now = datetime.now(UTC)
    submitted(job, "80", now - timedelta(days=3), token=f"relion-qsub:{HEX}")
    submitted(job, "81", now - timedelta(minutes=5))
    old, recent, kept = note(job, "80"), note(job, "81"), job / jobdir.kept_name(f"relion-qsub:{HEX}")
    kept.write_text("80")
    fp.register(["sbatch", "--no-requeue", fp.any()], stdout="Submitted batch job 82\n")
    refused = "sbatch: error: QOSMaxSubmitJobPerUserLimit\n"
    fp.register(["sbatch", "--parsable", fp.any()], stderr=refused, returncode=1)
    monkeypatch.chdir(tmp_path)
    assert qsub_main(["--site", "testbed", "Class2D/job007/run_submit.script"]) == 0
    assert len(fp.calls) == 2
    assert not old.exists() and recent.exists() and kept.read_text() == "80"
    assert "QOSMaxSubmitJobPerUserLimit" in jobdir.unwatched_note(job, "82").read_text()  # this run's own note
    lines = [json.loads(line)["job_id"] for line in (job / jobdir.RECORD).read_text().splitlines()]
    assert lines == ["80", "81", "82"]
