"""The worker pool: batches in, outcomes written in input order, memory bounded.

    producer ──(item, request)──► work queue ──► N workers (dispatch) ──┐
        └──────── batch ────────► order queue (window) ──► writer ◄─────┘

The producer renders requests and settles invalid items at once; workers only
send. The writer takes batches in input order and waits for each to finish, so
output order equals input order while later batches are already in flight. Both
queues are bounded, so at most `window` batches are ever held in memory.

`stop()` is the graceful way out: nothing new is sent, requests already on the
wire get a grace period to answer, the batches they complete are still written
(in order, up to the first incomplete one), and `run` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Protocol

from pipeline.dispatch import Dispatcher, DispatchStopped
from pipeline.errors import ConfigError, ErrorKind, SluiceError
from pipeline.memo import ResponseMemo
from pipeline.models import Batch, Failure, Item, Outcome, Success
from pipeline.request_builder import InvalidItem, Request, RequestBuilder
from pipeline.stats import RunStats


class OutcomeWriter(Protocol):
    async def write(self, batch: Batch, outcomes: list[Outcome]) -> None: ...


class Progress(Protocol):
    def update(self, stats: RunStats) -> None: ...


class _BatchInFlight:
    __slots__ = ("abandoned", "batch", "done", "outcomes", "pending")

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.outcomes: list[Outcome | None] = [None] * len(batch.items)
        self.pending = len(batch.items)
        self.done = asyncio.Event()
        self.abandoned = False
        if self.pending == 0:
            self.done.set()

    def abandon(self) -> None:
        """The run stopped before this batch completed: it must not be written."""
        self.abandoned = True
        self.done.set()

    def settle(self, index: int, outcome: Outcome) -> None:
        self.outcomes[index] = outcome
        self.pending -= 1
        if self.pending == 0:
            self.done.set()


Job = tuple[_BatchInFlight, int, Item, Request, str | None]
_JOINED = "joined an identical request in flight"
NextBatch = Callable[[], Awaitable[Batch | None]]


class Engine:
    def __init__(
        self,
        builder: RequestBuilder,
        dispatcher: Dispatcher,
        writer: OutcomeWriter,
        stats: RunStats,
        progress: Progress,
        concurrency: int,
        window: int,
        memo: ResponseMemo | None = None,
    ) -> None:
        self._builder = builder
        self._memo = memo
        self._dispatcher = dispatcher
        self._writer = writer
        self._stats = stats
        self._progress = progress
        # More workers than slots: items sleeping out a retry backoff hold a worker
        # but no slot, and must not leave the slots idle meanwhile. Not many more:
        # each extra worker queues for a slot on every request when all is well.
        self._workers = concurrency + max(4, concurrency // 4)
        self._work: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=concurrency * 2)
        self._order: asyncio.Queue[_BatchInFlight | None] = asyncio.Queue(maxsize=window)
        self._checked_templates = False
        self._unwritten: set[_BatchInFlight] = set()
        self._group: asyncio.TaskGroup | None = None
        self._producer: asyncio.Task[None] | None = None
        self._senders: list[asyncio.Task[None]] = []
        self._stopping = False

    async def run(self, next_batch: NextBatch) -> None:
        """Drive the pool until the input ends (or `stop`); `next_batch` gives each batch."""
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._producer = group.create_task(self._produce(next_batch))
                self._senders = [group.create_task(self._send()) for _ in range(self._workers)]
                group.create_task(self._write())
        except BaseExceptionGroup as failures:
            raise _most_telling(failures) from None

    @property
    def running(self) -> bool:
        return self._group is not None

    def stop(self, grace: float) -> None:
        """Send nothing new; wait up to `grace` seconds for requests on the wire; write
        the batches completed by then, in order; then let `run` return."""
        if self._stopping or self._group is None or self._producer is None:
            return
        self._stopping = True
        self._dispatcher.stop()
        self._producer.cancel()
        self._group.create_task(self._drain(grace))

    async def _drain(self, grace: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._dispatcher.idle.wait(), grace)
        for sender in self._senders:
            sender.cancel()
        incomplete = [b for b in self._unwritten if not b.done.is_set()]
        for in_flight in incomplete:
            in_flight.abandon()
        if not incomplete:  # else the writer stops at the first incomplete batch by itself
            await self._order.put(None)

    async def _produce(self, next_batch: NextBatch) -> None:
        while (batch := await next_batch()) is not None:
            in_flight = _BatchInFlight(batch)
            await self._order.put(in_flight)
            self._unwritten.add(in_flight)
            for job in self._prepare(in_flight):
                await self._work.put(job)
        await self._order.put(None)
        for _ in range(self._workers):
            await self._work.put(None)

    def _prepare(self, in_flight: _BatchInFlight) -> list[Job]:
        """Render every item; settle the invalid and the already answered; send the rest."""
        jobs: list[Job] = []
        settled: list[tuple[int, Outcome]] = []
        rendered = 0
        render_failures: list[str] = []
        for index, item in enumerate(in_flight.batch.items):
            if item.problem is not None:
                settled.append((index, Failure(item, ErrorKind.INVALID_INPUT, item.problem)))
                continue
            try:
                request = self._builder.build(item)
            except InvalidItem as exc:
                render_failures.append(str(exc))
                settled.append((index, Failure(item, ErrorKind.INVALID_INPUT, str(exc))))
                continue
            rendered += 1
            known = self._answer_known(in_flight, index, item, request)
            if isinstance(known, Success):
                settled.append((index, known))
            elif known is not _JOINED:
                jobs.append((in_flight, index, item, request, known))
        # Before settling anything: a batch completed by a wrong template must not be written.
        self._check_templates(rendered, render_failures, in_flight.batch)
        for index, outcome in settled:
            in_flight.settle(index, outcome)
        return jobs

    def _answer_known(
        self, in_flight: _BatchInFlight, index: int, item: Item, request: Request
    ) -> Success | str | None:
        """The cached answer; or _JOINED to an identical request in flight; else the
        cache key the answer is to be stored under (None without a cache)."""
        if self._memo is None:
            return None
        key = self._memo.key(request)
        hit = self._memo.recall(item, request, key)
        if hit is not None:
            return hit
        if self._memo.join(key, item, partial(in_flight.settle, index)):
            return _JOINED
        return key

    def _check_templates(self, rendered: int, failures: list[str], batch: Batch) -> None:
        """If no item of the first batch renders, the template is wrong, not the data."""
        if self._checked_templates or not (rendered or failures):
            return
        self._checked_templates = True
        if failures and not rendered:
            fields = next((sorted(i.row) for i in batch.items if i.row is not None), [])
            raise ConfigError(
                f"no item of the first batch could be rendered: {failures[0]}; "
                f"the items have the fields: {', '.join(fields) or '(none)'}"
            )

    async def _send(self) -> None:
        while (job := await self._work.get()) is not None:
            in_flight, index, item, request, key = job
            try:
                outcome = await self._dispatcher.dispatch(item, request, key)
            except DispatchStopped:
                return
            in_flight.settle(index, outcome)
            if key is not None and self._memo is not None:
                self._memo.landed(key, outcome)

    async def _write(self) -> None:
        while (in_flight := await self._order.get()) is not None:
            await in_flight.done.wait()
            if in_flight.abandoned:
                return
            outcomes = [o for o in in_flight.outcomes if o is not None]
            await self._writer.write(in_flight.batch, outcomes)
            self._unwritten.discard(in_flight)
            for outcome in outcomes:
                self._stats.count(outcome)
            self._progress.update(self._stats)


def _most_telling(group: BaseExceptionGroup) -> BaseException:
    """The error to report for a failed pool: a run-ending SluiceError first, else the first."""
    leaves = list(_leaves(group))
    telling = (e for e in leaves if isinstance(e, SluiceError | KeyboardInterrupt))
    return next(telling, leaves[0])


def _leaves(group: BaseExceptionGroup) -> Iterator[BaseException]:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            yield from _leaves(error)
        else:
            yield error
