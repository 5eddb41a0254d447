"""Requests and tokens per minute, configured or learned from the server (pure).

Configured limits (`--rpm`, `--tpm`) give the rate; unconfigured ones are
learned from the `x-ratelimit-limit-*` headers. How big a burst the server
allows is learned from its `x-ratelimit-remaining-*` counts (the most it has
ever shown us); until then a configured bucket assumes `DEFAULT_BURST_SECONDS`
worth, as a per-minute bucket refilled continuously allows. The server's
remaining count can only lower our level, never raise it, and a 429 pauses
everyone at once until the server's reset.

A remaining count is what was left just after the server admitted the answered
request: a provider's limiter counts at admission, and a streamed answer's
headers leave before its first token. By the time the answer is read, the
server has counted the requests sent after it, and has refilled for as long as
the request was out. Both are taken into account before comparing, the refill
only while nobody else seems to draw on the same limit: once a count shows
less than ours could explain, another client (or process) takes its share of
every refill, and counts are compared as they stand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from pipeline.protocol.headers import LIMIT_KINDS, LimitReading
from pipeline.traffic.buckets import TokenBucket

DEFAULT_BURST_SECONDS = 10.0
# How late a busy server may count a request after we sent it. While its bucket
# sits full, such requests earn it nothing, so our copy keeps this much below
# its burst or it would run ahead of the server's.
LAG_ALLOWANCE_SECONDS = 0.05


def usable_burst(burst: float, rate: float) -> float:
    return max(1.0, burst - 1 - rate * LAG_ALLOWANCE_SECONDS)


def refilled_since_admitted(rate: float, age: float) -> float:
    """What a server refilled since it admitted a request sent `age` seconds ago. It
    admitted it no sooner than it was sent; the lag allowance covers the way there."""
    return rate * max(0.0, age - LAG_ALLOWANCE_SECONDS)


class Limits(NamedTuple):
    """Per-minute limits the user configured; None means learn it from the server."""

    rpm: float | None = None
    tpm: float | None = None

    def of(self, kind: str) -> float | None:
        return self.rpm if kind == "requests" else self.tpm


class RateLimiter:
    def __init__(
        self, configured: Limits, now: float, burst_seconds: float = DEFAULT_BURST_SECONDS
    ) -> None:
        self._configured = configured
        self._buckets: dict[str, TokenBucket] = {}
        for kind in LIMIT_KINDS:
            per_minute = configured.of(kind)
            if per_minute is not None:
                rate = per_minute / 60
                burst = usable_burst(rate * burst_seconds, rate)
                self._buckets[kind] = TokenBucket(rate, burst, now)
        self._paused_until = now
        self._heard_from_server = False
        self._most_remaining: dict[str, float] = {}
        self._burst_shrunk: set[str] = set()
        self._shared_with_others: set[str] = set()

    @property
    def awaiting_first_answer(self) -> bool:
        """True until the server's first answer has had its chance to tell us its limits
        (until then one request goes alone). Never when limits were given (--rpm,
        --tpm): the burst they allow goes at once, and the first answers correct it."""
        given = self._configured.rpm is not None or self._configured.tpm is not None
        return not (self._heard_from_server or given)

    @property
    def counts_tokens(self) -> bool:
        return "tokens" in self._buckets

    def per_minute(self, kind: str) -> float | None:
        bucket = self._buckets.get(kind)
        return None if bucket is None else bucket.rate * 60

    def reserve(self, tokens: float, now: float) -> float:
        """Take one request and `tokens`; seconds to wait before sending."""
        wait = self.paused_for(now)
        for kind, cost in (("requests", 1.0), ("tokens", tokens)):
            bucket = self._buckets.get(kind)
            if bucket is not None:
                wait = max(wait, bucket.reserve(cost, now))
        return wait

    def paused_for(self, now: float) -> float:
        return max(0.0, self._paused_until - now)

    def settle_tokens(self, reserved: float, used: float, now: float) -> None:
        """Refund what a request did not use, or charge what it used beyond the estimate."""
        bucket = self._buckets.get("tokens")
        if bucket is not None:
            bucket.adjust(reserved - used, now)

    def observe(
        self,
        readings: Mapping[str, LimitReading],
        now: float,
        unseen: Mapping[str, float] | None = None,
        age: float = 0.0,
    ) -> None:
        """Learn from an answer's `x-ratelimit-*` headers (any answer, even an error).
        `unseen`: what the attempts sent after the answered one reserved, by kind; the
        server had not counted them when it reported what remains, so they come off its
        count. `age`: seconds since the answered attempt was sent; what the server
        refilled meanwhile comes back on."""
        self._heard_from_server = True
        for kind, reading in readings.items():
            pending = max(0.0, (unseen or {}).get(kind, 0.0))
            if reading.per_minute is not None:
                self._set_rate(kind, reading, pending, age, now)
            bucket = self._buckets.get(kind)
            if bucket is not None and reading.remaining is not None:
                self._learn_burst(kind, bucket, reading.remaining, now)
                self._lower_to_count(kind, bucket, reading.remaining - pending, age, now)

    def pause(self, seconds: float, kinds: Iterable[str], now: float) -> None:
        """A 429: nobody sends until the server's reset, and the limits it names are empty."""
        self._paused_until = max(self._paused_until, now + seconds)
        for kind in kinds:
            bucket = self._buckets.get(kind)
            if bucket is None:
                continue
            if bucket.sent_level(now) >= 1:
                # We thought there was room: the server allows smaller bursts than its
                # counts suggest (some enforce per second). Halve, and stop trusting them.
                capacity = max(bucket.rate, bucket.capacity / 2)
                self._burst_shrunk.add(kind)
                bucket.retune(bucket.rate, capacity, now)
            bucket.lower_to(0.0, now)

    def state(self) -> dict[str, Any]:
        """What it has learned and reserved, as plain values (shared_limits.py keeps it in
        a file for every process on the host)."""
        return {
            "buckets": {kind: bucket.state() for kind, bucket in self._buckets.items()},
            "paused_until": self._paused_until,
            "heard": self._heard_from_server,
            "most_remaining": self._most_remaining,
            "burst_shrunk": sorted(self._burst_shrunk),
            "shared_with_others": sorted(self._shared_with_others),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self._buckets = {kind: TokenBucket.restored(b) for kind, b in state["buckets"].items()}
        self._paused_until = float(state["paused_until"])
        self._heard_from_server = bool(state["heard"])
        self._most_remaining = {kind: float(v) for kind, v in state["most_remaining"].items()}
        self._burst_shrunk = set(state["burst_shrunk"])
        # Absent from the state an earlier version kept.
        self._shared_with_others = set(state.get("shared_with_others", ()))

    def _lower_to_count(
        self, kind: str, bucket: TokenBucket, counted: float, age: float, now: float
    ) -> None:
        """`counted`: the server's count less what was sent after it. Our own count can
        be a request above it (the count is rounded down), and a little more for the
        lag allowance the refill leaves out; anything beyond is someone else's."""
        if kind in self._shared_with_others:
            bucket.lower_to(counted, now)
            return
        expected = counted + refilled_since_admitted(bucket.rate, age)
        if bucket.sent_level(now) - expected > 1 + bucket.rate * LAG_ALLOWANCE_SECONDS:
            self._shared_with_others.add(kind)
        bucket.lower_to(expected, now)

    def _learn_burst(self, kind: str, bucket: TokenBucket, remaining: float, now: float) -> None:
        """The bucket holds the most the server has ever shown us as remaining."""
        if kind in self._burst_shrunk:
            return
        most = max(self._most_remaining.get(kind, 0.0), remaining)
        self._most_remaining[kind] = most
        capacity = usable_burst(most, bucket.rate)
        if capacity != bucket.capacity:
            bucket.retune(bucket.rate, capacity, now)

    def _set_rate(
        self, kind: str, reading: LimitReading, unseen: float, age: float, now: float
    ) -> None:
        assert reading.per_minute is not None
        configured = self._configured.of(kind)
        # A configured limit above the account's real one would only earn 429s.
        per_minute = min(reading.per_minute, configured or reading.per_minute)
        rate = per_minute / 60
        bucket = self._buckets.get(kind)
        if bucket is None:
            remaining = reading.remaining if reading.remaining is not None else rate
            burst = usable_burst(remaining, rate)
            level = remaining - unseen + refilled_since_admitted(rate, age)
            self._buckets[kind] = TokenBucket(rate, burst, now, level=level)
        elif rate != bucket.rate:
            bucket.retune(rate, bucket.capacity, now)
