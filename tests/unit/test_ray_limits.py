"""The Ray cluster's rate limits (engines/ray_limits.py), without Ray.

The keeper's grants never send faster than its bucket allows, reach at most
`GRANT_HORIZON` ahead, hold one time until the server has answered, obey a 429's
pause and pace at a limit the server's headers taught. Workers (`GrantedLimiter`)
sharing one keeper in-process send, together, within that same rate; a 429 on one
reaches the keeper, and what a worker learned rides along with its next ask.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.engines.ray_limits import (
    GRANT_HORIZON,
    GRANT_LEAST,
    Grant,
    GrantedLimiter,
    LimitsKeeper,
    Report,
)
from pipeline.protocol.headers import LimitReading
from pipeline.traffic.limiter import DEFAULT_BURST_SECONDS, Limits, usable_burst

KEY = "account-and-model"
START = 1_000_000.0
HEARD = Report(readings={})  # an answer without limit headers: the server has been heard
NOTHING_NEW = Report(readings=None)


class Wall:
    """A wall clock that moves only when the test moves it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Worker:
    """A GrantedLimiter wired to a keeper in this process; it keeps every Report it sent."""

    def __init__(self, keeper: LimitsKeeper, wall: Wall, limits: Limits, want: int) -> None:
        self.keeper = keeper
        self.wall = wall
        self.reports: list[Report] = []
        self.limiter = GrantedLimiter(KEY, limits, self._ask, self._tell_pause, want, wall=wall)

    async def _ask(
        self, key: str, limits: Limits, want: int, tokens: float, report: Report
    ) -> Grant:
        self.reports.append(report)
        return self.keeper.grant(key, limits, want, tokens, report, now=self.wall())

    def _tell_pause(self, key: str, limits: Limits, seconds: float, kinds: list[str]) -> None:
        self.keeper.pause(key, limits, seconds, kinds, self.wall())


def capacity_of(rpm: float) -> float:
    rate = rpm / 60
    return usable_burst(rate * DEFAULT_BURST_SECONDS, rate)


def assert_within_rate(send_times: Iterable[float], rpm: float) -> None:
    """No window [t, t + w] holds more sends than the bucket's capacity + rate * w."""
    rate, capacity = rpm / 60, capacity_of(rpm)
    lowest_start = float("inf")  # min over i of (i - rate * t_i): the best window start
    for index, moment in enumerate(sorted(send_times)):
        lowest_start = min(lowest_start, index - rate * moment)
        assert (index + 1 - rate * moment) - lowest_start <= capacity + 1e-6


async def send_busy(workers: Sequence[Worker], sends: int, tokens: float = 0.0) -> list[float]:
    """Each worker always has a request ready: it reserves again the moment it sent."""
    wall = workers[0].wall
    next_turn = [wall.now] * len(workers)
    sent: list[float] = []
    for _ in range(sends):
        turn = min(range(len(workers)), key=next_turn.__getitem__)
        wall.now = next_turn[turn]
        limiter = workers[turn].limiter
        await limiter.replenish(tokens)
        wait = limiter.reserve(tokens, wall.now)
        assert wait >= 0
        limiter.observe({}, wall.now)  # its answer: the server has been heard
        sent.append(wall.now + wait)
        next_turn[turn] = wall.now + wait
    return sent


