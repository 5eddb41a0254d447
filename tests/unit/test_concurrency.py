from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.traffic.aimd import ConcurrencyLimit, Congestion


def halved(maximum: int = 100) -> ConcurrencyLimit:
    """A limit knocked down to half its maximum by one rate-limit signal at t=0."""
    limit = ConcurrencyLimit(maximum)
    limit.on_congestion(Congestion.RATE_LIMITED, now=0.0, round_trip=1.0)
    return limit


def test_starts_at_the_maximum() -> None:
    assert ConcurrencyLimit(32, minimum=4).current == 32


@pytest.mark.parametrize(("maximum", "minimum"), [(5, 0), (3, 4), (0, 0), (0, 1), (5, -1)])
def test_constructor_rejects_bad_bounds(maximum: int, minimum: int) -> None:
    with pytest.raises(ValueError):
        ConcurrencyLimit(maximum, minimum)


def test_additive_increase_adds_about_one_per_current_successes() -> None:
    limit = halved(100)
    start = limit.current
    assert start == 50
    for _ in range(start // 2):
        limit.on_success()
    assert limit.current == start  # half a round of successes is not yet a full step
    for _ in range(start // 2 + 1):
        limit.on_success()
    assert limit.current == start + 1


def test_successes_never_grow_past_the_maximum() -> None:
    limit = ConcurrencyLimit(8)
    for _ in range(1000):
        limit.on_success()
    assert limit.current == 8


def test_a_burst_of_signals_shrinks_once_per_round_trip() -> None:
    limit = ConcurrencyLimit(64)
    for i in range(30):
        limit.on_congestion(Congestion.RATE_LIMITED, now=i / 40, round_trip=1.0)
    assert limit.current == 32


def test_rate_limits_shrink_more_than_server_errors() -> None:
    rate_limited, server_error = ConcurrencyLimit(100), ConcurrencyLimit(100)
    rate_limited.on_congestion(Congestion.RATE_LIMITED, now=0.0, round_trip=1.0)
    server_error.on_congestion(Congestion.SERVER_ERROR, now=0.0, round_trip=1.0)
    assert rate_limited.current == 50
    assert server_error.current == 90


def test_a_new_signal_after_the_round_trip_shrinks_again() -> None:
    limit = halved(100)
    limit.on_congestion(Congestion.RATE_LIMITED, now=0.99, round_trip=1.0)
    assert limit.current == 50
    limit.on_congestion(Congestion.RATE_LIMITED, now=1.0, round_trip=1.0)
    assert limit.current == 25


def test_shrinking_stops_at_the_minimum() -> None:
    limit = ConcurrencyLimit(100, minimum=3)
    for second in range(20):
        limit.on_congestion(Congestion.RATE_LIMITED, now=float(second), round_trip=0.5)
    assert limit.current == 3


@st.composite
def bounds(draw: st.DrawFn) -> tuple[int, int]:
    maximum = draw(st.integers(min_value=1, max_value=500))
    return maximum, draw(st.integers(min_value=1, max_value=maximum))


EVENTS = st.lists(
    st.tuples(
        st.none() | st.sampled_from(Congestion),  # None: a calm success
        st.floats(min_value=0.0, max_value=10.0),  # time step
        st.floats(min_value=1e-6, max_value=100.0),  # round trip
    ),
    max_size=300,
)


@given(limits=bounds(), events=EVENTS)
def test_current_stays_within_the_bounds(
    limits: tuple[int, int], events: list[tuple[Congestion | None, float, float]]
) -> None:
    maximum, minimum = limits
    limit = ConcurrencyLimit(maximum, minimum)
    now = 0.0
    for signal, dt, round_trip in events:
        now += dt
        if signal is None:
            limit.on_success()
        else:
            limit.on_congestion(signal, now, round_trip)
        assert minimum <= limit.current <= maximum
