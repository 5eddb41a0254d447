from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.traffic.adaptive_timeout import (
    MAX_BACKOFF,
    MIN_TIMEOUT,
    TIMEOUT_MULTIPLIER,
    WARMUP_SAMPLES,
    LatencyTracker,
)

HIGH_CEILING = 1e9


def steady(seconds: float, samples: int = WARMUP_SAMPLES) -> LatencyTracker:
    tracker = LatencyTracker()
    for _ in range(samples):
        tracker.add(seconds)
    return tracker


def rto(tracker: LatencyTracker) -> float:
    """The documented formula, before backoff and ceiling."""
    return max(MIN_TIMEOUT, TIMEOUT_MULTIPLIER * (tracker.smoothed + 4 * tracker.deviation))


def test_timeout_is_the_ceiling_during_warmup() -> None:
    tracker = steady(1.0, samples=WARMUP_SAMPLES - 1)
    assert tracker.attempt_timeout(60.0) == 60.0


def test_timeout_after_warmup_is_scaled_smoothed_plus_four_deviations() -> None:
    tracker = steady(4.0)
    timeout = tracker.attempt_timeout(HIGH_CEILING)
    assert timeout == pytest.approx(rto(tracker))
    assert timeout == pytest.approx(TIMEOUT_MULTIPLIER * 4.0, rel=0.01)  # deviation has decayed


def test_timeout_is_floored_at_min_timeout() -> None:
    assert steady(0.1).attempt_timeout(HIGH_CEILING) == MIN_TIMEOUT


def test_timeout_is_capped_by_the_ceiling() -> None:
    assert steady(10.0).attempt_timeout(20.0) == 20.0


def test_a_timeout_doubles_the_attempt_timeout() -> None:
    tracker = steady(4.0)
    base = tracker.attempt_timeout(HIGH_CEILING)
    tracker.on_timeout()
    assert tracker.attempt_timeout(HIGH_CEILING) == pytest.approx(2 * base)
    tracker.on_timeout()
    assert tracker.attempt_timeout(HIGH_CEILING) == pytest.approx(4 * base)


def test_backoff_is_capped_at_max_backoff() -> None:
    tracker = steady(4.0)
    base = tracker.attempt_timeout(HIGH_CEILING)
    for _ in range(20):
        tracker.on_timeout()
    assert tracker.attempt_timeout(HIGH_CEILING) == pytest.approx(MAX_BACKOFF * base)


def test_backed_off_timeout_is_capped_by_the_ceiling() -> None:
    tracker = steady(4.0)
    for _ in range(3):
        tracker.on_timeout()
    assert tracker.attempt_timeout(30.0) == 30.0


def test_the_next_answer_ends_the_backoff() -> None:
    tracker = steady(4.0)
    tracker.on_timeout()
    tracker.on_timeout()
    tracker.add(4.0)
    assert tracker.attempt_timeout(HIGH_CEILING) == pytest.approx(rto(tracker))


def test_round_trip_is_the_smoothed_latency() -> None:
    assert steady(3.0).round_trip == pytest.approx(3.0)


def test_not_spiking_under_steady_latency() -> None:
    tracker = LatencyTracker()
    for _ in range(200):
        tracker.add(1.0)
        assert not tracker.spiking


def test_spiking_when_latency_jumps_well_above_the_baseline() -> None:
    tracker = steady(1.0)
    for _ in range(5):
        tracker.add(10.0)
    assert tracker.spiking


def test_not_spiking_during_warmup_even_after_a_jump() -> None:
    tracker = steady(1.0, samples=WARMUP_SAMPLES // 2)
    for _ in range(WARMUP_SAMPLES // 2 - 1):
        tracker.add(100.0)
    assert not tracker.spiking


EVENTS = st.lists(
    st.none()  # a timeout
    | st.floats(min_value=0.0, exclude_min=True, allow_infinity=False),
    max_size=100,
)


@given(events=EVENTS, ceiling=st.floats(min_value=1e-3, max_value=1e5))
def test_timeout_stays_between_the_floor_and_the_ceiling(
    events: list[float | None], ceiling: float
) -> None:
    tracker = LatencyTracker()
    for latency in events:
        if latency is None:
            tracker.on_timeout()
        else:
            tracker.add(latency)
        assert min(MIN_TIMEOUT, ceiling) <= tracker.attempt_timeout(ceiling) <= ceiling
