"""Per-minute limits as token buckets, and the rate-limit headers OpenAI sends.

Pure: the caller passes `now` (any monotonic clock, in seconds) to every method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_BURST_SECONDS = 10.0
# Refills are sums of float products; without slack a bucket refilled to exactly
# the cost could read 0.9999999999 and wrongly refuse.
_SLACK = 1e-9


class TokenBucket:
    """A per-minute allowance that refills continuously and holds a few seconds' worth.

    A cost larger than the whole bucket waits for a full bucket and then drives the
    level below zero, so huge requests are admitted eventually and the long-run
    rate still holds.
    """

    __slots__ = ("_level", "_updated", "capacity", "per_minute", "rate_per_second")

    def __init__(
        self, per_minute: int, burst_seconds: float = DEFAULT_BURST_SECONDS, now: float = 0.0
    ) -> None:
        if per_minute <= 0:
            raise ValueError(f"a per-minute limit must be positive, got {per_minute}")
        if burst_seconds <= 0:
            raise ValueError(f"burst_seconds must be positive, got {burst_seconds}")
        self.per_minute = per_minute
        self.rate_per_second = per_minute / 60.0
        self.capacity = burst_seconds * self.rate_per_second
        self._level = self.capacity
        self._updated = now

    def try_take(self, cost: float, now: float) -> bool:
        """Take `cost` if the bucket can admit it now; say whether it did."""
        if self.seconds_until_available(cost, now) > 0.0:
            return False
        self._level -= cost
        return True

    def remaining(self, now: float) -> float:
        """The current level; negative while a huge request is being paid off."""
        self._refill(now)
        return self._level

    def seconds_until_available(self, cost: float, now: float) -> float:
        if cost < 0:
            raise ValueError(f"a cost cannot be negative, got {cost}")
        self._refill(now)
        deficit = min(cost, self.capacity) - self._level
        return deficit / self.rate_per_second if deficit > _SLACK else 0.0

    def seconds_until_full(self, now: float) -> float:
        self._refill(now)
        deficit = self.capacity - self._level
        return deficit / self.rate_per_second if deficit > _SLACK else 0.0

    def _refill(self, now: float) -> None:
        # A clock that steps backwards must not drain the bucket.
        elapsed = now - self._updated
        if elapsed > 0.0:
            self._level = min(self.capacity, self._level + elapsed * self.rate_per_second)
            self._updated = now


def format_reset(seconds: float) -> str:
    """Format a wait the way OpenAI's `x-ratelimit-reset-*` headers do: `250ms`, `1m30.5s`.

    Rounded up to the millisecond, so a client that waits this long is never early.
    """
    # Round away float noise first: 0.1 + 0.2 seconds must not become 301ms.
    millis = math.ceil(round(seconds * 1000.0, 6))
    if millis <= 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, fraction = divmod(rest, 1000)
    secs = f"{whole}.{fraction:03d}".rstrip("0") if fraction else str(whole)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def retry_after_headers(wait: float) -> dict[str, str]:
    """A 429's `retry-after` (whole seconds, rounded up) and `retry-after-ms`."""
    return {"retry-after": str(math.ceil(wait)), "retry-after-ms": str(math.ceil(wait * 1000.0))}


def rate_limit_headers(kind: str, bucket: TokenBucket, now: float) -> dict[str, str]:
    """The three `x-ratelimit-*-{kind}` headers for `requests` or `tokens`."""
    return {
        f"x-ratelimit-limit-{kind}": str(bucket.per_minute),
        f"x-ratelimit-remaining-{kind}": str(max(0, int(bucket.remaining(now)))),
        f"x-ratelimit-reset-{kind}": format_reset(bucket.seconds_until_full(now)),
    }


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was not admitted, with what OpenAI's 429 reports about it."""

    kind: str
    """`requests` or `tokens`: the limit that binds."""
    wait: float
    limit: int
    used: int
    requested: int


class RateLimits:
    """An account's requests and tokens limits; a request takes from both or neither."""

    __slots__ = ("_buckets",)

    def __init__(
        self,
        rpm: int | None,
        tpm: int | None,
        burst_seconds: float = DEFAULT_BURST_SECONDS,
        now: float = 0.0,
    ) -> None:
        self._buckets = {
            kind: TokenBucket(limit, burst_seconds, now)
            for kind, limit in (("requests", rpm), ("tokens", tpm))
            if limit is not None
        }

    def __bool__(self) -> bool:
        return bool(self._buckets)

    def admit(self, tokens: int, now: float) -> Refusal | None:
        """Take one request and `tokens`, or refuse naming the limit with the longest wait."""
        costs = {"requests": 1, "tokens": tokens}
        refusal: Refusal | None = None
        for kind, bucket in self._buckets.items():
            wait = bucket.seconds_until_available(costs[kind], now)
            if wait > 0.0 and (refusal is None or wait > refusal.wait):
                used = max(0, round(bucket.capacity - bucket.remaining(now)))
                refusal = Refusal(kind, wait, bucket.per_minute, used, costs[kind])
        if refusal is None:
            for kind, bucket in self._buckets.items():
                bucket.try_take(costs[kind], now)
        return refusal

    def headers(self, now: float) -> dict[str, str]:
        headers: dict[str, str] = {}
        for kind, bucket in self._buckets.items():
            headers.update(rate_limit_headers(kind, bucket, now))
        return headers
