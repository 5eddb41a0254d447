"""The pool's writer side: batches committed in input order, in groups.

The producer puts each batch here as it starts (`put`), in input order, at most
`window` of them waiting; `run` takes them in that order, waits for each to be
complete, and hands complete batches to the `OutcomeWriter`. Commits come at most
every GATHER_SECONDS: until then the batches completing behind the first join the
same commit (one part file, one round of fsyncs). A run the cache answers completes
a batch every few milliseconds, and a part for each spent a fifth of its time on
files; a batch completing after a quiet spell is committed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from pipeline.core.models import Batch, Outcome
from pipeline.engines.protocol import WRITE_GROUP, OutcomeWriter

# The shortest time between two commits, during which completed batches gather.
GATHER_SECONDS = 0.05

Written = list[tuple[Batch, list[Outcome]]]  # complete batches and their outcomes, in order


class BatchInFlight:
    __slots__ = ("abandoned", "batch", "done", "outcomes", "pending")

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.outcomes: list[Outcome | None] = [None] * len(batch.items)
        self.pending = len(batch.items)
        # A future rather than an Event: the writer waits for it with a timeout
        # (asyncio.wait), which an Event would need a task for, once a batch.
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.abandoned = False
        if self.pending == 0:
            self.done.set_result(None)

    def abandon(self) -> None:
        """The run stopped before this batch completed: it must not be written."""
        self.abandoned = True
        if not self.done.done():
            self.done.set_result(None)

    def settle(self, settled: Iterable[tuple[int, Outcome]]) -> None:
        """Outcomes by the index of their item in the batch."""
        outcomes = self.outcomes
        for index, outcome in settled:
            outcomes[index] = outcome
            self.pending -= 1
        if self.pending == 0 and not self.done.done():  # an answer may land after a stop
            self.done.set_result(None)


class InOrderCommits:
    def __init__(
        self,
        writer: OutcomeWriter,
        window: int,
        committed: Callable[[list[BatchInFlight], Written], None],
    ) -> None:
        self._writer = writer
        self._committed = committed  # told after each commit, with what it wrote
        self._queue: asyncio.Queue[BatchInFlight | None] = asyncio.Queue(maxsize=window)
        self._last_commit = float("-inf")  # when the last commit ended, on the loop's clock

    def full(self) -> bool:
        return self._queue.full()

    async def put(self, in_flight: BatchInFlight | None) -> None:
        """The next batch in input order; None once there are no more."""
        await self._queue.put(in_flight)

    async def run(self) -> None:
        """Commit complete batches in order until the end, or the first abandoned one."""
        carried: list[BatchInFlight | None] = []  # taken from the queue, not yet writable
        while True:
            first = carried.pop() if carried else await self._queue.get()
            if first is None:
                return
            await asyncio.wait([first.done])  # never cancels the future itself
            if first.abandoned:
                return
            group = [first]
            deadline = self._last_commit + GATHER_SECONDS
            while len(group) < WRITE_GROUP and (
                follower := await self._complete(carried, deadline)
            ):
                group.append(follower)
            await self._commit(group)

    async def _complete(
        self, carried: list[BatchInFlight | None], deadline: float
    ) -> BatchInFlight | None:
        """The next batch in order, once complete, if that is before `deadline`; else
        None, and whatever was taken from the queue waits in `carried`."""
        loop = asyncio.get_running_loop()
        if not carried:
            try:
                carried.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                if deadline <= loop.time():
                    return None
                with contextlib.suppress(TimeoutError):
                    # Cancelling a get leaves the queue as it was: no batch is lost.
                    got = await asyncio.wait_for(self._queue.get(), deadline - loop.time())
                    carried.append(got)
                if not carried:
                    return None
        follower = carried[-1]
        if follower is None:
            return None
        if not follower.done.done() and deadline > loop.time():
            await asyncio.wait([follower.done], timeout=deadline - loop.time())
        if not follower.done.done() or follower.abandoned:
            return None
        return carried.pop()

    async def _commit(self, group: list[BatchInFlight]) -> None:
        written = [(b.batch, [o for o in b.outcomes if o is not None]) for b in group]
        await self._writer.write(written)
        self._last_commit = asyncio.get_running_loop().time()
        self._committed(group, written)
