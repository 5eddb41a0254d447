"""The run's counters, kept by reading its events: what the summary and progress report.

`RunStats` is one consumer of the event stream (see core/events.py). No stage
updates it directly; each handler below turns one kind of event into counts.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pipeline.core.events import (
    AnswerReused,
    AttemptEnded,
    AttemptTimedOut,
    BatchesCommitted,
    CacheJoined,
    CacheLookedUp,
    CacheOpened,
    CacheStored,
    Event,
    JobResumed,
    RateLimitPaused,
    RequestSent,
    RetryBudgetWaited,
    RetryScheduled,
    StepEnded,
    TrafficReadings,
)
from pipeline.core.tally import Tally
from pipeline.observe.step_stats import StepStats

LATENCY_SAMPLE_SIZE = 4096


class LatencySample:
    """A fixed-size uniform sample of latencies (reservoir), so memory stays flat."""

    def __init__(self, size: int = LATENCY_SAMPLE_SIZE, seed: int = 0) -> None:
        self._size = size
        self._seen = 0
        self._values: list[float] = []
        self._rng = random.Random(seed)

    def add(self, value: float) -> None:
        self._seen += 1
        if len(self._values) < self._size:
            self._values.append(value)
            return
        slot = int(self._rng.random() * self._seen)  # randrange, at a third of its cost
        if slot < self._size:
            self._values[slot] = value

    def percentile(self, fraction: float) -> float | None:
        if not self._values:
            return None
        ordered = sorted(self._values)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass(slots=True)
class CacheCounts:
    hits: int = 0
    misses: int = 0
    shared: int = 0  # identical to a request in flight, settled by its answer
    stored: int = 0
    store_failures: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "shared_in_flight": self.shared,
            "stored": self.stored,
            "store_failures": self.store_failures,
        }


@dataclass(slots=True)
class TrafficStats:
    """What traffic control did, kept up to date while the run goes."""

    concurrency: int = 0
    lowest_concurrency: int = 0
    rpm: float | None = None
    tpm: float | None = None
    timeouts: int = 0
    pauses: int = 0
    paused_seconds: float = 0.0
    budget_waits: int = 0
    breaker_outages: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "lowest_concurrency": self.lowest_concurrency,
            "rpm": _rounded(self.rpm),
            "tpm": _rounded(self.tpm),
            "timeouts": self.timeouts,
            "rate_limit_pauses": self.pauses,
            "paused_seconds": round(self.paused_seconds, 3),
            "retry_budget_waits": self.budget_waits,
            "breaker_outages": self.breaker_outages,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass(slots=True)
class RunStats(Tally):
    """The whole job's tally (earlier attempts included), and this attempt's traffic."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    requests_by_outcome: Counter[str] = field(default_factory=Counter)  # "ok" or error kind
    latencies: LatencySample = field(default_factory=LatencySample)  # the request itself
    first_tokens: LatencySample = field(default_factory=LatencySample)  # streamed answers
    queue_waits: LatencySample = field(default_factory=LatencySample)  # for a worker
    limiter_waits: LatencySample = field(default_factory=LatencySample)  # for traffic control
    traffic: TrafficStats = field(default_factory=TrafficStats)
    cache: CacheCounts | None = None  # None when the run used no cache
    earlier: Tally | None = None  # what earlier attempts of the job committed
    # --workflow: each step's share of this attempt (empty outside workflows)
    steps: StepStats = field(default_factory=lambda: StepStats(LatencySample))

    takes: ClassVar[frozenset[type]]  # the kinds _HANDLERS handles, set below it

    def emit(self, event: Event) -> None:
        handle = _HANDLERS.get(type(event))
        if handle is not None:
            handle(self, event)

    @property
    def resumed(self) -> int:
        """Items committed by earlier attempts of the same job."""
        return 0 if self.earlier is None else self.earlier.items

    @property
    def this_attempt(self) -> Tally:
        return self if self.earlier is None else self.minus(self.earlier)


def _committed(stats: RunStats, event: BatchesCommitted) -> None:
    for outcome in event.outcomes:
        stats.count(outcome)


def _sent(stats: RunStats, event: RequestSent) -> None:
    stats.requests += 1
    if event.attempt == 1:
        stats.queue_waits.add(event.queued)
    stats.limiter_waits.add(event.limiter_wait)
    stats.steps.sent(event)


def _attempt_ended(stats: RunStats, event: AttemptEnded) -> None:
    stats.requests_by_outcome[event.error or "ok"] += 1
    if event.latency is not None:  # an answer came (any status)
        stats.latencies.add(event.latency)
    if event.first_token is not None:
        stats.first_tokens.add(event.first_token)
    if event.rate_limited:
        stats.rate_limited += 1
    stats.steps.attempt_ended(event)


def _reused(stats: RunStats, event: AnswerReused) -> None:
    stats.steps.reused(event)


def _step_ended(stats: RunStats, event: StepEnded) -> None:
    stats.steps.ended(event)


def _retry(stats: RunStats, event: RetryScheduled) -> None:
    stats.retries += 1


def _timed_out(stats: RunStats, event: AttemptTimedOut) -> None:
    stats.traffic.timeouts += 1


def _paused(stats: RunStats, event: RateLimitPaused) -> None:
    stats.traffic.paused_seconds += event.extended_by
    if event.new_pause:
        stats.traffic.pauses += 1


def _budget_wait(stats: RunStats, event: RetryBudgetWaited) -> None:
    stats.traffic.budget_waits += 1


def _readings(stats: RunStats, event: TrafficReadings) -> None:
    traffic = stats.traffic
    traffic.concurrency = event.concurrency
    traffic.lowest_concurrency = min(
        traffic.lowest_concurrency or event.concurrency, event.concurrency
    )
    traffic.rpm, traffic.tpm = event.rpm, event.tpm
    traffic.breaker_outages = event.breaker_outages


def _cache_opened(stats: RunStats, event: CacheOpened) -> None:
    stats.cache = CacheCounts()


def _looked_up(stats: RunStats, event: CacheLookedUp) -> None:
    if stats.cache is not None:
        stats.cache.hits += event.hits
        stats.cache.misses += event.misses


def _joined(stats: RunStats, event: CacheJoined) -> None:
    if stats.cache is not None:
        stats.cache.shared += 1


def _stored(stats: RunStats, event: CacheStored) -> None:
    if stats.cache is not None:
        stats.cache.stored += event.stored
        stats.cache.store_failures += event.failed


def _resumed(stats: RunStats, event: JobResumed) -> None:
    stats.earlier = event.committed
    stats.add(event.committed)


_HANDLERS: dict[type, Callable[[RunStats, Any], None]] = {
    BatchesCommitted: _committed,
    RequestSent: _sent,
    AttemptEnded: _attempt_ended,
    AnswerReused: _reused,
    StepEnded: _step_ended,
    RetryScheduled: _retry,
    AttemptTimedOut: _timed_out,
    RateLimitPaused: _paused,
    RetryBudgetWaited: _budget_wait,
    TrafficReadings: _readings,
    CacheOpened: _cache_opened,
    CacheLookedUp: _looked_up,
    CacheJoined: _joined,
    CacheStored: _stored,
    JobResumed: _resumed,
}
RunStats.takes = frozenset(_HANDLERS)
