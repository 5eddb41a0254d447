"""What happens during a run, as small immutable events; and the sink they go to.

Every stage reports what it did here instead of updating shared counters: the
dispatcher its requests and answers, traffic control its pauses and readings,
the cache its hits and stores, the engine its commits and stalls. The run's
consumers (the counters behind the summary, the progress display, and later
traces and metrics) each read the same stream, and no stage knows which of them
listen (see pipeline/observe/).

Events are emitted on the event loop's thread only, one at a time, so a
consumer needs no lock. They are few per request (sent, ended, and the item
settled) and one per commit, never one per byte or per retry-loop turn.
Times (`at`) are the run clock's monotonic seconds; a consumer that needs wall
time (traces) maps them once from the run's start.

Events are NamedTuples: immutable like frozen dataclasses, but built in half the
time (~0.7 us against ~1.5 us; a run builds a few an item) and defined at import in
a third of it. Consumers tell them apart by type (as tuples, two kinds with equal
fields would compare equal). The three without fields stay dataclasses, which an
empty tuple would not tell apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from pipeline.core.models import Item, Outcome, Usage
from pipeline.core.tally import Tally


class BatchStarted(NamedTuple):
    """A batch entered the pool: its items are settled from the cache or queued to send."""

    batch: int
    items: int
    at: float  # the clock's time (monotonic seconds), as for every `at` below


class RequestSent(NamedTuple):
    """One attempt went on the wire."""

    item: Item
    batch: int
    attempt: int  # 1 for the first
    at: float
    queued: float  # seconds the item waited for a worker (first attempt; else 0)
    limiter_wait: float  # seconds traffic control held the attempt back
    body: Mapping[str, Any]  # the request body as sent (never holds the key); read-only
    step: str | None = None  # the workflow step it is for (--workflow)


class AttemptEnded(NamedTuple):
    """An attempt is over: answered (`status`, `latency`), or failed on the way (`status`
    and `latency` None). `usage` holds the tokens an answer reported: they were paid for,
    usable answer or not."""

    item: Item
    batch: int
    attempt: int
    at: float
    status: int | None
    error: str | None  # the ErrorKind when the attempt failed, else None
    usage: Usage | None
    model: str | None  # as the request named it; prices are looked up by it
    latency: float | None  # seconds from sending to the last byte of the answer
    rate_limited: bool  # HTTP 429, or an error code that says the same
    first_token: float | None = None  # seconds to a streamed answer's first text
    step: str | None = None  # the workflow step it was for (--workflow)


class ItemSettled(NamedTuple):
    """An item has its outcome: answered, reused (`outcome.cached`), or failed."""

    batch: int
    at: float
    outcome: Outcome


class AnswerReused(NamedTuple):
    """Items were answered without a request of their own, by the response cache or by
    an identical request in flight: what their answers would have cost (`usage`, the
    sum over `answers` items; a batch's cache hits are told in one event per model)."""

    model: str | None  # as the request named it; prices are looked up by it
    usage: Usage
    step: str | None = None  # the workflow step it answered (--workflow)
    answers: int = 1


class StepEnded(NamedTuple):
    """One workflow step is over for one item (--workflow): `status` as its row says
    (answered, cached, skipped, failed, not_run)."""

    step: str
    status: str


class RetryScheduled(NamedTuple):
    """An item will be tried again after `delay` seconds."""

    kind: str  # the ErrorKind of the failed attempt
    delay: float


class AttemptTimedOut:
    """An attempt got no complete answer within its timeout."""

    __slots__ = ()  # no fields: one instance serves (below)


class RateLimitPaused(NamedTuple):
    """Sending is paused (a 429); `extended_by` seconds were added to the pause."""

    extended_by: float
    new_pause: bool  # False when it lengthened a pause already running


class RetryBudgetWaited:
    """A retry waited because retries were using too large a share of the traffic."""

    __slots__ = ()  # no fields: one instance serves (below)


class TrafficReadings(NamedTuple):
    """Traffic control's settings right now, sent whenever one of them may have moved."""

    concurrency: int
    rpm: float | None  # the request limit in force, learned or given; None: none known
    tpm: float | None
    breaker_outages: int


class CacheOpened(NamedTuple):
    """The run reads and stores answers in the response cache in `directory`."""

    directory: str


class CacheLookedUp(NamedTuple):
    """The cache was asked about a batch's requests."""

    hits: int
    misses: int


class CacheJoined:
    """An item identical to a request in flight waits for that request's answer."""

    __slots__ = ()  # no fields: one instance serves (below)


class CacheStored(NamedTuple):
    """Answers written to the cache (`stored`), or refused by its disk (`failed`)."""

    stored: int
    failed: int


class JobResumed(NamedTuple):
    """Earlier attempts of the same job committed these (the state's totals)."""

    committed: Tally  # read, never changed, by consumers


class BatchesCommitted(NamedTuple):
    """Complete batches were committed; their outcomes, in input order."""

    outcomes: Sequence[Outcome]
    batches: Sequence[int] = ()  # their numbers
    at: float = 0.0
    sizes: Sequence[int] = ()  # items in each batch: `outcomes` split by batch


class Stalled(NamedTuple):
    """Nothing finished for a while, or the endpoint is failing: what the run waits for."""

    at: float  # the clock's time of the report
    seconds: float  # since an item last finished (or the run began)
    waiting_for: str
    last_error: str | None
    failing: bool  # held back by failures, or an error came since an item last finished

    def describe(self) -> str:
        return (
            f"stalled for {self.seconds:.0f}s, waiting for {self.waiting_for}; "
            f"last error: {self.last_error or 'none'}"
        )


class Heartbeat(NamedTuple):
    """Once a second while the pool runs, whatever happens: for displays that must keep
    saying how the run is doing when nothing completes, and what it waits for if so."""

    at: float
    stall: Stalled | None  # the run's stall right now (reported or not); None when moving


Event = (
    BatchStarted
    | RequestSent
    | AttemptEnded
    | ItemSettled
    | AnswerReused
    | StepEnded
    | RetryScheduled
    | AttemptTimedOut
    | RateLimitPaused
    | RetryBudgetWaited
    | TrafficReadings
    | CacheOpened
    | CacheLookedUp
    | CacheJoined
    | CacheStored
    | JobResumed
    | BatchesCommitted
    | Heartbeat
    | Stalled
)


class EventSink(Protocol):
    def emit(self, event: Event) -> None:
        """Take one event; called on the event loop's thread, must not block."""


def sink_takes(sink: EventSink, kind: type) -> bool:
    """Whether `sink` does anything with events of `kind`. A sink may name the kinds it
    takes in a `takes` attribute (a frozenset of event types; None or no attribute:
    every kind), so that an event no sink takes need not be made at all: a run with
    no trace and no server to tell makes no ItemSettled, which would be one an item."""
    kinds = getattr(sink, "takes", None)
    return kinds is None or kind in kinds


ATTEMPT_TIMED_OUT = AttemptTimedOut()
RETRY_BUDGET_WAITED = RetryBudgetWaited()
CACHE_JOINED = CacheJoined()


class Discard:
    """A sink for code run without observers (tools, tests that count nothing)."""

    takes: frozenset[type] = frozenset()

    def emit(self, event: Event) -> None:
        pass


DISCARD = Discard()
