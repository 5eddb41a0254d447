from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.traffic.breaker import BreakerSettings, BreakerState, CircuitBreaker

SETTINGS = BreakerSettings(
    failure_share=0.5, min_requests=4, window_seconds=10.0, cooldown=2.0, max_cooldown=5.0
)


def tripped(now: float = 0.0) -> CircuitBreaker:
    """A breaker that opened at `now` (cool-down 2 s, so the probe may go at now + 2)."""
    breaker = CircuitBreaker(SETTINGS)
    for _ in range(SETTINGS.min_requests):
        breaker.record(False, now)
    assert breaker.state is BreakerState.OPEN
    return breaker


def fail_probe(breaker: CircuitBreaker, now: float) -> None:
    assert breaker.admit(now).probe
    breaker.record(False, now, probe=True)


def test_stays_closed_below_min_requests() -> None:
    breaker = CircuitBreaker(SETTINGS)
    for _ in range(SETTINGS.min_requests - 1):
        breaker.record(False, 0.0)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.admit(0.0).send


def test_stays_closed_below_the_failure_share() -> None:
    breaker = CircuitBreaker(SETTINGS)
    for ok in (True, True, True, False, False):  # 2 of 5 failed: 40% < 50%
        breaker.record(ok, 0.0)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.outages == 0


def test_trips_when_the_failure_share_is_reached() -> None:
    breaker = CircuitBreaker(SETTINGS)
    for ok in (True, True, False, False):  # 2 of 4 failed: exactly 50%
        breaker.record(ok, 0.0)
    assert breaker.state is BreakerState.OPEN
    assert breaker.outages == 1


def test_open_breaker_refuses_until_the_cooldown_ends() -> None:
    breaker = tripped(now=0.0)
    for now in (0.0, 1.0, 1.99):
        admission = breaker.admit(now)
        assert not admission.send
        assert admission.wait > 0
        assert now + admission.wait >= 2.0  # waiting as told never comes back too early
    assert breaker.admit(2.0).send


def test_open_breaker_wait_is_the_time_left_in_the_cooldown() -> None:
    breaker = tripped(now=0.0)
    assert breaker.admit(1.5).wait == pytest.approx(0.5)


def test_after_the_cooldown_exactly_one_probe_is_admitted() -> None:
    breaker = tripped(now=0.0)
    first = breaker.admit(2.0)
    assert first.send
    assert first.probe
    assert breaker.state is BreakerState.HALF_OPEN
    for now in (2.0, 3.0, 100.0):
        later = breaker.admit(now)
        assert not later.send
        assert not later.probe
        assert later.wait > 0


def test_probe_success_closes_the_breaker() -> None:
    breaker = tripped(now=0.0)
    assert breaker.admit(2.0).probe
    breaker.record(True, 2.5, probe=True)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.outage_seconds(2.5) == 0.0
    assert breaker.admit(2.5).send


def test_probe_failure_doubles_the_cooldown() -> None:
    breaker = tripped(now=0.0)
    fail_probe(breaker, 2.0)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.admit(5.99).send
    assert breaker.admit(6.0).probe  # 2.0 + 2 * 2.0


def test_doubled_cooldown_is_capped_at_max_cooldown() -> None:
    breaker = tripped(now=0.0)
    fail_probe(breaker, 2.0)  # next cool-down 4 s
    fail_probe(breaker, 6.0)  # 8 s, capped at 5 s
    assert not breaker.admit(10.99).send
    fail_probe(breaker, 11.0)  # still 5 s
    assert not breaker.admit(15.99).send
    assert breaker.admit(16.0).probe


def test_closing_resets_the_cooldown_to_the_initial_one() -> None:
    breaker = tripped(now=0.0)
    fail_probe(breaker, 2.0)
    assert breaker.admit(6.0).probe
    breaker.record(True, 6.0, probe=True)
    for _ in range(SETTINGS.min_requests):
        breaker.record(False, 7.0)
    assert not breaker.admit(8.99).send
    assert breaker.admit(9.0).probe


