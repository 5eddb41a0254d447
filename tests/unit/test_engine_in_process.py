"""The engine and dispatcher driven through the in-process Transport: the real seam, no HTTP."""

from __future__ import annotations

import asyncio
import random

import orjson

from pipeline.core.config import Endpoint, RetryConfig, TrafficConfig
from pipeline.core.events import DISCARD, BatchStarted, Event, EventSink, ItemSettled
from pipeline.core.models import Batch, Failure, Item, Outcome, Success
from pipeline.core.redact import Redactor
from pipeline.dispatch.dispatcher import Dispatcher
from pipeline.dispatch.in_process import Handler, InProcessTransport
from pipeline.dispatch.transport import Response
from pipeline.engines.asyncio_pool import AsyncioEngine
from pipeline.observe.broadcast import Broadcast
from pipeline.observe.counters import RunStats
from pipeline.prepare.preparer import SKIPPED, PreparedBatch, Skipped, Staged
from pipeline.prepare.request_builder import Request
from pipeline.traffic.control import TrafficControl
from tests.fakes.clock import FakeClock


class _Written:
    def __init__(self) -> None:
        self.batches: list[tuple[Batch, list[Outcome]]] = []
        self.commits: list[list[int]] = []  # the batch indexes of each write, in order
        self.committed = asyncio.Event()  # set by the first write

    async def write(self, batches: list[tuple[Batch, list[Outcome]]]) -> None:
        self.batches.extend(batches)
        self.commits.append([batch.index for batch, _ in batches])
        self.committed.set()


async def _answer(path: str, payload: bytes) -> Response:
    """Echo the user message back; refuse the one that asks for it (HTTP 400)."""
    text = orjson.loads(payload)["messages"][0]["content"]
    if text == "refuse me":
        body = {"error": {"message": "no", "code": "invalid_request"}}
        return Response(400, {}, orjson.dumps(body), 0.0)
    answer = {
        "choices": [{"message": {"content": text.upper()}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    return Response(200, {}, orjson.dumps(answer), 0.0)


def _request(text: str) -> Request:
    body = {"model": "m", "messages": [{"role": "user", "content": text}]}
    return Request(Endpoint.CHAT, "/chat/completions", body)


def _run(texts: list[list[str]]) -> tuple[list[tuple[Batch, list[Outcome]]], int, RunStats]:
    written, sent, stats = _run_into(texts, _Written(), _answer)
    return written.batches, sent, stats


def _run_into(
    texts: list[list[str]], written: _Written, answer: Handler, watcher: EventSink = DISCARD
) -> tuple[_Written, int, RunStats]:
    async def scenario() -> tuple[_Written, int, RunStats]:
        clock, stats = FakeClock(), RunStats()
        transport = InProcessTransport(answer)
        traffic = TrafficControl(TrafficConfig(concurrency=4), clock, stats, random.Random(0))
        dispatcher = Dispatcher(
            transport, traffic, RetryConfig(), stats, Redactor(None), clock, random.Random(0)
        )
        engine = AsyncioEngine(dispatcher, written, Broadcast(stats, watcher), 4, 4)
        pending = []
        for index, batch_texts in enumerate(texts):
            items = [
                Item(n, "in.jsonl", n + 1, {"t": t}, f"{index}-{n}")
                for n, t in enumerate(batch_texts)
            ]
            # "skip me" is left out as --where leaves an item out: settled unsent.
            requests: list[Request | Staged | str | Skipped | None] = [
                SKIPPED if t == "skip me" else _request(t) for t in batch_texts
            ]
            pending.append(PreparedBatch(Batch(index, items), requests, [None] * len(items)))
        pending.reverse()

        async def next_batch() -> PreparedBatch | None:
            return pending.pop() if pending else None

        await engine.run(next_batch)
        return written, transport.sent, stats

    return asyncio.run(scenario())


def test_every_item_gets_one_outcome_written_in_input_order() -> None:
    texts = [["a", "b", "refuse me"], ["c"], [], ["d", "e"]]
    written, sent, stats = _run(texts)
    assert [batch.index for batch, _ in written] == [0, 1, 2, 3]
    outputs = [
        o.output if isinstance(o, Success) else o.kind for _, outcomes in written for o in outcomes
    ]
    assert outputs == ["A", "B", "permanent", "C", "D", "E"]
    refused = written[0][1][2]
    assert isinstance(refused, Failure) and refused.status == 400 and refused.attempts == 1
    assert sent == 6 and stats.requests == 6
    assert stats.succeeded == 5 and stats.prompt_tokens == 15


class _Watcher:
    """Keeps every event it is given; `takes` as given (None: any kind)."""

    def __init__(self, takes: frozenset[type] | None) -> None:
        self.takes = takes
        self.kinds: list[type] = []

    def emit(self, event: Event) -> None:
        self.kinds.append(type(event))


def test_item_settled_is_made_only_when_a_sink_takes_it() -> None:
    texts = [["a", "skip me", "b", "refuse me"], ["c"], ["skip me", "skip me"], ["d", "e"]]
    everything, batches_only = _Watcher(None), _Watcher(frozenset({BatchStarted}))
    settled_told = _run_into(texts, _Written(), _answer, everything)[0]
    not_told = _run_into(texts, _Written(), _answer, batches_only)[0]
    assert everything.kinds.count(ItemSettled) == 9 and everything.kinds.count(BatchStarted) == 4
    assert batches_only.kinds == [BatchStarted] * 4  # and no ItemSettled was handed to it
    skipped = [
        o for _, outs in not_told.batches for o in outs if isinstance(o, Success) and o.skipped
    ]
    assert len(skipped) == 3
    # The outcomes do not depend on who listens.
    assert [o for _, outs in not_told.batches for o in outs] == [
        o for _, outs in settled_told.batches for o in outs
    ]


def test_batches_completing_one_behind_another_share_a_commit() -> None:
    async def answered_a_few_turns_later(path: str, payload: bytes) -> Response:
        for _ in range(3):  # so each batch completes after the writer has looked
            await asyncio.sleep(0)
        return await _answer(path, payload)

    texts = [[f"{index}-a", f"{index}-b"] for index in range(40)]
    written, sent, _ = _run_into(texts, _Written(), answered_a_few_turns_later)
    assert sent == 80
    assert [index for commit in written.commits for index in commit] == list(range(40))
    # They complete a few loop turns apart, within the moment the writer holds a
    # commit open: a handful of part files (and rounds of fsyncs), not forty.
    assert len(written.commits) <= 8, written.commits


def test_a_commit_never_waits_for_a_batch_that_is_still_out() -> None:
    """The last batch's answer is held until the batches before it are committed: the
    writer must commit them without it, or the run never ends."""
    written = _Written()

    async def held_until_committed(path: str, payload: bytes) -> Response:
        if orjson.loads(payload)["messages"][0]["content"] == "last":
            await written.committed.wait()
        return await _answer(path, payload)

    texts = [["a"], ["b"], ["last"]]
    done, sent, _ = _run_into(texts, written, held_until_committed)
    assert sent == 3
    assert done.commits[-1] == [2] and [i for c in done.commits for i in c] == [0, 1, 2]
