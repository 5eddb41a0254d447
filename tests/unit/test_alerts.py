"""The alert rules, pure: a run and its history in, findings out."""

from __future__ import annotations

import statistics
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.words import money as format_cost
from pipeline.report.alerts import (
    Finding,
    Severity,
    Thresholds,
    at_least,
    evaluate,
    finding_line,
    format_duration,
)

DEFAULTS = Thresholds()
HISTORY_RULES = {"slow_run", "throughput_down", "cost_up"}


def run(
    wall: float = 100.0,
    items: int = 1000,
    quarantined: int = 0,
    exit_code: int = 0,
    cost: float | None = 0.10,
    pace: float | None = None,
    resumed: int = 0,
) -> dict[str, Any]:
    return {
        "exit_code": exit_code,
        "items": items,
        "resumed": resumed,
        "quarantined": quarantined,
        "wall_seconds": wall,
        "items_per_second": pace if pace is not None else (items - resumed) / wall,
        "cost": {"currency": "USD", "this_attempt": cost},
    }


def rules(findings: list[Finding]) -> set[str]:
    return {finding.rule for finding in findings}


walls = st.floats(min_value=0.1, max_value=1e5, allow_nan=False)
costs = st.one_of(st.none(), st.floats(min_value=0, max_value=1e3, allow_nan=False))
runs = st.builds(
    run,
    wall=walls,
    items=st.integers(0, 100_000),
    exit_code=st.sampled_from([0, 0, 0, 1, 3, 69, 130]),
    cost=costs,
)
comparable_runs = st.builds(run, wall=walls, items=st.integers(1, 100_000), cost=costs)


# ---- rules that need no history


@given(items=st.integers(0, 10_000), share=st.floats(0, 1), threshold=st.floats(0, 1))
def test_error_rate_fires_when_the_quarantined_share_is_over_the_threshold(
    items: int, share: float, threshold: float
) -> None:
    quarantined = int(items * share)
    findings = evaluate(
        run(items=items, quarantined=quarantined), [], Thresholds(error_rate=threshold)
    )
    rate = quarantined / items if items else 0.0
    fired = [f for f in findings if f.rule == "error_rate"]
    assert bool(fired) == (rate > threshold)
    if fired:
        assert fired[0].severity == (Severity.CRITICAL if rate >= 0.5 else Severity.WARNING)
        assert (fired[0].value, fired[0].baseline) == (rate, threshold)


@given(code=st.integers(0, 255))
def test_any_exit_code_but_0_is_a_critical_failed_run(code: int) -> None:
    fired = [f for f in evaluate(run(exit_code=code), []) if f.rule == "failed_run"]
    assert bool(fired) == (code != 0)
    assert all(f.severity is Severity.CRITICAL and f.value == code for f in fired)


def test_a_failed_run_says_what_its_exit_code_means() -> None:
    budget = {**run(exit_code=3), "stopped_by": "max_cost"}
    [finding] = evaluate(budget, [])
    assert finding.message == "the run failed with exit code 3: stopped at a budget (max_cost)"
    [unknown] = evaluate(run(exit_code=42), [])
    assert unknown.message.endswith("exit code 42: an unknown exit code")


# ---- rules against the history


@given(current=runs, earlier=st.lists(comparable_runs, max_size=2))
def test_history_rules_wait_for_three_earlier_runs(
    current: dict[str, Any], earlier: list[dict[str, Any]]
) -> None:
    assert not rules(evaluate(current, earlier)) & HISTORY_RULES


@given(current=walls, earlier=st.lists(walls, min_size=3, max_size=25))
def test_a_run_over_three_times_the_median_of_the_last_ten_is_slow(
    current: float, earlier: list[float]
) -> None:
    findings = evaluate(run(wall=current, pace=1.0), [run(wall=w, pace=1.0) for w in earlier])
    median = statistics.median(earlier[-DEFAULTS.window :])
    fired = [f for f in findings if f.rule == "slow_run"]
    assert bool(fired) == (current > 3 * median)
    assert all(f.severity is Severity.WARNING and f.baseline == median for f in fired)


@given(
    current=st.floats(0.01, 1e4), earlier=st.lists(st.floats(0.01, 1e4), min_size=3, max_size=25)
)
def test_throughput_below_half_the_median_is_down(current: float, earlier: list[float]) -> None:
    findings = evaluate(run(pace=current), [run(pace=p) for p in earlier])
    median = statistics.median(earlier[-DEFAULTS.window :])
    assert ("throughput_down" in rules(findings)) == (current < 0.5 * median)


@given(earlier=st.lists(st.floats(0.01, 1e4), min_size=3, max_size=10))
def test_a_run_that_had_nothing_to_do_has_no_pace_to_judge(earlier: list[float]) -> None:
    idle = run(items=500, resumed=500, pace=0.0)
    assert "throughput_down" not in rules(evaluate(idle, [run(pace=p) for p in earlier]))


