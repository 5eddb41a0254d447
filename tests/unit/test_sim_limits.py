"""The simulator's token buckets and rate-limit headers, driven by a fake clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.protocol.headers import parse_duration
from pipeline.simulator.limits import (
    RateLimits,
    TokenBucket,
    format_reset,
    rate_limit_headers,
)

SLACK = 1e-6


def test_bucket_starts_full_with_burst_seconds_of_the_limit() -> None:
    bucket = TokenBucket(per_minute=60, burst_seconds=10, now=0.0)
    assert bucket.capacity == pytest.approx(10)
    assert all(bucket.try_take(1, now=0.0) for _ in range(10))
    assert not bucket.try_take(1, now=0.0)


def test_bucket_refills_continuously_at_the_per_minute_rate() -> None:
    bucket = TokenBucket(per_minute=120, burst_seconds=1, now=0.0)  # 2 per second, holds 2
    assert bucket.try_take(2, now=0.0)
    assert not bucket.try_take(1, now=0.25)
    assert bucket.seconds_until_available(1, now=0.25) == pytest.approx(0.25)
    assert bucket.try_take(1, now=0.5)
    assert bucket.remaining(now=0.5) == pytest.approx(0)
    assert bucket.seconds_until_full(now=0.5) == pytest.approx(1.0)


def test_bucket_never_holds_more_than_its_capacity() -> None:
    bucket = TokenBucket(per_minute=60, burst_seconds=5, now=0.0)
    assert bucket.remaining(now=3600.0) == pytest.approx(5)
    assert bucket.seconds_until_full(now=3600.0) == 0.0


def test_a_cost_above_capacity_waits_for_a_full_bucket_then_is_paid_off() -> None:
    bucket = TokenBucket(per_minute=60, burst_seconds=10, now=0.0)  # 1 per second, holds 10
    assert bucket.try_take(1, now=0.0)
    assert not bucket.try_take(25, now=0.0)
    assert bucket.seconds_until_available(25, now=0.0) == pytest.approx(1.0)
    assert bucket.try_take(25, now=1.0)
    assert bucket.remaining(now=1.0) == pytest.approx(-15)
    assert bucket.seconds_until_available(1, now=1.0) == pytest.approx(16)
    assert bucket.seconds_until_full(now=1.0) == pytest.approx(25)


def test_a_clock_stepping_backwards_changes_nothing() -> None:
    bucket = TokenBucket(per_minute=60, burst_seconds=10, now=100.0)
    assert bucket.try_take(10, now=100.0)
    assert bucket.remaining(now=50.0) == pytest.approx(0)
    assert bucket.remaining(now=101.0) == pytest.approx(1)


@pytest.mark.parametrize(("per_minute", "burst"), [(0, 10.0), (-5, 10.0), (60, 0.0)])
def test_a_bucket_that_could_never_refill_is_refused(per_minute: int, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(per_minute, burst)


operations = st.lists(st.tuples(st.floats(0.0, 5.0), st.floats(0.0, 1.0)), min_size=1, max_size=40)


@given(
    per_minute=st.integers(1, 6000),
    burst=st.floats(0.5, 30.0),
    steps=operations,
)
def test_no_window_admits_more_than_capacity_plus_refill(
    per_minute: int, burst: float, steps: list[tuple[float, float]]
) -> None:
    bucket = TokenBucket(per_minute, burst, now=0.0)
    now = 0.0
    admitted: list[tuple[float, float]] = []
    for pause, share in steps:
        now += pause
        cost = share * bucket.capacity
        if bucket.try_take(cost, now):
            admitted.append((now, cost))
    for first in range(len(admitted)):
        for last in range(first, len(admitted)):
            taken = sum(cost for _, cost in admitted[first : last + 1])
            elapsed = admitted[last][0] - admitted[first][0]
            bound = bucket.capacity + bucket.rate_per_second * elapsed
            assert taken <= bound + SLACK * max(1.0, bound)


@given(
    per_minute=st.integers(1, 6000),
    burst=st.floats(0.5, 30.0),
    costs=st.lists(st.floats(0.0, 5.0), min_size=1, max_size=20),
)
def test_every_cost_is_admitted_once_its_wait_has_passed(
    per_minute: int, burst: float, costs: list[float]
) -> None:
    bucket = TokenBucket(per_minute, burst, now=0.0)
    now = 0.0
    for share in costs:
        cost = share * bucket.capacity  # up to five times the bucket
        now += bucket.seconds_until_available(cost, now) + 1e-9
        assert bucket.try_take(cost, now)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-3, "0s"),
        (0.0001, "1ms"),
        (0.25, "250ms"),
        (0.1 + 0.2, "300ms"),
        (0.999, "999ms"),
        (1, "1s"),
        (1.2, "1.2s"),
        (59.001, "59.001s"),
        (60, "1m0s"),
        (90.5, "1m30.5s"),
        (360, "6m0s"),
        (3600, "1h0m0s"),
        (3725.25, "1h2m5.25s"),
    ],
)
def test_reset_is_formatted_like_openai(seconds: float, text: str) -> None:
    assert format_reset(seconds) == text


@given(st.floats(0.0, 3 * 86400.0))
def test_reset_round_trips_through_the_clients_parser_and_is_never_early(seconds: float) -> None:
    text = format_reset(seconds)
    parsed = parse_duration(text)
    assert parsed is not None
    assert parsed >= seconds - 1e-6
    assert parsed - seconds < 0.001 + 1e-6
    assert format_reset(parsed) == text


def test_headers_name_the_limit_the_level_and_the_time_to_full() -> None:
    bucket = TokenBucket(per_minute=600, burst_seconds=1, now=0.0)  # 10 per second, holds 10
    bucket.try_take(4, now=0.0)
    assert rate_limit_headers("requests", bucket, now=0.0) == {
        "x-ratelimit-limit-requests": "600",
        "x-ratelimit-remaining-requests": "6",
        "x-ratelimit-reset-requests": "400ms",
    }


def test_remaining_header_is_never_negative() -> None:
    bucket = TokenBucket(per_minute=60, burst_seconds=1, now=0.0)
    bucket.try_take(30, now=0.0)
    assert rate_limit_headers("tokens", bucket, now=0.0)["x-ratelimit-remaining-tokens"] == "0"


def test_rate_limits_take_from_both_buckets_or_neither() -> None:
    # 1 request and 1 token per second; holds 10 of each.
    limits = RateLimits(rpm=60, tpm=60, burst_seconds=10, now=0.0)
    for _ in range(9):
        assert limits.admit(tokens=0, now=0.0) is None
    assert limits.admit(tokens=8, now=0.0) is None
    refusal = limits.admit(tokens=1, now=0.0)
    assert refusal is not None
    assert refusal.kind == "requests"
    assert refusal.wait == pytest.approx(1.0)
    # One second later a request fits, but 8 more tokens do not: nothing is taken.
    refusal = limits.admit(tokens=8, now=1.0)
    assert refusal is not None
    assert (refusal.kind, refusal.limit, refusal.requested) == ("tokens", 60, 8)
    assert refusal.wait == pytest.approx(5.0)
    headers = limits.headers(now=1.0)
    assert headers["x-ratelimit-remaining-requests"] == "1"
    assert headers["x-ratelimit-remaining-tokens"] == "3"


def test_rate_limits_without_limits_admit_everything_and_send_no_headers() -> None:
    limits = RateLimits(rpm=None, tpm=None)
    assert not limits
    assert all(limits.admit(tokens=10**9, now=0.0) is None for _ in range(100))
    assert limits.headers(now=0.0) == {}


def test_retry_wait_in_a_refusal_rounds_up_to_whole_seconds_for_retry_after() -> None:
    limits = RateLimits(rpm=60, tpm=None, burst_seconds=1, now=0.0)
    limits.admit(tokens=0, now=0.0)
    refusal = limits.admit(tokens=0, now=0.2)
    assert refusal is not None
    assert math.ceil(refusal.wait) == 1
    assert format_reset(refusal.wait) == "800ms"
