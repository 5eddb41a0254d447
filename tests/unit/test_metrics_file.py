"""The Prometheus textfile: what it says, as a scrape would read it, and how it is written.

Every file is read back with prometheus_client's own parser, as node_exporter's
textfile collector would read it.
"""

from __future__ import annotations

import copy
import math
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from pipeline.core.errors import OutputError
from pipeline.report.metrics_file import unix_seconds, write_metrics_file
from pipeline.write.atomic import user_file_mode

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]

STARTED = "2026-11-30T02:00:00.123456Z"
ENDED = "2026-11-30T02:03:20.654321Z"
ENDED_SECONDS = 1796004200.654321
LAST_SUCCESS = "sluice_last_success_timestamp_seconds"

# The schema-1 summary of a first attempt, as the brief's example gives it.
EXAMPLE: dict[str, Any] = {
    "schema_version": 1,
    "job": "reviews",
    "started_at": STARTED,
    "ended_at": ENDED,
    "exit_code": 0,
    "stopped_by": None,
    "items": 1000,
    "resumed": 0,
    "succeeded": 990,
    "cached": 120,
    "quarantined": 10,
    "quarantined_by_kind": {"invalid_input": 4, "permanent": 6},
    "requests": 905,
    "retries": 35,
    "rate_limited_responses": 12,
    "requests_by_outcome": {"ok": 870, "rate_limited": 12, "transient": 20, "permanent": 3},
    "tokens": {"prompt": 120000, "completion": 30000, "cached_prompt": 0},
    "cost": {
        "currency": "USD",
        "this_attempt": 0.0234,
        "saved_by_cache": 0.0031,
        "whole_job": 0.0234,
        "price": None,
    },
    "wall_seconds": 200.53,
    "items_per_second": 4.99,
    "latency_ms": {"p50": 210.0, "p95": 800.0, "p99": 1400.0},
}


def _summary(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(EXAMPLE), **changes}


def _text(path: Path) -> str:
    # As the collector reads it: bytes, so a "\r" in a label value is not a line break.
    return path.read_bytes().decode("utf-8")


def _series(path: Path) -> Series:
    series: Series = {}
    for family in text_string_to_metric_families(_text(path)):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in series, f"duplicate series {key}"
            series[key] = sample.value
    return series


def _types(path: Path) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(_text(path))}


