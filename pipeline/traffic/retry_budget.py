"""A cap on retries as a share of traffic, so a degraded service is not hammered (pure).

Every first attempt earns `ratio` of a retry; every retry spends one. A small
trickle per second keeps a run able to finish when only retries are left.
"""

from __future__ import annotations

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