@settings(max_examples=100, deadline=None)
@given(
    rpm=st.integers(1, 12_000),
    asks=st.lists(st.tuples(st.integers(1, 64), st.floats(0, 5)), min_size=1, max_size=40),
)
def test_grants_keep_to_the_bucket_and_the_horizon(rpm: int, asks: list[tuple[int, float]]) -> None:
    keeper, now, granted = LimitsKeeper(), START, []
    for number, (want, elapsed) in enumerate(asks):
        now += elapsed
        grant = keeper.grant(
            KEY, Limits(rpm=rpm), want, 0.0, HEARD if number == 0 else NOTHING_NEW, now
        )
        times = grant.send_at
        assert 1 <= len(times) <= want
        assert times[0] >= now
        assert times == sorted(times)
        least = min(GRANT_LEAST, max(1, want // 4))
        assert len(times) >= least
        beyond = [moment for moment in times if moment >= now + GRANT_HORIZON]
        assert len(beyond) <= max(1, least)  # past the horizon: only what makes its least
        if len(times) < want:
            assert times[-1] >= now + GRANT_HORIZON  # it stopped at the horizon
        granted += times
    assert_within_rate(granted, rpm)


@settings(max_examples=50, deadline=None)
@given(wants=st.lists(st.integers(1, 64), min_size=1))
def test_until_the_server_answers_a_grant_holds_one_send_time(wants: list[int]) -> None:
    keeper = LimitsKeeper()  # no limits given: the first answer's headers may hold them
    for want in wants:
        assert len(keeper.grant(KEY, Limits(), want, 0.0, NOTHING_NEW, START).send_at) == 1


@settings(max_examples=50, deadline=None)
@given(rpm=st.integers(600, 12_000), want=st.integers(1, 64))
def test_given_limits_are_granted_their_burst_before_any_answer(rpm: int, want: int) -> None:
    assert capacity_of(rpm) >= want  # the whole ask fits in the burst
    grant = LimitsKeeper().grant(KEY, Limits(rpm=rpm), want, 0.0, NOTHING_NEW, START)
    assert grant.send_at == [START] * want


@settings(max_examples=50, deadline=None)
@given(want=st.integers(1, 64), now=st.floats(0, 1e9))
def test_without_limits_a_heard_keeper_grants_all_at_once(want: int, now: float) -> None:
    assert LimitsKeeper().grant(KEY, Limits(), want, 0.0, HEARD, now).send_at == [now] * want


@settings(max_examples=100, deadline=None)
@given(
    rpm=st.none() | st.integers(1, 12_000),
    seconds=st.floats(0, 120),
    later=st.floats(0, 200),
    want=st.integers(1, 64),
)
def test_no_grant_reaches_before_a_pause_ends(
    rpm: int | None, seconds: float, later: float, want: int
) -> None:
    keeper, limits = LimitsKeeper(), Limits(rpm=rpm)
    keeper.grant(KEY, limits, want, 0.0, HEARD, START)
    keeper.pause(KEY, limits, seconds, ["requests"], START)
    grant = keeper.grant(KEY, limits, want, 0.0, NOTHING_NEW, START + later)
    assert grant.send_at[0] >= START + seconds


def test_a_limit_in_the_headers_paces_later_grants() -> None:
    keeper = LimitsKeeper()
    taught = Report({"requests": LimitReading(per_minute=600, remaining=0, reset=None)})
    first = keeper.grant(KEY, Limits(), 64, 0.0, taught, START).send_at
    second = keeper.grant(KEY, Limits(), 64, 0.0, NOTHING_NEW, START).send_at
    times = first + second
    assert times[0] == pytest.approx(START + 0.1)
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([0.1] * (len(times) - 1))
    assert len(first) < 64  # paced: the grant stopped at the horizon


@settings(max_examples=50, deadline=None)
@given(
    rpm=st.integers(1, 6_000),
    wants=st.lists(st.integers(1, 32), min_size=2, max_size=3),
    sends=st.integers(1, 300),
)
def test_workers_sharing_a_keeper_send_within_its_rate(
    rpm: int, wants: list[int], sends: int
) -> None:
    keeper, wall = LimitsKeeper(), Wall()
    workers = [Worker(keeper, wall, Limits(rpm=rpm), want) for want in wants]
    assert_within_rate(asyncio.run(send_busy(workers, sends)), rpm)


def test_a_pause_reaches_the_keeper_and_drops_the_pausing_workers_grant() -> None:
    async def scenario() -> None:
        keeper, wall = LimitsKeeper(), Wall()
        pausing, other = (Worker(keeper, wall, Limits(), want=4) for _ in range(2))
        await send_busy([pausing], sends=1)
        await send_busy([other], sends=1)  # the keeper has heard: each holds a grant
        await asyncio.sleep(0)  # let their asks ahead of need finish
        asks_before = len(pausing.reports)
        pausing.limiter.pause(5.0, ["requests"], wall.now)
        await pausing.limiter.replenish(0.0)
        assert len(pausing.reports) == asks_before + 1  # its old grant is gone: it asked anew
        assert pausing.limiter.reserve(0.0, wall.now) >= 5.0
        waits = []
        for _ in range(8):  # more than the other worker holds
            await other.limiter.replenish(0.0)
            waits.append(other.limiter.reserve(0.0, wall.now))
        assert waits[0] == 0.0  # granted before the 429: the keeper cannot take it back
        assert waits[-1] >= 5.0  # its next grant waits past the pause

    asyncio.run(scenario())


def test_what_a_worker_learned_rides_along_with_its_next_ask() -> None:
    async def scenario() -> None:
        worker = Worker(LimitsKeeper(), Wall(), Limits(tpm=600_000), want=1)
        limiter, now = worker.limiter, worker.wall.now
        await limiter.replenish(100.0)
        limiter.reserve(100.0, now)  # the grant's 100 tokens, as estimated: nothing to settle
        requests = LimitReading(per_minute=600, remaining=9, reset=None)
        tokens = LimitReading(per_minute=600_000, remaining=500, reset=None)
        limiter.observe({"requests": requests}, now)
        limiter.observe({"tokens": tokens}, now)
        limiter.settle_tokens(100.0, 40.0, now)
        await limiter.replenish(100.0)  # the ask ahead of need carries the report
        assert worker.reports[0] == Report(None, 0.0)
        assert worker.reports[1] == Report({"requests": requests, "tokens": tokens}, 60.0)
        limiter.reserve(100.0, now)
        await limiter.replenish(100.0)
        assert worker.reports[2] == Report(None, 0.0)  # told once, not again

    asyncio.run(scenario())


def test_paused_for_follows_the_injected_wall_clock() -> None:
    async def scenario() -> None:
        wall = Wall()
        limiter = Worker(LimitsKeeper(), wall, Limits(), want=1).limiter
        limiter.pause(5.0, ["requests"], now=0.0)  # `now` is ignored: the wall clock counts
        assert limiter.paused_for(0.0) == 5.0
        wall.now += 2.0
        assert limiter.paused_for(0.0) == pytest.approx(3.0)
        wall.now += 10.0
        assert limiter.paused_for(123.0) == 0.0

    asyncio.run(scenario())


def test_a_slot_left_unused_is_not_sent_on_top_of_a_fresh_burst() -> None:
    async def scenario() -> list[float]:
        keeper, wall = LimitsKeeper(), Wall()
        idle, busy = (Worker(keeper, wall, Limits(rpm=2), want=2) for _ in range(2))
        sent = await send_busy([idle], sends=1)
        await asyncio.sleep(0)  # its ask ahead of need: it holds a slot 30 s ahead
        wall.now += 100.0  # it sends nothing for a while; the keeper's bucket refills
        return sent + await send_busy([busy], sends=1) + await send_busy([idle], sends=1)

    assert_within_rate(asyncio.run(scenario()), rpm=2)


def test_what_a_failed_ask_carried_is_told_with_the_next_one() -> None:
    keeper, wall = LimitsKeeper(), Wall()
    reports: list[Report] = []
    failing = [True]

    async def ask(key: str, limits: Limits, want: int, tokens: float, report: Report) -> Grant:
        reports.append(report)
        if failing[0]:
            raise ConnectionError("the keeper is being restarted")
        return keeper.grant(key, limits, want, tokens, report, now=wall())

    async def scenario() -> None:
        limiter = GrantedLimiter(KEY, Limits(), ask, lambda *_: None, 1, wall=wall)
        limiter.observe({}, wall.now)
        limiter.settle_tokens(100.0, 40.0, wall.now)
        with pytest.raises(ConnectionError):
            await limiter.replenish(0.0)
        failing[0] = False
        await limiter.replenish(0.0)

    asyncio.run(scenario())
    assert reports == [Report({}, 60.0), Report({}, 60.0)]
