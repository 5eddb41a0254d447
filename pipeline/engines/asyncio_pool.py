"""The worker pool: batches in, outcomes written in input order, memory bounded.

    producer ──(item, request)──► work queue ──► N workers (dispatch) ──┐
        └──────── batch ────────► order queue (window) ──► writer ◄─────┘

Batches arrive with their requests rendered and stored answers found (in the
reader thread, or on the loop while nothing is in flight: `idle`, see
read/reader_thread.py); the producer settles invalid and already
answered items at once, and workers only send. The writer (in_order.py) takes
batches in input order and waits for each to finish, so output order equals input
order while later batches are already in flight. Both queues are bounded, so at most
`window` batches are ever held in memory.

`stop()` is the graceful way out: nothing new is sent, requests already on the
wire get a grace period to answer, the batches they complete are still written
(in order, up to the first incomplete one), and `run` returns.

Beside the pool, a watch on the dispatcher's clock reports stalls (see stalls.py).
What the pool does is told to the run's event sink (core/events.py): commits and stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING

from pipeline.cache.memo import ResponseMemo, served
from pipeline.core.config import Endpoint
from pipeline.core.errors import BudgetReached, ConfigError, ErrorKind, SluiceError
from pipeline.core.events import (
    AnswerReused,
    BatchStarted,
    EventSink,
    Heartbeat,
    ItemSettled,
    sink_takes,
)
from pipeline.core.models import Batch, Failure, Item, Outcome, Success, Usage
from pipeline.dispatch.dispatcher import Dispatcher, DispatchStopped
from pipeline.dispatch.packs import PackSender
from pipeline.engines.in_order import BatchInFlight, InOrderCommits, Written
from pipeline.engines.protocol import NextBatch, OutcomeWriter, committed
from pipeline.engines.stalls import CHECK_EVERY, StallWatch
from pipeline.prepare.packing import Packer, PackLimits
from pipeline.prepare.preparer import PreparedBatch, Skipped, Staged
from pipeline.prepare.request_builder import ITEM_REQUESTS, Request, Unbuilt, as_sent
from pipeline.protocol.token_count import prompt_tokens

if TYPE_CHECKING:
    from pipeline.workflow.runner import WorkflowRunner

# An item to send: its batch, its place in it, the item, its request (Staged: its
# workflow's) and cache key, and when it was queued (the clock's time). Packed
# embeddings go as a list of them.
ToSend = tuple[BatchInFlight, int, Item, Request | Staged, str | None, float]
Job = ToSend | list[ToSend]
# How long a begun pack waits for the next batch before it is sent as it is.
PACK_WAIT = 0.02
NOTHING_USED = Usage()


class AsyncioEngine:
    """The asyncio worker pool: today's one engine (see engines/protocol.py)."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        writer: OutcomeWriter,
        events: EventSink,
        concurrency: int,
        window: int,
        memo: ResponseMemo | None = None,
        landing_grace: float = 0.0,
        packing: PackLimits | None = None,
        workflow: WorkflowRunner | None = None,
    ) -> None:
        self._memo = memo
        self._workflow = workflow  # --workflow: each item's steps, run by this
        # Embeddings inputs travel in shared requests (--inputs-per-request).
        self._packer: Packer[ToSend] | None = Packer(packing) if packing else None
        self._packs = PackSender(dispatcher, memo)
        self._clock = dispatcher.clock
        self._landing_grace = landing_grace  # how long a budget stop waits for answers
        self._dispatcher = dispatcher
        self._events = events
        # More workers than slots: items sleeping out a retry backoff hold a worker
        # but no slot, and must not leave the slots idle meanwhile. Not many more:
        # each extra worker queues for a slot on every request when all is well.
        self._workers = concurrency + max(4, concurrency // 4)
        self._work: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=concurrency * 2)
        self._order = InOrderCommits(writer, window, self._committed)
        self._checked_templates = False
        self._unwritten: set[BatchInFlight] = set()
        self._group: asyncio.TaskGroup | None = None
        self._producer: asyncio.Task[None] | None = None
        self._senders: list[asyncio.Task[None]] = []
        self._stopping = False
        self._fatal: SluiceError | None = None
        self._finished = 0  # items whose outcome is known, written or not
        self._tell_settled = True  # whether any sink takes ItemSettled (known at `run`)
        self._begun = 0  # items of the batches taken from the input

    async def run(self, next_batch: NextBatch) -> None:
        """Drive the pool until the input ends (or `stop`); `next_batch` gives each batch."""
        self._tell_settled = sink_takes(self._events, ItemSettled)
        watch = asyncio.create_task(self._watch_for_stalls())
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._producer = group.create_task(self._produce(next_batch))
                self._senders = [group.create_task(self._send()) for _ in range(self._workers)]
                group.create_task(self._order.run())
        except BaseExceptionGroup as failures:
            raise _most_telling(failures) from None
        finally:
            watch.cancel()
        if self._fatal is not None:
            raise self._fatal

    async def _watch_for_stalls(self) -> None:
        clock = self._dispatcher.clock
        watch = StallWatch(clock.now())
        while True:
            await clock.sleep(CHECK_EVERY)
            holdup, now = self._dispatcher.holdup(), clock.now()
            due = watch.check(now, self._finished, holdup, holdup.last_error, holdup.last_error_at)
            self._events.emit(Heartbeat(now, watch.current))
            if due is not None:
                self._events.emit(due)

    def end_run(self, error: SluiceError, grace: float = 0) -> None:
        """A run-ending error (401, quota, bad settings, a budget spent): stop sending,
        wait `grace` seconds for requests on the wire, still write the batches complete
        by then, so a re-run need not redo them; then `run` raises `error`."""
        self._fatal = self._fatal or error
        self.stop(grace)

    def idle(self) -> bool:
        """Every item taken from the input has its outcome: nothing is on its way."""
        return self._finished == self._begun

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
        incomplete = [b for b in self._unwritten if not b.done.done()]
        for in_flight in incomplete:
            in_flight.abandon()
        if not incomplete:  # else the writer stops at the first incomplete batch by itself
            await self._order.put(None)

    async def _produce(self, next_batch: NextBatch) -> None:
        try:
            await self._produce_all(next_batch)
        except SluiceError as error:
            self.end_run(error)

    async def _produce_all(self, next_batch: NextBatch) -> None:
        while (prepared := await self._next(next_batch)) is not None:
            in_flight = BatchInFlight(prepared.batch)
            batch = prepared.batch
            self._begun += len(batch.items)
            self._events.emit(BatchStarted(batch.index, len(batch.items), self._clock.now()))
            if self._order.full():  # the writer may be waiting for the begun pack's items
                await self._send_begun_pack()
            await self._order.put(in_flight)
            self._unwritten.add(in_flight)
            jobs = self._prepare(in_flight, prepared)
            if self._packer is None:
                for job in jobs:
                    await self._work.put(job)
            else:
                await self._pack(jobs)
        await self._send_begun_pack()
        await self._order.put(None)
        for _ in range(self._workers):
            await self._work.put(None)

    async def _next(self, next_batch: NextBatch) -> PreparedBatch | None:
        """The next batch; a begun pack is sent as it is if that batch is slow to come."""
        if self._packer is None or not len(self._packer):
            return await next_batch()
        coming = asyncio.ensure_future(next_batch())
        try:
            done, _ = await asyncio.wait({coming}, timeout=PACK_WAIT)
            if not done:
                await self._send_begun_pack()
            return await coming
        finally:
            coming.cancel()  # a no-op once it is done; the producer stopping must not leak it

    async def _pack(self, jobs: list[ToSend]) -> None:
        """Queue embeddings inputs in packs, as they fill (anything else goes alone)."""
        assert self._packer is not None
        for job in jobs:
            request = job[3]
            if isinstance(request, Staged) or request.endpoint is not Endpoint.EMBEDDINGS:
                await self._work.put(job)
                continue
            for pack in self._packer.add(job, prompt_tokens(request.body)):
                await self._work.put(pack)

    async def _send_begun_pack(self) -> None:
        if self._packer is not None and len(self._packer):
            await self._work.put(self._packer.flush())

    def _prepare(self, in_flight: BatchInFlight, prepared: PreparedBatch) -> list[ToSend]:
        """Settle the invalid and the already answered items; the rest are to be sent."""
        settled: list[tuple[int, Outcome]] = []
        rendered: list[tuple[int, Item, Request | Unbuilt, str | None]] = []
        staged: list[ToSend] = []
        render_failures: list[str] = []
        now = self._clock.now()
        for index, item in enumerate(in_flight.batch.items):
            request = prepared.requests[index]
            if isinstance(request, ITEM_REQUESTS):
                rendered.append((index, item, request, prepared.keys[index]))
                continue
            if isinstance(request, Staged):
                staged.append((in_flight, index, item, request, None, now))
                continue
            if isinstance(request, Skipped):
                settled.append((index, Success(item, None, NOTHING_USED, attempts=0, skipped=True)))
                continue
            if request is not None:
                render_failures.append(request)
            why = item.problem if request is None else request
            settled.append((index, Failure(item, ErrorKind.INVALID_INPUT, why or "invalid item")))
        # Before settling anything: a batch completed by a wrong template must not be written.
        self._check_templates(len(rendered) + len(staged), render_failures, in_flight.batch)
        jobs = staged + self._to_send(in_flight, rendered, prepared.stored, settled)
        self._settle_all(in_flight, settled)
        return jobs

    def _settle(self, in_flight: BatchInFlight, index: int, outcome: Outcome) -> None:
        self._settle_all(in_flight, ((index, outcome),))

    def _settle_all(self, in_flight: BatchInFlight, settled: Sequence[tuple[int, Outcome]]) -> None:
        """Outcomes for items of one batch, known at the same moment (one a request that
        landed; a batch's invalid, skipped and cached items at once)."""
        in_flight.settle(settled)
        self._finished += len(settled)
        if self._tell_settled:
            now, batch = self._clock.now(), in_flight.batch.index
            for _, outcome in settled:
                self._events.emit(ItemSettled(batch, now, outcome))

    def _to_send(
        self,
        in_flight: BatchInFlight,
        rendered: list[tuple[int, Item, Request | Unbuilt, str | None]],
        stored: dict[str, bytes],
        settled: list[tuple[int, Outcome]],
    ) -> list[ToSend]:
        """What the cache cannot answer and no identical request in flight will."""
        memo = self._memo
        now = self._clock.now()
        if memo is None:
            return [
                (in_flight, index, item, as_sent(request), None, now)
                for index, item, request, _ in rendered
            ]
        known = memo.recall([(request, key) for _, _, request, key in rendered if key], stored)
        jobs: list[ToSend] = []
        reused: dict[str | None, list[Usage]] = {}  # by model: one event each per batch
        for index, item, request, key in rendered:
            if key is None:
                jobs.append((in_flight, index, item, as_sent(request), None, now))
            elif key in known:
                model = request.model
                answer = served(item, known[key], model)
                settled.append((index, answer))
                reused.setdefault(model, []).append(answer.usage)
            elif not memo.join(key, item, partial(self._settle, in_flight, index)):
                # built now if a stored answer was found but cannot be reused
                jobs.append((in_flight, index, item, as_sent(request), key, now))
        for model, usages in reused.items():
            self._events.emit(AnswerReused(model, Usage.total(usages), answers=len(usages)))
        return jobs

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
            pack: list[ToSend] | None = job if isinstance(job, list) else None
            first: ToSend = job[0] if isinstance(job, list) else job
            in_flight, index, item, request, key, queued_at = first
            batch, queued = in_flight.batch.index, self._clock.now() - queued_at
            try:
                if isinstance(request, Staged):
                    assert self._workflow is not None
                    outcome = await self._workflow.run(item, request, batch, queued)
                elif pack is None:
                    outcome = await self._dispatcher.dispatch(item, request, key, batch, queued)
                else:
                    # Packs hold requests only (_pack): a Staged item never joins one.
                    entries = [(i, r, k) for _, _, i, r, k, _ in pack if isinstance(r, Request)]
                    outcomes = await self._packs.send(entries, batch, queued)
            except DispatchStopped:
                return
            except BudgetReached as reached:
                # Paid-for answers still on the wire are let in and committed.
                self.end_run(reached, grace=self._landing_grace)
                return
            except SluiceError as error:
                self.end_run(error)
                return
            if pack is None:
                self._settle(in_flight, index, outcome)
                self._settle_twins(key, request, outcome)
                continue
            for (sent_in, place, _, sent, its_key, _), answer in zip(pack, outcomes, strict=True):
                self._settle(sent_in, place, answer)
                self._settle_twins(its_key, sent, answer)

    def _settle_twins(self, key: str | None, request: Request | Staged, outcome: Outcome) -> None:
        """Items identical to one just answered, that waited for it, get its outcome."""
        if key is None or self._memo is None or isinstance(request, Staged):
            return
        twins = self._memo.landed(key, outcome)
        if twins and isinstance(outcome, Success):
            usage = Usage.total([outcome.usage] * twins)
            self._events.emit(AnswerReused(request.model, usage, answers=twins))

    def _committed(self, group: list[BatchInFlight], written: Written) -> None:
        for in_flight in group:
            self._unwritten.discard(in_flight)
        self._events.emit(committed(written, self._clock.now()))


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
