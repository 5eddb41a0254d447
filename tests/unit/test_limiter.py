"""The rate limiter: configured limits, limits learned from headers, and the shared pause."""

from __future__ import annotations

import heapq

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.protocol.headers import LimitReading
from pipeline.simulator.limits import TokenBucket as ServerBucket
from pipeline.traffic.limiter import (
    DEFAULT_BURST_SECONDS,
    LAG_ALLOWANCE_SECONDS,
    Limits,
    RateLimiter,
    usable_burst,
)


def _immediate(limiter: RateLimiter, now: float, tokens: float = 0.0, most: int = 10_000) -> int:
    """How many requests may go at `now` without waiting."""
    count = 0
    while count < most and limiter.reserve(tokens, now) == 0:
        count += 1
    return count


def test_usable_burst_stays_a_little_below_the_servers() -> None:
    # One request, plus what 50 ms of lag at the server would lose while it sits full.
    assert usable_burst(200, rate=20) == 198
    assert usable_burst(1000, rate=100) == 994
    assert usable_burst(0.5, rate=0.01) == 1


def test_a_configured_rpm_allows_its_burst_then_paces() -> None:
    limiter = RateLimiter(Limits(rpm=1200), now=0.0)
    assert _immediate(limiter, 0.0) == usable_burst(20 * DEFAULT_BURST_SECONDS, 20)
    assert limiter.reserve(0, 0.0) == pytest.approx(2 / 20)  # one already queued at 1/20 s


@pytest.mark.parametrize("given", [Limits(rpm=1200), Limits(tpm=90_000)])
def test_given_limits_send_their_burst_without_awaiting_the_first_answer(given: Limits) -> None:
    assert not RateLimiter(given, now=0.0).awaiting_first_answer


def test_without_limits_nothing_waits_but_the_first_answer_is_awaited() -> None:
    limiter = RateLimiter(Limits(), now=0.0)
    assert limiter.awaiting_first_answer
    assert _immediate(limiter, 0.0, most=500) == 500
    limiter.observe({}, now=0.0)  # an answer without any rate-limit headers
    assert not limiter.awaiting_first_answer
    assert limiter.per_minute("requests") is None


def test_limits_are_learned_from_the_first_answer() -> None:
    limiter = RateLimiter(Limits(), now=0.0)
    limiter.observe({"requests": LimitReading(1200, 150, 2.5)}, now=0.0)
    assert limiter.per_minute("requests") == 1200
    assert _immediate(limiter, 0.0) == usable_burst(150, 20)
    assert limiter.reserve(0, 0.0) == pytest.approx(2 / 20)


def test_a_lower_server_limit_beats_the_configured_one() -> None:
    limiter = RateLimiter(Limits(rpm=6000), now=0.0)
    limiter.observe({"requests": LimitReading(600, None, None)}, now=0.0)
    assert limiter.per_minute("requests") == 600
    higher = RateLimiter(Limits(rpm=600), now=0.0)
    higher.observe({"requests": LimitReading(6000, None, None)}, now=0.0)
    assert higher.per_minute("requests") == 600


def test_the_servers_remaining_count_lowers_a_configured_burst() -> None:
    limiter = RateLimiter(Limits(rpm=1200), now=0.0)
    limiter.observe({"requests": LimitReading(1200, 30, None)}, now=0.0)
    assert _immediate(limiter, 0.0) == usable_burst(30, 20)
    # The burst learned is the most the server ever showed, not the assumed 10 s worth.
    assert _immediate(limiter, 1000.0) == usable_burst(30, 20)


def test_a_remaining_count_never_raises_the_level() -> None:
    limiter = RateLimiter(Limits(rpm=60), now=0.0)
    assert _immediate(limiter, 0.0) == int(usable_burst(10, 1))
    limiter.observe({"requests": LimitReading(60, 59, None)}, now=0.0)
    assert limiter.reserve(0, 0.0) > 0


def test_tokens_are_reserved_then_settled_against_real_usage() -> None:
    limiter = RateLimiter(Limits(tpm=6000), now=0.0)  # 100 tokens/s
    burst = usable_burst(1000, 100)
    assert limiter.reserve(burst, 0.0) == 0
    assert limiter.reserve(200, 0.0) == pytest.approx(2.0)
    limiter.settle_tokens(reserved=burst, used=burst - 600, now=0.0)  # 600 given back
    assert limiter.reserve(400, 0.0) == 0
    limiter.settle_tokens(reserved=200, used=400, now=0.0)  # 200 charged
    assert limiter.reserve(0, 0.0) == pytest.approx(2.0)


def test_a_429_pauses_everyone_once_until_the_servers_reset() -> None:
    limiter = RateLimiter(Limits(), now=0.0)
    limiter.pause(2.0, ["requests"], now=10.0)
    limiter.pause(1.5, ["requests"], now=10.2)  # a second 429 from the same moment
    assert limiter.paused_for(10.0) == pytest.approx(2.0)
    assert limiter.reserve(0, 11.0) == pytest.approx(1.0)
    assert limiter.reserve(0, 12.0) == 0


def test_a_surprising_429_halves_the_assumed_burst_for_good() -> None:
    limiter = RateLimiter(Limits(rpm=600), now=0.0)  # assumes 100 at once
    limiter.observe({"requests": LimitReading(600, 100, None)}, now=0.0)
    limiter.pause(0.0, ["requests"], now=0.0)  # refused while we thought 100 were left
    limiter.observe({"requests": LimitReading(600, 100, None)}, now=100.0)
    assert _immediate(limiter, 100.0) == int(usable_burst(100, 10) / 2)