def _key(name: str, job: str = "reviews", **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset({"job": job, **labels}.items())


def _success(path: Path, job: str = "reviews") -> float:
    return _series(path)[_key(LAST_SUCCESS, job)]


def test_every_metric_and_label_of_a_run(tmp_path: Path) -> None:
    target = tmp_path / "sluice.prom"
    write_metrics_file(str(target), EXAMPLE)

    assert _series(target) == {
        _key("sluice_last_run_start_timestamp_seconds"): 1796004000.123456,
        _key("sluice_last_run_end_timestamp_seconds"): ENDED_SECONDS,
        _key("sluice_last_run_duration_seconds"): 200.53,
        _key("sluice_last_run_exit_code"): 0,
        _key(LAST_SUCCESS): ENDED_SECONDS,
        _key("sluice_items_total", status="ok"): 870,  # succeeded, less those from the cache
        _key("sluice_items_total", status="cached"): 120,
        _key("sluice_items_total", status="quarantined"): 10,
        _key("sluice_job_quarantined_items", kind="invalid_input"): 4,
        _key("sluice_job_quarantined_items", kind="permanent"): 6,
        _key("sluice_last_run_resumed_items"): 0,
        _key("sluice_requests_total", outcome="ok"): 870,
        _key("sluice_requests_total", outcome="rate_limited"): 12,
        _key("sluice_requests_total", outcome="transient"): 20,
        _key("sluice_requests_total", outcome="permanent"): 3,
        _key("sluice_last_run_retries"): 35,
        _key("sluice_last_run_items_per_second"): 4.99,
        _key("sluice_last_run_request_latency_seconds", quantile="0.5"): 0.21,
        _key("sluice_last_run_request_latency_seconds", quantile="0.95"): 0.8,
        _key("sluice_last_run_request_latency_seconds", quantile="0.99"): 1.4,
        _key("sluice_tokens_total", kind="prompt"): 120000,
        _key("sluice_tokens_total", kind="completion"): 30000,
        _key("sluice_tokens_total", kind="cached_prompt"): 0,
        _key("sluice_cost_usd_total"): 0.0234,
    }


def test_the_run_totals_are_counters_and_the_rest_documented_gauges(tmp_path: Path) -> None:
    target = tmp_path / "sluice.prom"
    write_metrics_file(str(target), EXAMPLE)
    families = list(text_string_to_metric_families(_text(target)))
    types = {f.name: f.type for f in families}
    counters = {"sluice_items", "sluice_requests", "sluice_tokens", "sluice_cost_usd"}
    assert {name for name, kind in types.items() if kind == "counter"} == counters
    assert {kind for name, kind in types.items() if name not in counters} == {"gauge"}
    assert all(f.documentation for f in families)
    assert "_created" not in _text(target)  # a new file every run: no creation series
    cost = next(f for f in families if f.name == "sluice_cost_usd")
    assert "last run alone" in cost.documentation


def test_help_text_is_the_same_for_every_job_and_run(tmp_path: Path) -> None:
    # node_exporter drops one of two files that give one metric different HELP texts,
    # so the files of several jobs in one directory must agree word for word.
    first, second = tmp_path / "reviews.prom", tmp_path / "tickets.prom"
    write_metrics_file(str(first), EXAMPLE)
    write_metrics_file(str(second), _summary(job="tickets", exit_code=3, resumed=7))

    def described(path: Path) -> dict[str, tuple[str, str]]:
        families = text_string_to_metric_families(_text(path))
        return {f.name: (f.type, f.documentation) for f in families}

    assert described(first) == described(second)


def test_unknown_values_are_left_out_rather_than_written_as_zero(tmp_path: Path) -> None:
    target = tmp_path / "sluice.prom"
    unpriced = {**EXAMPLE["cost"], "this_attempt": None, "whole_job": None, "saved_by_cache": None}
    latency = {"p50": 210.0, "p95": None, "p99": None}
    summary = _summary(cost=unpriced, items_per_second=None, latency_ms=latency)
    write_metrics_file(str(target), summary)

    names = {name for name, _ in _series(target)}
    assert "sluice_cost_usd_total" not in names
    assert "sluice_cost_usd" not in target.read_text()  # not even its HELP
    assert "sluice_last_run_items_per_second" not in names
    quantiles = {
        dict(labels)["quantile"]
        for name, labels in _series(target)
        if name == "sluice_last_run_request_latency_seconds"
    }
    assert quantiles == {"0.5"}


@pytest.mark.parametrize("exit_code", [1, 3, 69, 75, 130, 143])
def test_a_failed_run_carries_the_last_success_forward(tmp_path: Path, exit_code: int) -> None:
    target = tmp_path / "sluice.prom"
    write_metrics_file(str(target), EXAMPLE)
    failed = _summary(
        exit_code=exit_code, started_at="2026-12-01T02:00:00Z", ended_at="2026-12-01T02:05:00Z"
    )
    write_metrics_file(str(target), failed)

    series = _series(target)
    assert series[_key(LAST_SUCCESS)] == ENDED_SECONDS
    assert series[_key("sluice_last_run_exit_code")] == exit_code
    assert series[_key("sluice_last_run_end_timestamp_seconds")] == unix_seconds(
        "2026-12-01T02:05:00Z"
    )
    # ...and keeps carrying it across failures, until a success moves it.
    write_metrics_file(str(target), failed)
    assert _success(target) == ENDED_SECONDS
    write_metrics_file(str(target), _summary(ended_at="2026-12-02T00:00:00Z"))
    assert _success(target) == unix_seconds("2026-12-02T00:00:00Z")


def test_a_job_that_never_succeeded_records_zero(tmp_path: Path) -> None:
    target = tmp_path / "sluice.prom"
    write_metrics_file(str(target), _summary(exit_code=1))
    assert _success(target) == 0


def test_another_jobs_success_is_not_carried(tmp_path: Path) -> None:
    target = tmp_path / "sluice.prom"
    write_metrics_file(str(target), _summary(job="tickets"))
    write_metrics_file(str(target), _summary(job="reviews", exit_code=1))

    series = _series(target)
    assert series[_key(LAST_SUCCESS)] == 0
    # The file holds one job: the other job's series went with the file it replaced.
    assert {dict(labels)["job"] for _, labels in series} == {"reviews"}


def test_only_the_same_jobs_success_is_read_from_a_shared_file(tmp_path: Path) -> None:
    target = tmp_path / "sluice.prom"
    target.write_text(
        "# TYPE sluice_last_success_timestamp_seconds gauge\n"
        'sluice_last_success_timestamp_seconds{job="tickets"} 1900000000\n'
        'sluice_last_success_timestamp_seconds{job="reviews"} 1700000000\n'
        'sluice_last_success_timestamp_seconds{job="reviews-2"} 1800000000\n'
    )
    write_metrics_file(str(target), _summary(exit_code=1))
    assert _success(target) == 1700000000


@pytest.mark.parametrize(
    "previous",
    [
        b"",
        b"not a metrics file {{{\n",
        b"\xff\xfe\x00 binary \x80",
        b'sluice_last_success_timestamp_seconds{job="reviews" 1700000000\n',  # no closing brace
        b'sluice_last_success_timestamp_seconds{job="reviews"} soon\n',
        b'sluice_last_success_timestamp_seconds{job="reviews"} NaN\n',  # would never alert
        b'sluice_last_success_timestamp_seconds{job="reviews"} +Inf\n',
        b'sluice_last_success_timestamp_seconds{job="reviews"} -5\n',
        b'sluice_last_success_timestamp_seconds{job="reviews"} 0\n',
    ],
    ids=[
        "empty",
        "text",
        "binary",
        "unclosed-labels",
        "word-value",
        "nan",
        "infinite",
        "negative",
        "zero",
    ],
)
def test_a_garbled_previous_file_means_no_earlier_success(tmp_path: Path, previous: bytes) -> None:
    target = tmp_path / "sluice.prom"
    target.write_bytes(previous)
    write_metrics_file(str(target), _summary(exit_code=1))
    assert _success(target) == 0
    assert _series(target)[_key("sluice_items_total", status="ok")] == 870


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions")
def test_an_unreadable_previous_file_means_no_earlier_success(tmp_path: Path) -> None:
    target = tmp_path / "sluice.prom"
    write_metrics_file(str(target), EXAMPLE)
    target.chmod(0o000)
    write_metrics_file(str(target), _summary(exit_code=1))
    assert _success(target) == 0


def test_a_previous_file_too_large_to_be_ours_is_not_read(tmp_path: Path) -> None:
    target = tmp_path / "sluice.prom"
    line = b'sluice_last_success_timestamp_seconds{job="reviews"} 1700000000\n'
    target.write_bytes(line + b"# padding\n" * 200_000)
    write_metrics_file(str(target), _summary(exit_code=1))
    assert _success(target) == 0


@given(st.binary(max_size=400) | st.text(max_size=400).map(lambda t: t.encode("utf-8", "replace")))
def test_no_previous_file_stops_the_write(previous: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        target = Path(directory) / "sluice.prom"
        target.write_bytes(previous)
        write_metrics_file(str(target), _summary(exit_code=1))
        success = _success(target)
        assert success == 0 or (math.isfinite(success) and success > 0)
        assert os.listdir(directory) == ["sluice.prom"]


def test_an_earlier_file_is_replaced_whole_and_no_temp_file_is_left(tmp_path: Path) -> None:
    target = tmp_path / "sluice.prom"
    target.write_bytes(b"# an older, much longer file\n" * 10_000)
    earlier_inode = target.stat().st_ino
    write_metrics_file(str(target), EXAMPLE)

    text = target.read_text()
    assert "older" not in text and text.endswith("\n")
    assert len(_series(target)) == 24
    # Renamed into place, not written over: a reader holding the old file saw it whole.
    assert target.stat().st_ino != earlier_inode
    assert os.listdir(tmp_path) == ["sluice.prom"]


def test_a_killed_runs_temp_file_is_swept(tmp_path: Path) -> None:
    leftover = tmp_path / ".sluice.prom.k1ll3d.partial"
    leftover.write_text("half a file")
    write_metrics_file(str(tmp_path / "sluice.prom"), EXAMPLE)
    assert os.listdir(tmp_path) == ["sluice.prom"]


def test_a_symlinked_file_keeps_its_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    link = tmp_path / "sluice.prom"
    link.symlink_to(tmp_path / "real" / "sluice.prom")
    write_metrics_file(str(link), EXAMPLE)
    write_metrics_file(str(link), _summary(exit_code=1))
    assert link.is_symlink()
    assert _success(link) == ENDED_SECONDS


@pytest.fixture
def umask_077() -> Iterator[None]:
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("umask_077")
def test_the_file_follows_the_umask_like_other_outputs(tmp_path: Path) -> None:
    target = tmp_path / "sluice.prom"
    write_metrics_file(str(target), EXAMPLE)
    assert target.stat().st_mode & 0o777 == user_file_mode() == 0o600


def test_a_world_readable_file_stays_readable_for_the_collector(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        target = tmp_path / "sluice.prom"
        write_metrics_file(str(target), EXAMPLE)
        assert target.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(previous)


def test_a_missing_directory_is_an_output_error_naming_the_path(tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / "sluice.prom"
    with pytest.raises(OutputError) as raised:
        write_metrics_file(str(target), EXAMPLE)
    assert str(target) in raised.value.message and "\n" not in raised.value.message
    assert raised.value.exit_code == 73


def test_a_directory_under_the_name_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "sluice.prom").mkdir()
    with pytest.raises(OutputError, match="is a directory"):
        write_metrics_file(str(tmp_path / "sluice.prom"), EXAMPLE)


def test_a_file_where_the_directory_should_be_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "metrics").write_text("a file, not a directory")
    target = tmp_path / "metrics" / "sluice.prom"
    with pytest.raises(OutputError, match=re.escape(str(target))):
        write_metrics_file(str(target), EXAMPLE)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions")
def test_a_read_only_directory_is_an_output_error_and_the_old_file_stays(tmp_path: Path) -> None:
    target = tmp_path / "sluice.prom"
    write_metrics_file(str(target), EXAMPLE)
    before = target.read_bytes()
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(OutputError, match=re.escape(str(target))):
            write_metrics_file(str(target), _summary(exit_code=1))
    finally:
        tmp_path.chmod(0o755)
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["sluice.prom"]


def test_a_summary_without_a_contract_key_leaves_no_temp_and_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "sluice.prom"
    write_metrics_file(str(target), EXAMPLE)
    before = target.read_bytes()
    broken = _summary()
    del broken["requests_by_outcome"]
    with pytest.raises(KeyError):
        write_metrics_file(str(target), broken)
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["sluice.prom"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1970-01-01T00:00:00Z", 0.0),
        ("2026-11-30T02:00:00.5Z", 1796004000.5),
        ("2026-11-30T04:00:00+02:00", 1796004000.0),
        ("2026-11-30T02:00:00", 1796004000.0),  # no zone: the summary's times are UTC
    ],
)
def test_unix_seconds(text: str, seconds: float) -> None:
    assert unix_seconds(text) == seconds


# --- any summary: the file always parses, and says exactly what the summary says ---

_counts = st.integers(min_value=0, max_value=2**63)
_names = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20)
_moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
_floats = st.floats(min_value=0, max_value=1e12, allow_nan=False)


