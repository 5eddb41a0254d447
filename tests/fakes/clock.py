"""A clock that moves only when someone sleeps on it: sleeping advances it at once.

Meant for one sleeper at a time; concurrent sleepers would each move it.
"""

from __future__ import annotations

import asyncio


class FakeClock:
    def __init__(self, start: float = 1000.0, wall: float = 1_700_000_000.0) -> None:
        self.current = start
        self._wall_offset = wall - start
        self.slept: list[float] = []

    def now(self) -> float:
        return self.current

    def wall(self) -> float:
        return self.current + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.current += seconds
        await asyncio.sleep(0)
