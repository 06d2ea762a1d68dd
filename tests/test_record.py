"""relion/record.py: one line of relion-qsub.jsonl, its one writer and its one (tolerant) reader."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from relion_qsub.relion import record
from relion_qsub.relion.record import Record


def test_a_record_round_trips_and_leaves_out_what_never_happened(tmp_path: Path) -> None:
    refused = Record(time="2026-12-01T10:00:00+0000", original="run_submit.script", submitted=False, error="bad")
    done = Record(
        time="2026-12-01T10:01:00+0000",
        changes=({"rule": "empty-directive", "action": "fixed", "line": 3, "message": "m"},),
        submitted=True,
        job_id="42",
        sbatch_argv=("sbatch", "--parsable"),
        token="relion-qsub:ab",
        attempts=({"released": "42"},),
        released=True,
    )
    log = tmp_path / "relion-qsub.jsonl"
    assert record.append(log, refused) == "" and record.append(log, done) == ""
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert "sbatch_argv" not in lines[0] and "job_id" not in lines[0] and lines[0]["submitted"] is False
    assert lines[1]["sbatch_argv"] == ["sbatch", "--parsable"] and lines[1]["released"] is True
    assert record.read(log.read_text()) == [refused, done]
    assert done.when == datetime(2026, 12, 1, 10, 1, tzinfo=timezone(timedelta(0)))
    assert (refused.failure, done.failure) == ("bad", "")


def test_the_reader_takes_old_foreign_and_damaged_lines() -> None:
    text = "\n".join(
        [
            '{"job_id": 987654}',  # another writer: an int job id, nothing else
            "not json",
            '{"time": "2026-12-01T10:00:00+0000", "submitted": true, "job_id": "7", "attempts": "x", "future": 1}',
            "[1, 2]",  # JSON, but not a line of ours
            '{"submitted": false, "token": "relion-qsub:ab", "held": true}',  # a refusal: no job id
            '{"job_id": "8", "submitted": true, "sbatch_argv": ["sbatch"], "changes": [1, {"rule": "r"}]',  # truncated
        ]
    )
    records = record.read(text)
    assert [r.job_id for r in records] == ["987654", "7", None]
    assert records[1].attempts is None and records[1].when is not None and records[0].when is None
    assert records[2].held is True and records[2].token == "relion-qsub:ab" and records[2].failure == "not submitted"
    assert record.last_job_id(records) == "7"  # a later refusal does not hide the job
    assert record.last_job_id(record.read('{"job_id": "1"}\n{"submitted": false}\n')) == "1"
    assert record.last_job_id([]) is None


def test_odd_types_are_dropped_not_trusted() -> None:
    (r,) = record.read(
        '{"time": 5, "job_id": true, "submitted": "yes", "changes": [{"rule": "a"}, "b"], "sbatch_argv": ["a", 1]}'
    )
    assert r.time == "" and r.job_id is None and r.submitted is None
    assert r.changes == ({"rule": "a"},) and r.sbatch_argv == ("a", "1")


def test_a_record_is_immutable() -> None:
    r = Record(job_id="1")
    with pytest.raises(AttributeError):
        r.job_id = "2"  # type: ignore[misc]
    assert r == Record(job_id="1") and r != Record(job_id="2") and "job_id='1'" in repr(r)


def test_a_failed_write_leaves_no_half_line(tmp_path: Path) -> None:
    """The writer's failure answer (the full-disk case itself is in test_reliability, on a real small filesystem)."""
    assert record.append(tmp_path / "missing" / "relion-qsub.jsonl", Record()) == "No such file or directory"
