"""A job's history file: names, place, appending whole lines, reading back what is whole."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.errors import UsageError
from pipeline.report.history import (
    MAX_LINE_BYTES,
    MAX_NAME_LENGTH,
    append_run,
    default_history_dir,
    default_job_name,
    history_file,
    history_record,
    list_jobs,
    read_recent,
    safe_job_name,
)


def _record(n: int, **extra: object) -> dict[str, object]:
    return {"job": "reviews", "n": n, "exit_code": 0, **extra}


def _ns(path: Path, limit: int = 100) -> list[object]:
    return [run["n"] for run in read_recent(path, limit).runs]


# ---- names and places


@pytest.mark.parametrize(
    ("output", "job"),
    [
        ("labeled.jsonl", "labeled"),
        ("out/reviews.jsonl.gz", "reviews"),
        ("/data/2026/items.parquet", "items"),
        ("results.json", "results"),
        ("notes", "notes"),
        ("-", "stdout"),
    ],
)
def test_the_default_job_is_the_output_name_without_its_format_suffix(
    output: str, job: str
) -> None:
    assert default_job_name(output) == job


@pytest.mark.parametrize(
    ("job", "safe"),
    [
        ("reviews", "reviews"),
        ("nightly reviews", "nightly_reviews"),
        ("../../etc/passwd", "etc_passwd"),
        (".hidden", "hidden"),
        ("a/b\\c:d", "a_b_c_d"),
        ("ünïcode-2026", "n_code-2026"),
    ],
)
def test_job_names_become_safe_file_names(job: str, safe: str) -> None:
    assert safe_job_name(job) == safe


@pytest.mark.parametrize("job", ["", "   ", "..", "///", "---", "._."])
def test_a_job_name_without_a_letter_or_digit_is_refused(job: str) -> None:
    with pytest.raises(UsageError, match="needs a letter or a digit"):
        safe_job_name(job)


@given(st.text(max_size=300))
def test_a_safe_name_is_one_plain_file_name_or_a_usage_error(job: str) -> None:
    try:
        safe = safe_job_name(job)
    except UsageError:
        assert not any(char.isascii() and char.isalnum() for char in job)
        return
    assert safe and not safe.startswith(".") and "/" not in safe and "\x00" not in safe
    assert len(safe) <= MAX_NAME_LENGTH + 13
    assert all(char.isascii() and (char.isalnum() or char in "._-") for char in safe)
    assert safe_job_name(safe) == safe or len(safe) > MAX_NAME_LENGTH


def test_long_names_keep_apart_by_a_digest() -> None:
    first, second = safe_job_name("x" * 150 + "1"), safe_job_name("x" * 150 + "2")
    assert first != second and len(first) == len(second) == MAX_NAME_LENGTH + 13


def test_the_history_lives_in_the_xdg_state_directory(tmp_path: Path) -> None:
    assert default_history_dir({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "sluice/history"
    home = Path.home() / ".local/state/sluice/history"
    assert default_history_dir({}) == home
    # The XDG spec says a relative path is to be ignored.
    assert default_history_dir({"XDG_STATE_HOME": "relative/state"}) == home


# ---- appending


def test_directories_are_0700_and_files_0600_whatever_the_umask(tmp_path: Path) -> None:
    directory = tmp_path / "state" / "sluice" / "history"
    previous = os.umask(0o022)
    try:
        path = append_run(directory, "reviews", _record(1))
    finally:
        os.umask(previous)
    assert path == history_file(directory, "reviews") == directory / "reviews.jsonl"
    for made in (tmp_path / "state", tmp_path / "state" / "sluice", directory):
        assert stat.S_IMODE(made.stat().st_mode) == 0o700, made
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_each_run_is_one_line_and_reading_keeps_the_last_ones_in_order(tmp_path: Path) -> None:
    for n in range(25):
        append_run(tmp_path, "reviews", _record(n))
    path = history_file(tmp_path, "reviews")
    assert len(path.read_bytes().splitlines()) == 25
    assert _ns(path, 5) == [20, 21, 22, 23, 24]
    assert _ns(path) == list(range(25))
    assert read_recent(path, 0).runs == []


def test_a_record_is_the_summary_without_its_repeated_parts(tmp_path: Path) -> None:
    summary = {"items": 3, "this_attempt": {"items": 3}, "whole_job": {"items": 3}, "job": "x"}
    summary["latency_ms_by_stage"] = {"request": {"p50": 1.0}}
    record = history_record(summary, "reviews", [{"rule": "slow_run"}])
    assert set(record) == {"items", "job", "findings", "recorded_at"}
    assert record["job"] == "reviews" and record["findings"] == [{"rule": "slow_run"}]
    assert str(record["recorded_at"]).endswith("Z")


def test_a_missing_history_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_recent(history_file(tmp_path, "never-ran"), 10)


# ---- damage


def test_a_line_torn_by_a_killed_writer_is_skipped_and_the_next_run_starts_afresh(
    tmp_path: Path,
) -> None:
    append_run(tmp_path, "reviews", _record(1))
    path = history_file(tmp_path, "reviews")
    with open(path, "ab") as killed:
        killed.write(orjson.dumps(_record(2))[:17])  # no newline: the writer died here
    append_run(tmp_path, "reviews", _record(3))
    recent = read_recent(path, 10)
    assert [run["n"] for run in recent.runs] == [1, 3]
    assert recent.skipped == 1


def test_garbled_lines_are_skipped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    lines = [
        orjson.dumps(_record(1)),
        b"\x00\x00\x00\x00",  # a block of zeros after a crash
        b"[1, 2]",
        b"42",
        b"",
        b"   ",
        b"\xff\xfe not utf-8",
        orjson.dumps(_record(2)),
        b'{"n": 3, "cut": "sho',
    ]
    path.write_bytes(b"\n".join(lines))
    recent = read_recent(path, 10)
    assert [run["n"] for run in recent.runs] == [1, 2]
    assert recent.skipped == 5  # blank lines are not damage


def test_lines_longer_than_a_read_block_come_back_whole(tmp_path: Path) -> None:
    padding = "p" * 150_000  # over two of the reader's 64 KiB blocks
    for n in range(6):
        append_run(tmp_path, "reviews", _record(n, padding=padding))
    recent = read_recent(history_file(tmp_path, "reviews"), 4)
    assert [run["n"] for run in recent.runs] == [2, 3, 4, 5]
    assert all(run["padding"] == padding for run in recent.runs) and recent.skipped == 0


def test_a_line_too_long_to_be_a_run_is_skipped_without_holding_it(tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    huge = b'{"n": "huge", "x": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}'
    path.write_bytes(orjson.dumps(_record(1)) + b"\n" + huge + b"\n" + orjson.dumps(_record(2)))
    recent = read_recent(path, 10)
    assert [run["n"] for run in recent.runs] == [1, 2] and recent.skipped == 1


def test_reading_stops_once_it_has_the_runs_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    # Damage far back is never even read when the last runs are whole.
    path.write_bytes(b"garbage\n" * 10 + orjson.dumps(_record(1)) + b"\n")
    assert read_recent(path, 1).skipped == 0


# ---- listing jobs


def test_jobs_are_listed_with_their_last_run(tmp_path: Path) -> None:
    assert list_jobs(tmp_path / "none-yet") == []
    append_run(tmp_path, "nightly reviews", _record(1, job="nightly reviews"))
    append_run(tmp_path, "nightly reviews", _record(2, job="nightly reviews"))
    append_run(tmp_path, "tickets", _record(7, job="tickets"))
    (tmp_path / "notes.txt").write_text("not a history")
    (tmp_path / "damaged.jsonl").write_bytes(b"\x00\x00")
    listed = [
        (job.job, job.path.name, (job.last_run or {}).get("n")) for job in list_jobs(tmp_path)
    ]
    assert listed == [
        ("damaged", "damaged.jsonl", None),
        ("nightly reviews", "nightly_reviews.jsonl", 2),
        ("tickets", "tickets.jsonl", 7),
    ]


def test_a_history_directory_that_is_a_file_cannot_be_appended_to(tmp_path: Path) -> None:
    blocker = tmp_path / "history"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(OSError):
        append_run(blocker, "reviews", _record(1))
