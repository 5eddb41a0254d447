"""Stalls are never silent: while nothing finishes, say what the run waits for.

`StallWatch` is pure (it is handed `now`); the engine asks it once a second on
the injected clock and emits any `Stalled` it returns as an event, for the progress display.
A run is stalled when no item has finished for `STALL_AFTER` seconds, or at
once when it is held back by failures (the circuit breaker is open).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.events import Stalled
from pipeline.core.words import counted

CHECK_EVERY = 1.0
STALL_AFTER = 10.0
REPORT_EVERY = 10.0


@dataclass(frozen=True, slots=True)
class Holdup:
    """What sending waits for right now, as traffic control sees it."""

    waiting_for: str
    failing: bool = False  # held back by failures (the breaker is open), not mere slowness
    last_error: str | None = None  # redacted; the latest failed attempt's message
    last_error_at: float | None = None  # on the run's clock


def holdup(
    down_for: float | None, breaker_timeout: float, in_flight: int, paused: float, retrying: int
) -> Holdup:
    """What sending waits for: the endpoint (down for `down_for` seconds, None when the
    breaker is closed), answers in flight, a rate-limit pause, items backing off."""
    if down_for is not None:
        left = max(0.0, breaker_timeout - down_for)
        return Holdup(
            f"the endpoint to recover (failing for {down_for:.0f}s; the run stops with exit 69 "
            f"in {left:.0f}s, see --breaker-timeout)",
            failing=True,
        )
    waits = []
    if in_flight:
        waits.append(f"answers to {counted(in_flight, 'request')}")
    if paused > 0:
        waits.append(f"a rate-limit pause ({paused:.0f}s left)")
    if retrying:
        waits.append(f"{counted(retrying, 'item')} to retry")
    return Holdup(", ".join(waits) or "more items to send")


class StallWatch:
    def __init__(self, now: float) -> None:
        self._finished = 0
        self._progress_at = now
        self._reported_at: float | None = None

    def check(
        self,
        now: float,
        finished: int,
        holdup: Holdup,
        last_error: str | None = None,
        last_error_at: float | None = None,
    ) -> Stalled | None:
        """A report when one is due: stalled, and none given for REPORT_EVERY seconds."""
        if finished != self._finished:
            self._finished, self._progress_at = finished, now
        seconds = now - self._progress_at
        if seconds < STALL_AFTER and not holdup.failing:
            return None
        if self._reported_at is not None and now - self._reported_at < REPORT_EVERY:
            return None
        self._reported_at = now
        errored = last_error_at is not None and last_error_at >= self._progress_at
        return Stalled(now, seconds, holdup.waiting_for, last_error, holdup.failing or errored)