@st.composite
def summaries(draw: st.DrawFn) -> dict[str, Any]:
    started = draw(_moments)
    ended = started + timedelta(seconds=draw(st.floats(min_value=0, max_value=1e7)))
    cached = draw(_counts)
    return {
        "schema_version": 1,
        "job": draw(_names),
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "ended_at": ended.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "exit_code": draw(st.sampled_from([0, 1, 3, 69, 73, 75, 77, 78, 130, 143])),
        "resumed": draw(_counts),
        "succeeded": cached + draw(_counts),
        "cached": cached,
        "quarantined": draw(_counts),
        "quarantined_by_kind": draw(st.dictionaries(_names, _counts, max_size=4)),
        "retries": draw(_counts),
        "requests_by_outcome": draw(st.dictionaries(_names, _counts, max_size=4)),
        "tokens": {kind: draw(_counts) for kind in ("prompt", "completion", "cached_prompt")},
        "cost": {"currency": "USD", "this_attempt": draw(st.none() | _floats)},
        "wall_seconds": draw(_floats),
        "items_per_second": draw(st.none() | _floats),
        "latency_ms": {q: draw(st.none() | _floats) for q in ("p50", "p95", "p99")},
    }


def _expected(summary: dict[str, Any], last_success: float) -> Series:
    job = summary["job"]

    def by(name: str, label: str, values: dict[str, Any]) -> Series:
        return {_key(name, job, **{label: k}): float(v) for k, v in values.items()}

    expected: Series = {
        _key("sluice_last_run_start_timestamp_seconds", job): unix_seconds(summary["started_at"]),
        _key("sluice_last_run_end_timestamp_seconds", job): unix_seconds(summary["ended_at"]),
        _key("sluice_last_run_duration_seconds", job): summary["wall_seconds"],
        _key("sluice_last_run_exit_code", job): summary["exit_code"],
        _key(LAST_SUCCESS, job): last_success,
        _key("sluice_last_run_resumed_items", job): float(summary["resumed"]),
        _key("sluice_last_run_retries", job): float(summary["retries"]),
        **by(
            "sluice_items_total",
            "status",
            {
                "ok": summary["succeeded"] - summary["cached"],
                "cached": summary["cached"],
                "quarantined": summary["quarantined"],
            },
        ),
        **by("sluice_job_quarantined_items", "kind", summary["quarantined_by_kind"]),
        **by("sluice_requests_total", "outcome", summary["requests_by_outcome"]),
        **by("sluice_tokens_total", "kind", summary["tokens"]),
        **by(
            "sluice_last_run_request_latency_seconds",
            "quantile",
            {
                q: summary["latency_ms"][key] / 1000
                for key, q in (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99"))
                if summary["latency_ms"][key] is not None
            },
        ),
    }
    if summary["items_per_second"] is not None:
        expected[_key("sluice_last_run_items_per_second", job)] = summary["items_per_second"]
    if summary["cost"]["this_attempt"] is not None:
        expected[_key("sluice_cost_usd_total", job)] = summary["cost"]["this_attempt"]
    return expected


@given(summaries(), summaries())
def test_any_summary_gives_a_file_that_says_exactly_what_it_says(
    earlier: dict[str, Any], summary: dict[str, Any]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        target = Path(directory) / "sluice.prom"
        write_metrics_file(str(target), earlier)
        earlier_success = _success(target, earlier["job"])
        write_metrics_file(str(target), summary)

        if summary["exit_code"] == 0:
            success = unix_seconds(summary["ended_at"])
        elif earlier["job"] == summary["job"]:
            success = earlier_success
        else:
            success = 0.0
        assert _series(target) == _expected(summary, success)
        assert os.listdir(directory) == ["sluice.prom"]