def test_straggler_success_while_open_closes_the_breaker() -> None:
    breaker = tripped(now=0.0)
    breaker.record(True, 0.5)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.admit(0.5).send


def test_a_probe_failing_after_a_straggler_closed_the_breaker_is_an_ordinary_failure() -> None:
    breaker = tripped(0.0)
    assert breaker.admit(2.0).probe
    breaker.record(True, 2.1)  # a request from before the outage answers first
    breaker.record(False, 2.2, probe=True)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.outages == 1


def test_ordinary_failures_while_open_do_not_extend_the_cooldown() -> None:
    breaker = tripped(now=0.0)
    breaker.record(False, 1.5)
    assert breaker.admit(2.0).probe


def test_failures_outside_the_window_are_forgotten() -> None:
    breaker = CircuitBreaker(SETTINGS)
    for _ in range(SETTINGS.min_requests - 1):
        breaker.record(False, 0.0)
    breaker.record(False, 20.0)  # the first three are long gone
    assert breaker.state is BreakerState.CLOSED


def test_failures_inside_the_window_add_up() -> None:
    breaker = CircuitBreaker(SETTINGS)
    for _ in range(SETTINGS.min_requests - 1):
        breaker.record(False, 0.0)
    breaker.record(False, 5.0)
    assert breaker.state is BreakerState.OPEN


def test_probe_lost_lets_another_probe_go() -> None:
    breaker = tripped(now=0.0)
    assert breaker.admit(2.0).probe
    breaker.probe_lost(3.0)
    again = breaker.admit(3.0)
    assert again.send
    assert again.probe


def test_probe_lost_does_nothing_to_a_closed_breaker() -> None:
    breaker = CircuitBreaker(SETTINGS)
    breaker.probe_lost(1.0)
    assert breaker.state is BreakerState.CLOSED
    assert not breaker.admit(1.0).probe


def test_outage_seconds_grow_from_the_first_opening() -> None:
    breaker = CircuitBreaker(SETTINGS)
    assert breaker.outage_seconds(5.0) == 0.0
    for _ in range(SETTINGS.min_requests):
        breaker.record(False, 1.0)
    assert breaker.outage_seconds(1.0) == 0.0
    fail_probe(breaker, 3.0)  # re-opening does not restart the clock
    assert breaker.outage_seconds(10.0) == pytest.approx(9.0)
    assert breaker.outages == 1


def test_outages_count_outages_not_reopenings() -> None:
    breaker = tripped(now=0.0)
    fail_probe(breaker, 2.0)
    fail_probe(breaker, 6.0)
    assert breaker.outages == 1
    assert breaker.admit(11.0).probe
    breaker.record(True, 11.0, probe=True)
    for _ in range(SETTINGS.min_requests):
        breaker.record(False, 12.0)
    assert breaker.outages == 2


STEPS = st.lists(
    st.tuples(
        st.sampled_from(["admit", "answer", "lose"]),
        st.booleans(),
        st.floats(min_value=0.0, max_value=5.0),
    ),
    max_size=200,
)


@given(steps=STEPS)
def test_closed_always_sends_and_one_probe_per_half_open_period(
    steps: list[tuple[str, bool, float]],
) -> None:
    breaker = CircuitBreaker(SETTINGS)
    in_flight: deque[bool] = deque()  # whether each outstanding request is a probe
    probes_this_period = 0
    now = 0.0
    for action, ok, dt in steps:
        now += dt
        if action == "admit":
            was_closed = breaker.state is BreakerState.CLOSED
            admission = breaker.admit(now)
            if was_closed:
                assert admission.send
                assert not admission.probe
            if admission.probe:
                probes_this_period += 1
                assert probes_this_period == 1
            if admission.send:
                in_flight.append(admission.probe)
        elif in_flight and action == "answer":
            breaker.record(ok, now, probe=in_flight.popleft())
        elif in_flight and in_flight.popleft():
            breaker.probe_lost(now)
        if breaker.state is not BreakerState.HALF_OPEN:
            probes_this_period = 0
        assert breaker.outage_seconds(now) >= 0.0
