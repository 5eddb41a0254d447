"""How many requests may be in flight: additive increase, multiplicative decrease (pure).

Grows by about one per round trip while answers come back calm; shrinks by a
factor on a congestion signal, at most once per round trip, so a burst of 429s
from one overfull moment counts as one signal rather than thirty.
"""

from __future__ import annotations

from enum import Enum


class Congestion(Enum):
    RATE_LIMITED = "rate_limited"  # the provider said slow down
    SERVER_ERROR = "server_error"  # 5xx, timeouts, drops: maybe load, maybe chance
    LATENCY_SPIKE = "latency_spike"


SHRINK_FACTORS = {
    Congestion.RATE_LIMITED: 0.5,
    Congestion.SERVER_ERROR: 0.9,
    Congestion.LATENCY_SPIKE: 0.9,
}


class ConcurrencyLimit:
    __slots__ = ("_calm_from", "_limit", "current", "maximum", "minimum")

    def __init__(self, maximum: int, minimum: int = 1) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"need 1 <= minimum <= maximum, got {minimum} and {maximum}")
        self.maximum = maximum
        self.minimum = minimum
        # Start at the ceiling the user chose: it is a promise of capacity, not a guess.
        self._limit = float(maximum)
        self._calm_from = float("-inf")
        self.current = maximum
        """How many requests may be in flight now (read on every request, so kept, not derived)."""

    def on_success(self) -> None:
        if self.current < self.maximum:
            self._limit = min(float(self.maximum), self._limit + 1 / self._limit)
            self.current = max(self.minimum, int(self._limit))

    def on_congestion(self, signal: Congestion, now: float, round_trip: float) -> None:
        if now < self._calm_from:
            return
        self._limit = max(float(self.minimum), self._limit * SHRINK_FACTORS[signal])
        self.current = max(self.minimum, int(self._limit))
        self._calm_from = now + round_trip
