"""Time as a seam: the engine asks a Clock, so tests can drive time by hand.

The pure decision-makers (limiter, breaker, AIMD, retry policy) never read a
clock; they are handed `now`. Only the async glue holds a Clock.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds: for every interval and deadline."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch: only to read HTTP dates such as Retry-After."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
