"""The end of a run: compared with its history, recorded, alerted over real HTTP, never failed."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from pipeline.report.after_run import AlertSettings, record_run
from pipeline.report.alerts import Severity, Thresholds
from pipeline.report.history import history_file, read_recent
from tests.webhook_receiver import TOKEN_PATH, WebhookReceiver


def summary(wall: float = 100.0, items: int = 1000, **changes: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "job": "reviews",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "ended_at": "2026-11-30T02:03:20.654321Z",
        "exit_code": 0,
        "items": items,
        "resumed": 0,
        "succeeded": items,
        "quarantined": 0,
        "wall_seconds": wall,
        "items_per_second": items / wall,
        "cost": {"currency": "USD", "this_attempt": 0.10},
        "this_attempt": {"items": items},
        "whole_job": {"items": items},
        **changes,
    }


def settings(directory: Path, **changes: Any) -> AlertSettings:
    return AlertSettings(job="reviews", history_dir=directory, **changes)


def _three_ordinary_runs(directory: Path) -> None:
    for wall in (95.0, 100.0, 110.0):
        after = record_run(summary(wall), settings(directory))
        assert after.findings == [] and after.warnings == []


def test_the_fourth_run_is_compared_with_the_three_before_it(tmp_path: Path) -> None:
    _three_ordinary_runs(tmp_path)
    after = record_run(summary(wall=400.0), settings(tmp_path))
    assert [f.rule for f in after.findings] == ["slow_run", "throughput_down"]
    slow = after.findings[0]
    assert (slow.value, slow.baseline) == (400.0, 100.0)
    assert slow.message == (
        "the run took 6m 40s, 4.0x the median of 1m 40s over the last 3 comparable runs"
    )
    assert after.recorded_in == history_file(tmp_path, "reviews")
    assert after.delivery is None  # no webhook given


def test_every_run_is_recorded_after_the_comparison_with_its_findings(tmp_path: Path) -> None:
    _three_ordinary_runs(tmp_path)
    record_run(summary(wall=400.0), settings(tmp_path))
    runs = read_recent(history_file(tmp_path, "reviews"), 10).runs
    assert [run["wall_seconds"] for run in runs] == [95.0, 100.0, 110.0, 400.0]
    assert [f["rule"] for f in runs[-1]["findings"]] == ["slow_run", "throughput_down"]
    assert "this_attempt" not in runs[-1] and "whole_job" not in runs[-1]


def test_one_post_carries_all_findings_of_a_run(tmp_path: Path) -> None:
    _three_ordinary_runs(tmp_path)
    bad = summary(wall=400.0, exit_code=1, quarantined=300, cost={"this_attempt": 0.5})
    with WebhookReceiver() as hook:
        after = record_run(bad, settings(tmp_path, webhook_url=hook.url))
    assert after.delivery is not None and after.delivery.delivered
    assert after.warnings == []
    [post] = hook.posts
    rules = [finding["rule"] for finding in post["findings"]]
    assert rules == ["failed_run", "error_rate", "slow_run", "throughput_down", "cost_up"]
    assert rules == [finding.rule for finding in after.findings]
    assert post["job"] == "reviews" and post["severity"] == "critical"
    assert post["text"].startswith("sluice job *reviews*: 5 findings (exit code 1")


def test_findings_below_the_minimum_severity_are_not_posted(tmp_path: Path) -> None:
    _three_ordinary_runs(tmp_path)
    # Five times the items at the usual price per item: cost up, but only as info.
    bigger = summary(wall=500.0, items=5000, cost={"this_attempt": 0.5})
    with WebhookReceiver() as hook:
        quiet = record_run(bigger, settings(tmp_path, webhook_url=hook.url))
        assert [(f.rule, f.severity) for f in quiet.findings] == [
            ("slow_run", Severity.WARNING),
            ("cost_up", Severity.INFO),
        ]
        assert quiet.delivery is not None and hook.posts != []
        posted = len(hook.posts)
        only_critical = settings(tmp_path, webhook_url=hook.url, min_severity=Severity.CRITICAL)
        unsent = record_run(bigger, only_critical)
        assert unsent.findings and unsent.delivery is None and len(hook.posts) == posted


def test_a_run_without_findings_posts_nothing(tmp_path: Path) -> None:
    with WebhookReceiver() as hook:
        after = record_run(summary(), settings(tmp_path, webhook_url=hook.url))
    assert after.findings == [] and after.delivery is None and hook.posts == []


def test_info_findings_are_posted_when_the_minimum_is_info(tmp_path: Path) -> None:
    _three_ordinary_runs(tmp_path)
    cheap_growth = summary(wall=100.0, items=1500, cost={"this_attempt": 0.15})
    with WebhookReceiver() as hook:
        after = record_run(
            cheap_growth, settings(tmp_path, webhook_url=hook.url, min_severity=Severity.INFO)
        )
    assert [f.severity for f in after.findings] == [Severity.INFO]
    assert [post["severity"] for post in hook.posts] == ["info"]


def test_a_webhook_that_is_down_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}{TOKEN_PATH}"
        after = record_run(summary(exit_code=69), settings(tmp_path, webhook_url=url))
    assert [f.rule for f in after.findings] == ["failed_run"]
    assert after.delivery is not None and not after.delivery.delivered
    [warning] = after.warnings
    assert warning.startswith("alert not delivered to http://127.0.0.1:")
    assert "connection refused" in warning and "SECRET" not in warning
    assert after.recorded_in is not None  # the run is recorded all the same


def test_a_history_that_cannot_be_written_is_a_warning(tmp_path: Path) -> None:
    blocker = tmp_path / "history"
    blocker.write_text("a file where the history directory should be")
    after = record_run(summary(exit_code=3), settings(blocker))
    assert [f.rule for f in after.findings] == ["failed_run"]
    assert after.recorded_in is None
    [warning] = after.warnings
    assert warning.startswith("cannot read or record the history of job 'reviews': ")
    assert warning.endswith(f"{blocker / 'reviews.jsonl'}: Not a directory")


def test_a_history_file_that_cannot_be_read_still_gets_the_run(tmp_path: Path) -> None:
    history_file(tmp_path, "reviews").mkdir()  # a directory where the file should be
    after = record_run(summary(), settings(tmp_path))
    assert after.recorded_in is None and len(after.warnings) == 1
    assert after.warnings[0].startswith("cannot read or record the history of job 'reviews'")


def test_a_bad_job_name_is_a_warning_here_too(tmp_path: Path) -> None:
    after = record_run(summary(), AlertSettings(job="///", history_dir=tmp_path))
    assert after.recorded_in is None
    [warning] = after.warnings
    assert warning.startswith("cannot read or record the history of job '///': job name '///'")


def test_thresholds_come_from_the_settings(tmp_path: Path) -> None:
    strict = Thresholds(error_rate=0.0)
    after = record_run(summary(quarantined=1), settings(tmp_path, thresholds=strict))
    assert [f.rule for f in after.findings] == ["error_rate"]
    assert record_run(summary(quarantined=1), settings(tmp_path)).findings == []
