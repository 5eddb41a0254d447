"""A circuit breaker on the endpoint (pure state machine; `now` is passed in).

    closed ──failure share over the window ≥ threshold──► open
    open ──cool-down over──► half-open: one probe request goes out
    half-open ──probe succeeds──► closed      ──probe fails──► open, longer cool-down

While the breaker is not closed, items wait rather than fail. `outage_seconds`
says how long it has been since the breaker last closed, so the caller can give
up after `--breaker-timeout`.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum
from typing import NamedTuple


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerSettings(NamedTuple):
    failure_share: float = 0.5
    min_requests: int = 20
    window_seconds: float = 10.0
    cooldown: float = 2.0
    max_cooldown: float = 30.0


class Admission(NamedTuple):
    """Send now (`probe` when this request tests a half-open breaker), or wait `wait` seconds."""

    send: bool
    probe: bool = False
    wait: float = 0.0


GO = Admission(send=True)


class CircuitBreaker:
    def __init__(self, settings: BreakerSettings | None = None) -> None:
        self.settings = settings or BreakerSettings()
        self.state = BreakerState.CLOSED
        # One [second, requests, failures] entry per second that saw an outcome.
        self._window: deque[list[int]] = deque()
        self._cooldown = self.settings.cooldown
        self._retry_at = 0.0
        self._outage_start: float | None = None
        self.outages = 0

    def admit(self, now: float) -> Admission:
        if self.state is BreakerState.CLOSED:
            return GO
        if self.state is BreakerState.OPEN:
            if now >= self._retry_at:
                self.state = BreakerState.HALF_OPEN
                return Admission(send=True, probe=True)
            return Admission(send=False, wait=self._retry_at - now)
        # Half-open: the probe is out; its verdict wakes waiters, this is a fallback.
        return Admission(send=False, wait=self._cooldown)

    def passes(self, now: float) -> bool:
        """Whether an attempt asking now would go out: closed, or a probe is due."""
        if self.state is BreakerState.CLOSED:
            return True
        return self.state is BreakerState.OPEN and now >= self._retry_at

    def record(self, ok: bool, now: float, probe: bool = False) -> None:
        if ok and self.state is not BreakerState.CLOSED:
            self._close()  # any answer, probe or straggler, shows the endpoint is back
        elif not ok and probe and self.state is BreakerState.HALF_OPEN:
            self._open(now, self._cooldown * 2)
        elif self.state is BreakerState.CLOSED:
            self._count(ok, now)
            if not ok and self._tripped(now):  # a success never raises the failure share
                self._open(now, self.settings.cooldown)

    def probe_lost(self, now: float) -> None:
        """The probe ended with neither verdict (cancelled): let another one go."""
        if self.state is BreakerState.HALF_OPEN:
            self.state = BreakerState.OPEN
            self._retry_at = now

    def outage_seconds(self, now: float) -> float:
        return 0.0 if self._outage_start is None else now - self._outage_start

    def _count(self, ok: bool, now: float) -> None:
        second = int(now)
        if not self._window or self._window[-1][0] != second:
            self._window.append([second, 0, 0])
        self._window[-1][1] += 1
        self._window[-1][2] += 0 if ok else 1

    def _tripped(self, now: float) -> bool:
        horizon = now - self.settings.window_seconds
        while self._window and self._window[0][0] < horizon:
            self._window.popleft()
        requests = sum(entry[1] for entry in self._window)
        failures = sum(entry[2] for entry in self._window)
        return requests >= self.settings.min_requests and (
            failures >= self.settings.failure_share * requests
        )

    def _open(self, now: float, cooldown: float) -> None:
        if self._outage_start is None:
            self._outage_start = now
            self.outages += 1
        self.state = BreakerState.OPEN
        self._cooldown = min(cooldown, self.settings.max_cooldown)
        self._retry_at = now + self._cooldown

    def _close(self) -> None:
        self.state = BreakerState.CLOSED
        self._window.clear()
        self._cooldown = self.settings.cooldown
        self._outage_start = None