@given(current=costs, earlier=st.lists(costs, min_size=3, max_size=25))
def test_cost_up_compares_priced_runs_only(
    current: float | None, earlier: list[float | None]
) -> None:
    findings = evaluate(run(cost=current), [run(cost=c) for c in earlier])
    priced = [c for c in earlier[-DEFAULTS.window :] if c is not None]
    expected = (
        current is not None
        and len(priced) >= 3
        and statistics.median(priced) > 0
        and current > 1.2 * statistics.median(priced)
    )
    assert ("cost_up" in rules(findings)) == expected


def test_a_cost_rise_that_more_items_explain_is_only_info() -> None:
    earlier = [run(items=100, cost=0.01) for _ in range(3)]
    [more_items] = [f for f in evaluate(run(items=500, cost=0.05), earlier) if f.rule == "cost_up"]
    assert more_items.severity is Severity.INFO
    assert "per item it did not rise: 500 items against a median of 100" in more_items.message
    [dearer] = [f for f in evaluate(run(items=100, cost=0.05), earlier) if f.rule == "cost_up"]
    assert dearer.severity is Severity.WARNING
    assert dearer.message == (
        "the run cost $0.0500, 400% more than the median of $0.0100 over the last 3 comparable runs"
    )


@given(
    current=runs,
    window=st.lists(comparable_runs, min_size=10, max_size=10),
    older=st.lists(runs, max_size=10),
)
def test_only_the_last_ten_comparable_runs_count(
    current: dict[str, Any], window: list[dict[str, Any]], older: list[dict[str, Any]]
) -> None:
    assert evaluate(current, [*older, *window]) == evaluate(current, window)


@given(
    current=runs,
    earlier=st.lists(comparable_runs, max_size=12),
    noise=st.lists(
        st.one_of(
            st.builds(run, wall=walls, exit_code=st.sampled_from([3, 69, 75, 130, 143])),
            st.builds(run, wall=walls, items=st.just(0)),
            st.builds(run, wall=walls, items=st.just(40), resumed=st.just(40)),
        ),
        max_size=5,
    ),
    at=st.integers(0, 12),
)
def test_stopped_and_idle_runs_are_not_part_of_the_baseline(
    current: dict[str, Any],
    earlier: list[dict[str, Any]],
    noise: list[dict[str, Any]],
    at: int,
) -> None:
    mixed = [*earlier[:at], *noise, *earlier[at:]]
    assert evaluate(current, mixed) == evaluate(current, earlier)


# ---- findings as a whole

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
summary_keys = st.sampled_from(
    ["exit_code", "items", "resumed", "quarantined", "wall_seconds", "items_per_second", "cost"]
)
garbage_runs = st.dictionaries(summary_keys | st.text(max_size=5), json_values, max_size=8)


@given(current=garbage_runs, earlier=st.lists(garbage_runs, max_size=12))
def test_any_json_whatever_its_shape_gives_findings_not_errors(
    current: dict[str, Any], earlier: list[dict[str, Any]]
) -> None:
    for finding in evaluate(current, earlier):
        assert finding.message and isinstance(finding.severity, Severity)


@given(current=runs, earlier=st.lists(runs, max_size=15))
def test_findings_come_most_severe_first(
    current: dict[str, Any], earlier: list[dict[str, Any]]
) -> None:
    severities = [finding.severity for finding in evaluate(current, earlier)]
    assert severities == sorted(severities, reverse=True)


@given(
    levels=st.lists(st.sampled_from(list(Severity)), max_size=5),
    minimum=st.sampled_from(list(Severity)),
)
def test_at_least_asks_for_one_finding_at_or_above_the_minimum(
    levels: list[Severity], minimum: Severity
) -> None:
    findings = [Finding("r", level, "m", None, None) for level in levels]
    assert at_least(findings, minimum) == any(level >= minimum for level in levels)


def test_severities_are_ordered_and_parsed_by_name() -> None:
    assert Severity.INFO < Severity.WARNING < Severity.CRITICAL
    assert [Severity.parse(s) for s in ("info", "Warning", " CRITICAL ")] == list(Severity)
    with pytest.raises(ValueError, match="use info, warning or critical"):
        Severity.parse("page")
    finding = Finding("slow_run", Severity.WARNING, "the run took long", 9.0, 3.0)
    assert finding_line(finding) == "warning: the run took long"
    assert finding.as_dict()["severity"] == "warning"


def test_a_healthy_run_like_its_history_has_no_findings() -> None:
    assert evaluate(run(), [run(), run(), run()]) == []


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.0234, "0.02 s"), (4.25, "4.2 s"), (59.94, "59.9 s"), (198, "3m 18s"), (3725, "1h 02m")],
)
def test_durations_read_like_a_person_writes_them(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_costs_show_their_currency() -> None:
    assert (format_cost(0.0234), format_cost(12.5), format_cost(3, "EUR")) == (
        "$0.0234",
        "$12.50",
        "3.00 EUR",
    )


def test_thresholds_are_a_frozen_record_with_the_documented_defaults() -> None:
    assert (DEFAULTS.error_rate, DEFAULTS.slow_factor, DEFAULTS.cost_increase) == (0.05, 3.0, 0.2)
    assert (DEFAULTS.throughput_factor, DEFAULTS.min_history, DEFAULTS.window) == (0.5, 3, 10)
    with pytest.raises(AttributeError):
        DEFAULTS.window = 5  # type: ignore[misc]
