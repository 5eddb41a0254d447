"""The async edge of traffic control, on a fake clock: slots, the first answer, pauses."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from pipeline.core.config import TrafficConfig
from pipeline.core.errors import ErrorKind, ServiceUnavailable
from pipeline.core.events import DISCARD
from pipeline.core.models import Usage
from pipeline.traffic.control import Ticket, TrafficControl
from pipeline.traffic.protocol import Holdup
from pipeline.traffic.retry_policy import Verdict
from tests.fakes.clock import FakeClock

ANSWER = Usage(prompt_tokens=10, completion_tokens=2, total_tokens=12)


def _run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(scenario)


def _traffic(clock: FakeClock, concurrency: int, **config: Any) -> TrafficControl:
    return TrafficControl(TrafficConfig(concurrency=concurrency, **config), clock, DISCARD)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def _answered(traffic: TrafficControl) -> None:
    """One request that comes back with an answer (and no rate-limit headers)."""
    ticket = await traffic.admit(0, first_attempt=True)
    traffic.record(ticket, {}, None, ANSWER, latency=0.1)
    traffic.release(ticket)


def test_until_the_first_answer_only_one_request_is_in_flight() -> None:
    async def scenario() -> None:
        traffic = _traffic(FakeClock(), concurrency=4)
        first = await traffic.admit(0, first_attempt=True)
        waiting = [asyncio.create_task(traffic.admit(0, first_attempt=True)) for _ in range(6)]
        await _settle()
        assert not any(task.done() for task in waiting)
        traffic.record(first, {}, None, ANSWER, latency=0.1)
        traffic.release(first)
        await _settle()
        assert sum(task.done() for task in waiting) == 4
        for task in waiting:
            task.cancel()

    _run(scenario())


def test_slots_are_handed_out_in_arrival_order() -> None:
    async def scenario() -> None:
        traffic = _traffic(FakeClock(), concurrency=1)
        await _answered(traffic)
        holder = await traffic.admit(0, first_attempt=True)
        order: list[int] = []

        async def wait_turn(n: int) -> Ticket:
            ticket = await traffic.admit(0, first_attempt=True)
            order.append(n)
            return ticket

        waiters = [asyncio.create_task(wait_turn(n)) for n in range(5)]
        await _settle()
        for waiter in waiters:
            traffic.release(holder)
            await _settle()
            holder = waiter.result()
        assert order == [0, 1, 2, 3, 4]

    _run(scenario())


def test_a_cancelled_waiter_does_not_keep_a_slot() -> None:
    async def scenario() -> None:
        traffic = _traffic(FakeClock(), concurrency=1)
        await _answered(traffic)
        holder = await traffic.admit(0, first_attempt=True)
        gone = asyncio.create_task(traffic.admit(0, first_attempt=True))
        next_in_line = asyncio.create_task(traffic.admit(0, first_attempt=True))
        await _settle()
        gone.cancel()
        await _settle()
        traffic.release(holder)
        await _settle()
        assert next_in_line.done()
        traffic.release(next_in_line.result())
        await asyncio.wait_for(traffic.admit(0, first_attempt=True), timeout=1)

    _run(scenario())


def test_a_429_pauses_the_next_request_for_the_servers_wait() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        traffic = _traffic(clock, concurrency=4)
        await _answered(traffic)
        ticket = await traffic.admit(0, first_attempt=True)
        busy = Verdict(ErrorKind.RATE_LIMITED, "HTTP 429", 429, server_wait=2.0)
        traffic.record(ticket, {}, busy)
        traffic.release(ticket)
        started = clock.now()
        await traffic.admit(0, first_attempt=False)
        assert clock.now() - started == pytest.approx(2.0)

    _run(scenario())


def test_an_endpoint_down_past_the_breaker_timeout_stops_the_run() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        traffic = _traffic(clock, concurrency=32, breaker_timeout=30.0)
        await _answered(traffic)
        tickets = [await traffic.admit(0, first_attempt=True) for _ in range(20)]
        for ticket in tickets:
            traffic.record(ticket, {}, Verdict(ErrorKind.TRANSIENT, "HTTP 503", 503))
            traffic.release(ticket)
        opened = clock.now()
        with pytest.raises(ServiceUnavailable, match=r"--breaker-timeout.*last error: HTTP 503"):
            # Each probe fails, so the breaker stays open until the timeout.
            while True:
                probe = await traffic.admit(0, first_attempt=False)
                traffic.record(probe, {}, Verdict(ErrorKind.TRANSIENT, "HTTP 503", 503))
                traffic.release(probe)
        assert clock.now() - opened == pytest.approx(30.0)

    _run(scenario())


def test_while_the_breaker_is_open_the_holdup_says_so_and_counts_down() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        traffic = _traffic(clock, concurrency=32, breaker_timeout=30.0)
        await _answered(traffic)
        assert traffic.holdup(retrying=2) == Holdup("2 items to retry")
        tickets = [await traffic.admit(0, first_attempt=True) for _ in range(20)]
        assert traffic.holdup() == Holdup("answers to 20 requests")
        for ticket in tickets:
            traffic.record(ticket, {}, Verdict(ErrorKind.TRANSIENT, "HTTP 503", 503))
            traffic.release(ticket)
        await clock.sleep(12.0)
        holdup = traffic.holdup()
        assert holdup.failing
        assert holdup.waiting_for == (
            "the endpoint to recover (failing for 12s; the run stops with exit 69 in 18s, "
            "see --breaker-timeout)"
        )

    _run(scenario())


def test_a_probe_cancelled_while_waiting_for_a_slot_lets_another_probe_go() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        traffic = _traffic(clock, concurrency=1)
        await _answered(traffic)
        holder = await traffic.admit(0, first_attempt=True)
        for _ in range(20):  # answers of requests sent before the outage began
            traffic.record(Ticket(0, False), {}, Verdict(ErrorKind.TRANSIENT, "HTTP 503", 503))
        clock.current += 60  # past the cool-down: the next admission is the probe
        lost = asyncio.create_task(traffic.admit(0, first_attempt=False))
        await _settle()
        lost.cancel()  # the run stopping, say, while the probe waits for the busy slot
        await _settle()
        traffic.release(holder)
        ticket = await asyncio.wait_for(traffic.admit(0, first_attempt=False), timeout=1)
        assert ticket.probe

    _run(scenario())


def _left(remaining: int) -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": "6000",
        "x-ratelimit-remaining-requests": str(remaining),
    }


def test_a_remaining_count_is_read_as_of_the_answered_requests_admission() -> None:
    """The server had counted what went before the answered request, not what went
    after it, and it refilled while the request was out."""

    async def scenario() -> None:
        clock = FakeClock()
        traffic = _traffic(clock, concurrency=4, rpm=6000)  # 100 a second
        first, second, _third = [await traffic.admit(0, first_attempt=True) for _ in range(3)]
        clock.current += 0.3
        traffic.record(first, _left(997), None, ANSWER, latency=0.3)  # a burst of 1,000
        # Someone else shares the key: 500 were left just after the second was admitted.
        traffic.record(second, _left(500), None, ANSWER, latency=0.3)
        # 500, less the third, plus what 0.25 s refilled (0.05 s is the way there).
        taken = 0
        while traffic.limiter.reserve(0, clock.now()) == 0:
            taken += 1
        assert taken == pytest.approx(524, abs=1)

    _run(scenario())
