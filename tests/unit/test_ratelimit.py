"""The reserving token bucket, driven by explicit times (no clock, no sleep)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.traffic.buckets import TokenBucket

SLACK = 1e-6

reservations = st.lists(
    st.tuples(st.floats(0, 2.0), st.floats(0.01, 1.0)),  # (seconds since last, share of capacity)
    min_size=1,
    max_size=60,
)


def _send_times(
    rate: float, capacity: float, steps: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """(moment each reservation may be used, its cost) for a bucket that starts full."""
    bucket = TokenBucket(rate, capacity, now=0.0)
    now, sent = 0.0, []
    for gap, share in steps:
        now += gap
        cost = share * capacity
        sent.append((now + bucket.reserve(cost, now), cost))
    return sent


@given(rate=st.floats(0.5, 50), capacity=st.floats(1, 100), steps=reservations)
def test_no_window_admits_more_than_capacity_plus_refill(
    rate: float, capacity: float, steps: list[tuple[float, float]]
) -> None:
    sent = sorted(_send_times(rate, capacity, steps))
    for first in range(len(sent)):
        admitted = 0.0
        for last in range(first, len(sent)):
            admitted += sent[last][1]
            window = sent[last][0] - sent[first][0]
            assert admitted <= capacity + rate * window + SLACK * (1 + admitted)


@given(rate=st.floats(0.5, 50), capacity=st.floats(1, 100), steps=reservations)
def test_waiters_are_served_in_the_order_they_arrived(
    rate: float, capacity: float, steps: list[tuple[float, float]]
) -> None:
    moments = [moment for moment, _ in _send_times(rate, capacity, steps)]
    assert all(a <= b + SLACK for a, b in itertools.pairwise(moments))


def test_a_full_bucket_admits_its_burst_at_once_then_paces_at_the_rate() -> None:
    bucket = TokenBucket(rate=10, capacity=5, now=0.0)
    assert [bucket.reserve(1, 0.0) for _ in range(5)] == [0.0] * 5
    waits = [bucket.reserve(1, 0.0) for _ in range(3)]
    assert waits == pytest.approx([0.1, 0.2, 0.3])


def test_each_waiter_gets_its_own_moment_rather_than_a_shared_wake_up() -> None:
    bucket = TokenBucket(rate=2, capacity=1, now=0.0, level=0.0)
    waits = [bucket.reserve(1, 0.0) for _ in range(4)]
    assert len(set(waits)) == 4


def test_a_refund_lets_later_callers_go_sooner_and_a_charge_later() -> None:
    refunded = TokenBucket(rate=1, capacity=10, now=0.0, level=0.0)
    charged = TokenBucket(rate=1, capacity=10, now=0.0, level=0.0)
    refunded.adjust(+3, 0.0)
    charged.adjust(-3, 0.0)
    assert refunded.reserve(4, 0.0) == pytest.approx(1.0)
    assert charged.reserve(4, 0.0) == pytest.approx(7.0)


def test_the_level_never_refills_beyond_capacity() -> None:
    bucket = TokenBucket(rate=100, capacity=5, now=0.0)
    bucket.adjust(+50, 0.0)
    assert bucket.level(1000.0) == 5


def test_a_clock_stepping_back_does_not_drain_the_bucket() -> None:
    bucket = TokenBucket(rate=1, capacity=5, now=10.0, level=2.0)
    assert bucket.level(5.0) == 2.0


def test_sent_level_leaves_out_reservations_whose_moment_has_not_come() -> None:
    bucket = TokenBucket(rate=1, capacity=2, now=0.0)
    bucket.reserve(2, 0.0)  # due now
    bucket.reserve(1, 0.0)  # due at t=1
    assert bucket.level(0.0) == pytest.approx(-1)
    assert bucket.sent_level(0.0) == pytest.approx(0)
    assert bucket.sent_level(1.0) == pytest.approx(0)  # refilled one, the waiter took it


@given(
    level=st.floats(0, 50),
    pending=st.integers(0, 5),
    remaining=st.floats(0, 100),
)
def test_the_servers_count_can_lower_the_level_but_never_raise_it(
    level: float, pending: int, remaining: float
) -> None:
    bucket = TokenBucket(rate=1, capacity=50, now=0.0, level=level)
    for _ in range(pending):
        bucket.reserve(60, 0.0)  # far beyond the level: each waits
    before = bucket.sent_level(0.0)
    bucket.lower_to(remaining, 0.0)
    assert bucket.sent_level(0.0) == pytest.approx(min(before, remaining))


def test_retune_keeps_the_level_within_the_new_capacity() -> None:
    bucket = TokenBucket(rate=1, capacity=100, now=0.0)
    bucket.retune(rate=2, capacity=10, now=0.0)
    assert bucket.level(0.0) == 10
    assert bucket.reserve(12, 0.0) == pytest.approx(1.0)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, capacity=1, now=0.0)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, capacity=-1, now=0.0)
