"""Stall reports: the pure watch, and the engine's watch on a fake clock."""

from __future__ import annotations

import asyncio
import random

from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.config import Endpoint, RetryConfig, TrafficConfig
from pipeline.core.events import Stalled
from pipeline.core.models import Batch, Item, Outcome
from pipeline.core.redact import Redactor
from pipeline.dispatch.dispatcher import Dispatcher
from pipeline.dispatch.transport import Response, TransportError
from pipeline.engines.asyncio_pool import AsyncioEngine
from pipeline.engines.stalls import REPORT_EVERY, STALL_AFTER, StallWatch
from pipeline.observe.broadcast import Broadcast
from pipeline.observe.counters import RunStats
from pipeline.observe.progress import ProgressFeed, SilentProgress
from pipeline.prepare.preparer import PreparedBatch
from pipeline.prepare.request_builder import Request
from pipeline.traffic.control import TrafficControl
from pipeline.traffic.protocol import Holdup
from tests.fakes.clock import FakeClock
from tests.fakes.transport import ScriptedTransport

SLOW = Holdup("answers to 2 requests")
DOWN = Holdup("the endpoint to recover", failing=True)


def test_nothing_is_said_while_items_keep_finishing() -> None:
    watch = StallWatch(0.0)
    assert all(watch.check(float(t), t // 3, SLOW) is None for t in range(1, 100))


def test_a_stall_is_said_after_a_while_then_every_few_seconds() -> None:
    watch = StallWatch(0.0)
    said = [t for t in range(1, 40) if watch.check(float(t), 0, SLOW) is not None]
    assert said == [STALL_AFTER, STALL_AFTER + REPORT_EVERY, STALL_AFTER + 2 * REPORT_EVERY]


def test_a_failing_endpoint_is_said_at_once_with_the_last_error() -> None:
    stall = StallWatch(0.0).check(1.0, 0, DOWN, "HTTP 503: overloaded", 0.5)
    assert stall is not None and stall.failing
    assert stall.describe() == (
        "stalled for 1s, waiting for the endpoint to recover; last error: HTTP 503: overloaded"
    )


def test_only_an_error_since_the_last_finished_item_makes_a_slow_run_failing() -> None:
    watch = StallWatch(0.0)
    watch.check(5.0, 1, SLOW)  # an item finished at 5
    stale = watch.check(15.0, 1, SLOW, "HTTP 500", last_error_at=4.0)
    assert stale is not None and not stale.failing
    fresh = StallWatch(0.0).check(10.0, 0, SLOW, "HTTP 500", last_error_at=4.0)
    assert fresh is not None and fresh.failing


@given(
    st.lists(st.tuples(st.floats(0.1, 5.0), st.booleans(), st.booleans()), min_size=1, max_size=80)
)
def test_reports_are_spaced_and_only_for_real_stalls(
    steps: list[tuple[float, bool, bool]],
) -> None:
    watch = StallWatch(0.0)
    now, finished, finished_at, last_said = 0.0, 0, 0.0, None
    for elapsed, progressed, failing in steps:
        now += elapsed
        if progressed:
            finished, finished_at = finished + 1, now
        stall = watch.check(now, finished, Holdup("x", failing))
        if stall is None:
            continue
        assert failing or now - finished_at >= STALL_AFTER
        assert last_said is None or now - last_said >= REPORT_EVERY
        last_said = now


REQUEST = Request(Endpoint.CHAT, "/chat/completions", {})


class _Discard:
    async def write(self, batches: list[tuple[Batch, list[Outcome]]]) -> None:
        pass


class _StopAtFirstStall(SilentProgress):
    def __init__(self) -> None:
        self.stalls: list[Stalled] = []
        self.engine: AsyncioEngine | None = None

    def stalled(self, stall: Stalled) -> None:
        self.stalls.append(stall)
        assert self.engine is not None
        self.engine.stop(grace=0)


async def _hang() -> Response:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def _stalls_of(script: ScriptedTransport) -> list[Stalled]:
    """Run three items through the engine until its first stall report."""

    async def scenario() -> list[Stalled]:
        clock, stats = FakeClock(), RunStats()
        traffic = TrafficControl(TrafficConfig(concurrency=4), clock, stats, random.Random(0))
        redact = Redactor(None)
        dispatcher = Dispatcher(
            script, traffic, RetryConfig(), stats, redact, clock, random.Random(0)
        )
        progress = _StopAtFirstStall()
        events = Broadcast(stats, ProgressFeed(progress, stats))
        engine = progress.engine = AsyncioEngine(dispatcher, _Discard(), events, 4, 2)
        items = [Item(n, "in.jsonl", n + 1, {"id": n}, n) for n in range(3)]
        batches = [PreparedBatch(Batch(0, items), [REQUEST] * 3, [None] * 3)]

        async def next_batch() -> PreparedBatch | None:
            return batches.pop() if batches else None

        await engine.run(next_batch)
        return progress.stalls

    return asyncio.run(scenario())


def test_the_engine_says_when_answers_stop_coming_on_its_clock() -> None:
    (stall,) = _stalls_of(ScriptedTransport(lambda n: _hang()))
    assert stall.seconds >= STALL_AFTER
    assert stall.waiting_for == "answers to 1 request"
    assert stall.last_error is None and not stall.failing


def test_an_error_during_the_stall_is_named_and_marks_it_failing() -> None:
    async def reset_then_hang(n: int) -> Response:
        if n == 1:
            raise TransportError("server closed the connection without answering")
        return await _hang()

    (stall,) = _stalls_of(ScriptedTransport(reset_then_hang))
    assert stall.failing
    assert stall.last_error == "server closed the connection without answering"