@given(
    remaining=st.lists(st.integers(0, 500), min_size=1, max_size=20),
    rpm=st.integers(60, 6000),
)
def test_after_any_readings_the_immediate_burst_never_exceeds_the_latest_count(
    remaining: list[int], rpm: int
) -> None:
    limiter = RateLimiter(Limits(rpm=rpm), now=0.0)
    for count in remaining:
        limiter.observe({"requests": LimitReading(rpm, count, None)}, now=0.0)
    assert _immediate(limiter, 0.0) <= min(remaining)


def test_attempts_still_on_the_wire_come_off_the_servers_remaining_count() -> None:
    # The server's answer counts itself, not the 31 sent after it and still on the wire:
    # of its 99 remaining, 68 are really left, and that is all this limiter lets go.
    limiter = RateLimiter(Limits(rpm=6000), now=0.0)
    for _ in range(32):
        limiter.reserve(0, 0.0)
    reading = {"requests": LimitReading(per_minute=6000, remaining=99, reset=None)}
    limiter.observe(reading, now=0.0, unseen={"requests": 31})
    assert _immediate(limiter, 0.0) == pytest.approx(68, abs=1)


def test_without_attempts_on_the_wire_the_remaining_count_is_taken_as_it_is() -> None:
    limiter = RateLimiter(Limits(rpm=6000), now=0.0)
    limiter.reserve(0, 0.0)
    limiter.observe({"requests": LimitReading(6000, 99, None)}, now=0.0)
    # All the server reports is there: the limiter's burst, learned from that count, binds.
    assert _immediate(limiter, 0.0) == usable_burst(99, rate=100)


def test_what_the_server_refilled_while_the_request_was_out_comes_back() -> None:
    limiter = RateLimiter(Limits(rpm=6000), now=0.0)  # 100 a second
    first = {"requests": LimitReading(per_minute=6000, remaining=999, reset=None)}
    limiter.observe(first, now=0.0)  # the burst the server allows: 1,000
    assert _immediate(limiter, 0.0) == usable_burst(999, rate=100)  # all of it, at once
    # 0.3 s later, the last one's answer: none were left after it was admitted (someone
    # else shares the key). The server has refilled since, at least from 0.05 s after it
    # was sent (the way there): 25 of the 30 this limiter refilled meanwhile are there.
    last = {"requests": LimitReading(per_minute=6000, remaining=0, reset=None)}
    limiter.observe(last, now=0.3, unseen={"requests": 0}, age=0.3)
    assert _immediate(limiter, 0.3) == pytest.approx(25, abs=1)


def _left(remaining: int) -> dict[str, LimitReading]:
    return {"requests": LimitReading(per_minute=6000, remaining=remaining, reset=None)}


def test_once_someone_else_draws_on_the_limit_counts_are_taken_as_they_stand() -> None:
    limiter = RateLimiter(Limits(rpm=6000), now=0.0)  # 100 a second
    limiter.observe(_left(999), now=0.0)  # the burst the server allows: 1,000
    # Nothing sent since, yet only 499 were left: another client took 500.
    limiter.observe(_left(499), now=0.3, unseen={"requests": 0}, age=0.3)
    # It takes its share of every refill from now on, so a count is not topped up with
    # what the server refilled since (that would be 100 + 15).
    limiter.observe(_left(100), now=0.5, unseen={"requests": 0}, age=0.2)
    assert _immediate(limiter, 0.5) == pytest.approx(100, abs=1)


def test_what_a_limiter_learned_survives_being_kept_outside_the_process() -> None:
    limiter = RateLimiter(Limits(rpm=6000), now=0.0)
    limiter.observe(_left(999), now=0.0)
    limiter.observe(_left(499), now=0.3, unseen={"requests": 0}, age=0.3)
    kept = RateLimiter(Limits(rpm=6000), now=0.0)
    kept.restore(orjson.loads(orjson.dumps(limiter.state())))
    for each in (limiter, kept):
        each.observe(_left(100), now=0.5, unseen={"requests": 0}, age=0.2)
    assert _immediate(kept, 0.5) == _immediate(limiter, 0.5) == pytest.approx(100, abs=1)


@settings(max_examples=60, deadline=None)
@given(
    latencies=st.lists(st.floats(0.0, 2.0), min_size=300, max_size=500),
    lag=st.floats(0.0, LAG_ALLOWANCE_SECONDS),
)
def test_paced_by_a_servers_counts_a_client_keeps_its_pace_and_is_never_refused(
    latencies: list[float], lag: float
) -> None:
    """A server counting at admission (the simulator's bucket), reached `lag` seconds
    after each send and answering `latency` later with what remained. A client sending
    as soon as its limiter lets it is never refused, and falls behind the server's own
    pace by a few requests at most, however long the answers take."""
    rpm, rate = 1200, 20.0
    server = ServerBucket(rpm, DEFAULT_BURST_SECONDS, now=0.0)
    limiter = RateLimiter(Limits(rpm=rpm), now=0.0)
    answers: list[tuple[float, float, int, int]] = []  # (answered, sent, sent by then, left)
    now = 0.0
    for sent, latency in enumerate(latencies, start=1):
        while answers and answers[0][0] <= now:
            _, sent_at, sent_by_then, remaining = heapq.heappop(answers)
            reading = {"requests": LimitReading(rpm, remaining, None)}
            unseen = {"requests": sent - 1 - sent_by_then}
            limiter.observe(reading, now, unseen, age=now - sent_at)
        now += limiter.reserve(0.0, now)
        assert server.try_take(1, now + lag)
        remaining = int(server.remaining(now + lag))
        heapq.heappush(answers, (now + lag + latency, now, sent, remaining))
    servers_pace = max(0.0, (len(latencies) - rate * DEFAULT_BURST_SECONDS) / rate)
    assert now <= servers_pace + 5 / rate
