"""When to try a request again, and how long to wait first (pure: no clock, no sleep).

    kind             retried?                               wait
    rate_limited     yes, up to max_rate_limited_retries    the server's hint, shared by all
    transient        yes, up to --max-retries               full jitter, at least the hint
    invalid_output   yes, up to max_invalid_output_retries  full jitter
    permanent        no (x-should-retry: true makes it transient, except context length)
    invalid_input    never sent
    fatal            stops the run

429s count against their own cap, not the item's attempts: a busy account is
not the item's fault. `x-should-retry: false` from the server always wins.

Retries as a whole are capped too (`RetryBudget`): every first attempt earns
`ratio` of a retry and every retry spends one, so a degraded service is not
hammered; a small trickle per second keeps a run able to finish when only
retries are left.
"""

from __future__ import annotations

import random
from typing import NamedTuple

from pipeline.core.config import RetryConfig
from pipeline.core.errors import ErrorKind

NEVER_RETRIED_CODES = frozenset({"context_length_exceeded"})
# A 429 without any hint from the server pauses everyone this long.
DEFAULT_RATE_LIMIT_PAUSE = 1.0
# A reset counts the time to a full bucket, not to the next request; past a
# minute, the limiter's own pacing from empty is the better guide.
MAX_RESET_PAUSE = 60.0


class Verdict(NamedTuple):
    """Why an attempt did not produce an answer, and what the server said about retrying."""

    kind: ErrorKind
    message: str
    status: int | None = None
    code: str | None = None
    server_wait: float | None = None
    server_says_retry: bool | None = None
    timed_out: bool = False
    answer: str | None = None  # an unusable answer's text, for the quarantine row


def retry_kind(verdict: Verdict) -> ErrorKind | None:
    """The kind whose retry rules apply, or None when the attempt must not be repeated."""
    if verdict.server_says_retry is False or verdict.code in NEVER_RETRIED_CODES:
        return None
    if verdict.server_says_retry and verdict.kind is ErrorKind.PERMANENT:
        return ErrorKind.TRANSIENT
    if verdict.kind in (ErrorKind.TRANSIENT, ErrorKind.RATE_LIMITED, ErrorKind.INVALID_OUTPUT):
        return verdict.kind
    return None


def retry_delay(
    verdict: Verdict, failures: int, config: RetryConfig, rng: random.Random
) -> float | None:
    """Seconds before the next attempt, or None to give up.

    `failures` counts the attempts that failed under this verdict's cap (429s
    or the rest). Full jitter (a uniform draw up to the exponential ceiling)
    spreads retries so that workers failing together do not return together.
    """
    kind = retry_kind(verdict)
    if kind is None or failures > allowed_retries(kind, config):
        return None
    if kind is ErrorKind.RATE_LIMITED:
        return rate_limit_pause(verdict)
    return max(backoff(failures, config, rng), verdict.server_wait or 0.0)


def rate_limit_pause(verdict: Verdict, reset: float | None = None) -> float:
    """How long a 429 pauses everyone: the server's wait, else its limits' reset, else a second."""
    if verdict.server_wait is not None:
        return verdict.server_wait
    if reset is not None:
        return min(reset, MAX_RESET_PAUSE)
    return DEFAULT_RATE_LIMIT_PAUSE


def backoff(failures: int, config: RetryConfig, rng: random.Random) -> float:
    ceiling = min(config.backoff_cap, config.backoff_base * 2 ** (failures - 1))
    return rng.uniform(0, ceiling)


def allowed_retries(kind: ErrorKind, config: RetryConfig) -> int:
    if kind is ErrorKind.RATE_LIMITED:
        return config.max_rate_limited_retries
    if kind is ErrorKind.INVALID_OUTPUT:
        return config.max_invalid_output_retries
    return config.max_retries


DEFAULT_RESERVE = 10.0
TRICKLE_PER_SECOND = 1.0


class RetryBudget:
    __slots__ = ("_cap", "_tokens", "_updated", "ratio")

    def __init__(self, ratio: float, now: float, reserve: float = DEFAULT_RESERVE) -> None:
        if ratio < 0:
            raise ValueError(f"a retry budget cannot be negative, got {ratio}")
        self.ratio = ratio
        self._cap = reserve
        self._tokens = reserve
        self._updated = now

    def on_first_attempt(self) -> None:
        self._tokens = min(self._cap, self._tokens + self.ratio)

    def try_spend(self, now: float) -> bool:
        self._trickle(now)
        # Slack for float rounding: waiting seconds_until_available must be enough.
        if self._tokens >= 1 - 1e-9:
            self._tokens -= 1
            return True
        return False

    def seconds_until_available(self, now: float) -> float:
        self._trickle(now)
        return max(0.0, (1 - self._tokens) / TRICKLE_PER_SECOND)

    def _trickle(self, now: float) -> None:
        elapsed = now - self._updated
        if elapsed > 0:
            self._tokens = min(self._cap, self._tokens + elapsed * TRICKLE_PER_SECOND)
            self._updated = now
