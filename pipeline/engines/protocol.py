"""What an engine is, to the run that drives it; and what it drives into.

An engine takes prepared batches one at a time (`next_batch`), gets every item an
outcome, and hands complete batches, in input order, to an `OutcomeWriter`. It
can be asked to stop: nothing new is sent, requests in flight may land for a
grace period, and complete batches are still written. The asyncio worker pool
is one engine; a provider Batch-API engine or a Ray engine would be others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from pipeline.core.errors import SluiceError
from pipeline.core.events import BatchesCommitted
from pipeline.core.models import Batch, Outcome
from pipeline.prepare.preparer import PreparedBatch

NextBatch = Callable[[], Awaitable[PreparedBatch | None]]  # None once the input ends
WRITE_GROUP = 64  # at most this many complete batches share one commit (one round of fsyncs)


class OutcomeWriter(Protocol):
    async def write(self, batches: list[tuple[Batch, list[Outcome]]]) -> None:
        """Write (commit) complete batches, given in input order."""


class Engine(Protocol):
    async def run(self, next_batch: NextBatch) -> None:
        """Until the input ends or `stop` is called; raises a run-ending SluiceError."""

    @property
    def running(self) -> bool: ...

    def idle(self) -> bool:
        """Nothing is waiting on an answer: the next batch may be read on the loop's own
        thread without holding anything up (reader_thread.py). False when unsure."""

    def stop(self, grace: float) -> None:
        """Send nothing new; let requests in flight land for `grace` seconds; write what is
        complete; then let `run` return."""

    def end_run(self, error: SluiceError, grace: float = 0) -> None:
        """As `stop`, and then `run` raises `error` (a budget spent, a fatal answer)."""


def committed(written: list[tuple[Batch, list[Outcome]]], at: float) -> BatchesCommitted:
    """What an engine tells once `written` (complete batches, in input order) is committed."""
    outcomes = [outcome for _, batch_outcomes in written for outcome in batch_outcomes]
    numbers = [batch.index for batch, _ in written]
    return BatchesCommitted(outcomes, numbers, at, [len(found) for _, found in written])
