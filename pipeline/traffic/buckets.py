"""A token bucket that hands out reservations in arrival order (pure: `now` is passed in).

`reserve` takes the cost at once and may drive the level below zero; that debt
is the queue of callers still waiting, and each caller's wait is the time the
refill needs to pay off everything reserved before it and its own share. So
waiters are served strictly in order and each wakes at its own moment: no
starvation and no herd rushing a freed slot.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any


class TokenBucket:
    __slots__ = ("_level", "_pending", "_pending_cost", "_updated", "capacity", "rate")

    def __init__(
        self, rate: float, capacity: float, now: float, level: float | None = None
    ) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError(f"rate and capacity must be positive, got {rate} and {capacity}")
        self.rate = rate
        self.capacity = capacity
        self._level = capacity if level is None else min(level, capacity)
        self._updated = now
        # Reservations whose moment has not come yet: (due, cost). The server has
        # not seen them, which matters when comparing our level with its count.
        self._pending: list[tuple[float, float]] = []
        self._pending_cost = 0.0

    def reserve(self, cost: float, now: float) -> float:
        """Take `cost` and say how many seconds the caller must wait before using it."""
        self._refill(now)
        self._level -= cost
        wait = -self._level / self.rate if self._level < 0 else 0.0
        if wait > 0:
            heapq.heappush(self._pending, (now + wait, cost))
            self._pending_cost += cost
        return wait

    def adjust(self, delta: float, now: float) -> None:
        """Give back (delta > 0) or charge (delta < 0) once the true cost is known."""
        self._refill(now)
        self._level = min(self.capacity, self._level + delta)

    def level(self, now: float) -> float:
        self._refill(now)
        return self._level

    def sent_level(self, now: float) -> float:
        """The level counting only reservations already due: what the server can have seen."""
        self._refill(now)
        while self._pending and self._pending[0][0] <= now:
            self._pending_cost -= heapq.heappop(self._pending)[1]
        return self._level + max(0.0, self._pending_cost)

    def lower_to(self, remaining: float, now: float) -> None:
        """Believe a server that reports less left than we think; never raise the level."""
        excess = self.sent_level(now) - remaining
        if excess > 0:
            self._level -= excess

    def retune(self, rate: float, capacity: float, now: float) -> None:
        self._refill(now)
        self.rate = rate
        self.capacity = capacity
        self._level = min(self._level, capacity)

    def state(self) -> dict[str, Any]:
        """Everything it knows, as plain values (to keep it outside the process)."""
        return {
            "rate": self.rate,
            "capacity": self.capacity,
            "level": self._level,
            "updated": self._updated,
            "pending": [list(entry) for entry in self._pending],
        }

    @classmethod
    def restored(cls, state: Mapping[str, Any]) -> TokenBucket:
        bucket = cls(float(state["rate"]), float(state["capacity"]), float(state["updated"]))
        bucket._level = float(state["level"])  # may be below zero: callers are waiting
        bucket._pending = [(float(due), float(cost)) for due, cost in state["pending"]]
        heapq.heapify(bucket._pending)
        bucket._pending_cost = sum(cost for _, cost in bucket._pending)
        return bucket

    def _refill(self, now: float) -> None:
        # A clock that steps backwards must not drain the bucket.
        elapsed = now - self._updated
        if elapsed > 0:
            self._level = min(self.capacity, self._level + elapsed * self.rate)
            self._updated = now
