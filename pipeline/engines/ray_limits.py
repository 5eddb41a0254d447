"""One account's rate limits for a whole Ray cluster: a keeper, and grants to each worker.

Every worker of a `--engine ray` run sends from its own process, often its own
machine, yet the account's limit is one. The `LimitsKeeper` (held by one Ray
actor, see ray_engine.py) keeps the `RateLimiter` of each account and model,
the same arithmetic one process uses. A worker does not ask it about every
request: it asks for a grant, a run of send times reserved in the keeper's
buckets reaching at most `GRANT_HORIZON` seconds ahead, hands them to its
requests one by one (`GrantedLimiter`), and asks again as they run low. What its
answers taught (limit headers, tokens really used) rides along with its next
ask; a 429 is told at once, as it stops everyone.

Until the server has answered once, grants hold one send time: a limit learned
from headers is known before a burst is sent (as one process sends one request
alone first). Times here are wall-clock seconds, the one clock the cluster's
machines share (kept in step by NTP).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from pipeline.protocol.headers import LimitReading
from pipeline.traffic.limiter import Limits, RateLimiter

GRANT_HORIZON = 0.5  # seconds: how far ahead one grant may reach (beyond its least)
GRANT_LEAST = 4  # a heard keeper grants at least a quarter of what is asked, up to this:
# when the account's pace is the limit, the queue of send times is always a horizon
# deep, and a grant of one time each would put the keeper on every request's path.
# A granted time this far gone unused is given up: the keeper's bucket has refilled
# since, and others have been granted its room. Sent now, it would go on top of them.
STALE_AFTER = GRANT_HORIZON


@dataclass(frozen=True, slots=True)
class Report:
    """What a worker learned since its last ask."""

    readings: dict[str, LimitReading] | None  # the latest limit headers; None: no answer since
    token_refund: float = 0.0  # tokens reserved and not used (negative: used beyond)


@dataclass(frozen=True, slots=True)
class Grant:
    send_at: list[float]  # wall-clock times, one request each, in order
    tokens_each: float  # tokens reserved with each


# How the keeper makes an account and model's limiter: its own by default, or one kept
# in the --shared-limits file (traffic/shared_limits.py).
MakeLimiter = Callable[[str, Limits, float], RateLimiter]


def own_limiter(key: str, limits: Limits, now: float) -> RateLimiter:
    return RateLimiter(limits, now)


class LimitsKeeper:
    """The cluster's limiters, one per account and model (pure: `now` is passed in)."""

    def __init__(self, make: MakeLimiter = own_limiter) -> None:
        self._make = make
        self._limiters: dict[str, RateLimiter] = {}

    def grant(
        self,
        key: str,
        limits: Limits,
        want: int,
        tokens_each: float,
        report: Report,
        now: float,
    ) -> Grant:
        limiter = self._limiter(key, limits, now)
        if report.readings is not None:
            limiter.observe(report.readings, now)
        if report.token_refund:
            limiter.settle_tokens(report.token_refund, 0.0, now)
        if limiter.awaiting_first_answer:
            want = 1  # the server's limits may be in its first answer's headers
        least = min(GRANT_LEAST, max(1, want // 4))
        send_at: list[float] = []
        for _ in range(max(1, want)):
            wait = limiter.reserve(tokens_each, now)
            send_at.append(now + wait)
            if wait >= GRANT_HORIZON and len(send_at) >= least:
                break
        return Grant(send_at, tokens_each)

    def pause(
        self, key: str, limits: Limits, seconds: float, kinds: Iterable[str], now: float
    ) -> None:
        """A worker's 429: no grant reaches before the server's reset."""
        self._limiter(key, limits, now).pause(seconds, kinds, now)

    def _limiter(self, key: str, limits: Limits, now: float) -> RateLimiter:
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = self._make(key, limits, now)
        return limiter


# How a worker reaches the keeper: ask for a grant (key, limits, how many, tokens each,
# report), and tell it of a 429 (key, limits, seconds, kinds) without waiting.
Ask = Callable[[str, Limits, int, float, Report], Awaitable[Grant]]
TellPause = Callable[[str, Limits, float, list[str]], None]


class GrantedLimiter(RateLimiter):
    """A worker's limiter: reservations are the keeper's grants (a traffic.protocol.Grants).
    Its own RateLimiter state only follows what this worker heard, for its displays and
    for sending one request alone until the server first answered it."""

    def __init__(
        self,
        key: str,
        configured: Limits,
        ask: Ask,
        tell_pause: TellPause,
        want: int,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(configured, wall())
        self._key = key
        self._ask = ask
        self._tell_pause = tell_pause
        self._want = max(1, want)
        self._wall = wall
        self._send_at: deque[float] = deque()
        self._tokens_each = 0.0
        self._asking: asyncio.Task[None] | None = None
        self._readings: dict[str, LimitReading] | None = None
        self._refund = 0.0

    async def replenish(self, tokens: float) -> None:
        while True:
            self._forget_stale()
            if self._send_at:
                return
            await asyncio.shield(self._fetch(tokens))

    def reserve(self, tokens: float, now: float) -> float:
        wall = self._wall()
        send_at = self._send_at.popleft() if self._send_at else wall
        self._refund += self._tokens_each - tokens
        if len(self._send_at) <= self._want // 2:
            self._fetch(tokens)  # the next grant is on its way before this one runs out
        return max(self.paused_for(now), send_at - wall)

    def settle_tokens(self, reserved: float, used: float, now: float) -> None:
        self._refund += reserved - used

    def observe(
        self,
        readings: Mapping[str, LimitReading],
        now: float,
        unseen: Mapping[str, float] | None = None,
        age: float = 0.0,
    ) -> None:
        super().observe(readings, self._wall(), unseen, age)
        self._readings = {**(self._readings or {}), **readings}

    def pause(self, seconds: float, kinds: Iterable[str], now: float) -> None:
        kinds = list(kinds)
        super().pause(seconds, kinds, self._wall())
        self._send_at.clear()  # granted before the 429: the keeper grants anew after it
        self._tell_pause(self._key, self._configured, seconds, kinds)

    def paused_for(self, now: float) -> float:
        return max(0.0, self._paused_until - self._wall())

    def _forget_stale(self) -> None:
        oldest = self._wall() - STALE_AFTER
        while self._send_at and self._send_at[0] < oldest:
            self._send_at.popleft()

    def _fetch(self, tokens: float) -> asyncio.Task[None]:
        """The ask in flight, or a new one: one at a time, shared by whoever waits."""
        if self._asking is None or self._asking.done():
            self._asking = asyncio.get_running_loop().create_task(self._ask_keeper(tokens))
            # A failed ask ahead of need is asked again when the grant is needed.
            self._asking.add_done_callback(_retrieve)
        return self._asking

    async def _ask_keeper(self, tokens: float) -> None:
        report = Report(self._readings, self._refund)
        self._readings, self._refund = None, 0.0
        try:
            grant = await self._ask(self._key, self._configured, self._want, tokens, report)
        except BaseException:  # told with the next ask instead
            if report.readings is not None:
                self._readings = {**report.readings, **(self._readings or {})}
            self._refund += report.token_refund
            raise
        self._send_at.extend(grant.send_at)
        self._tokens_each = grant.tokens_each


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
