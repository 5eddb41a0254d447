"""Counters kept during a run, and the summary and exit code made from them."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.core.models import Outcome, Success

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
        slot = self._rng.randrange(self._seen)
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
    last_error: str | None = None  # redacted; for stall reports, not the summary
    last_error_at: float | None = None  # on the run's clock

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


class Committed(Protocol):
    """What earlier attempts of a job committed (the state's totals)."""

    items: int
    succeeded: int
    cached: int
    prompt_tokens: int
    completion_tokens: int
    quarantined: Counter[str]


@dataclass(slots=True)
class RunStats:
    items: int = 0
    resumed: int = 0  # items committed by earlier runs of the same job
    succeeded: int = 0
    cached: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latencies: LatencySample = field(default_factory=LatencySample)
    traffic: TrafficStats = field(default_factory=TrafficStats)
    cache: CacheCounts | None = None  # None when the run used no cache
    earlier: Committed | None = None  # what earlier attempts of the job committed

    def count(self, outcome: Outcome) -> None:
        self.items += 1
        if isinstance(outcome, Success):
            self.succeeded += 1
            if outcome.cached:  # its tokens were paid for by an earlier request
                self.cached += 1
                return
            self.prompt_tokens += outcome.usage.prompt_tokens
            self.completion_tokens += outcome.usage.completion_tokens
        else:
            self.quarantined[str(outcome.kind)] += 1

    def resume_from(self, totals: Committed) -> None:
        """Count what earlier runs committed, so the counts describe the whole job."""
        self.earlier = totals
        self.items += totals.items
        self.resumed += totals.items
        self.succeeded += totals.succeeded
        self.cached += totals.cached
        self.prompt_tokens += totals.prompt_tokens
        self.completion_tokens += totals.completion_tokens
        self.quarantined.update(totals.quarantined)

    @property
    def failed(self) -> int:
        return sum(self.quarantined.values())


def error_rate_exceeded(stats: RunStats, max_error_rate: float) -> bool:
    if stats.items == 0:
        return False
    return stats.failed / stats.items > max_error_rate


def summary_dict(stats: RunStats, wall_seconds: float, exit_code: int) -> dict[str, Any]:
    """The job's counts (which match the output files), this attempt's traffic and cost.

    `tokens`, `requests` and `retries` count this attempt alone, so summaries of
    the attempts of one job add up; `whole_job` holds the totals across them.
    """

    def ms(fraction: float) -> float | None:
        value = stats.latencies.percentile(fraction)
        return None if value is None else round(value * 1000, 1)

    job = _job_totals(stats)
    attempt = _this_attempt(stats)
    return {
        "items": stats.items,
        "resumed": stats.resumed,
        "succeeded": stats.succeeded,
        "cached": stats.cached,
        "quarantined": stats.failed,
        "quarantined_by_kind": job["quarantined_by_kind"],
        "requests": stats.requests,
        "retries": stats.retries,
        "rate_limited_responses": stats.rate_limited,
        "tokens": attempt["tokens"],
        "wall_seconds": round(wall_seconds, 3),
        # This run's pace: items that earlier runs committed took none of its time.
        "items_per_second": round(attempt["items"] / wall_seconds, 1) if wall_seconds > 0 else None,
        "latency_ms": {"p50": ms(0.50), "p95": ms(0.95), "p99": ms(0.99)},
        "traffic": stats.traffic.as_dict(),
        "cache": None if stats.cache is None else stats.cache.as_dict(),
        "this_attempt": attempt,
        "whole_job": job,
        "exit_code": exit_code,
    }


def _job_totals(stats: RunStats) -> dict[str, Any]:
    return {
        "items": stats.items,
        "succeeded": stats.succeeded,
        "cached": stats.cached,
        "quarantined": stats.failed,
        "quarantined_by_kind": dict(sorted(stats.quarantined.items())),
        "tokens": {"prompt": stats.prompt_tokens, "completion": stats.completion_tokens},
    }


def _this_attempt(stats: RunStats) -> dict[str, Any]:
    earlier = stats.earlier
    if earlier is None:
        job = _job_totals(stats)
        return {**job, "requests": stats.requests, "retries": stats.retries}
    quarantined = stats.quarantined - earlier.quarantined
    return {
        "items": stats.items - earlier.items,
        "succeeded": stats.succeeded - earlier.succeeded,
        "cached": stats.cached - earlier.cached,
        "quarantined": sum(quarantined.values()),
        "quarantined_by_kind": dict(sorted(quarantined.items())),
        "tokens": {
            "prompt": stats.prompt_tokens - earlier.prompt_tokens,
            "completion": stats.completion_tokens - earlier.completion_tokens,
        },
        "requests": stats.requests,
        "retries": stats.retries,
    }
