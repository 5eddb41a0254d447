"""Stalls are never silent: while nothing finishes, say what the run waits for.

`StallWatch` is pure (it is handed `now`); the engine asks it once a second on
the injected clock and emits any `Stalled` it returns as an event, for the
progress display. A run is stalled when no item has finished for `STALL_AFTER`
seconds, or at once when it is held back by failures (the circuit breaker is
open). What sending waits for comes from the limiter (`Limiter.holdup`).
"""

from __future__ import annotations

from pipeline.core.events import Stalled
from pipeline.traffic.protocol import Holdup

CHECK_EVERY = 1.0
STALL_AFTER = 10.0
REPORT_EVERY = 10.0


class StallWatch:
    def __init__(self, now: float) -> None:
        self._finished = 0
        self._progress_at = now
        self._reported_at: float | None = None
        self.current: Stalled | None = None  # the stall as of the last check, said or not

    def check(
        self,
        now: float,
        finished: int,
        holdup: Holdup,
        last_error: str | None = None,
        last_error_at: float | None = None,
    ) -> Stalled | None:
        """A report when one is due: stalled, and none given for REPORT_EVERY seconds.
        `current` is kept up to date at every check, for displays that say it more often."""
        if finished != self._finished:
            self._finished, self._progress_at = finished, now
        seconds = now - self._progress_at
        if seconds < STALL_AFTER and not holdup.failing:
            self.current = None
            return None
        errored = last_error_at is not None and last_error_at >= self._progress_at
        failing = holdup.failing or errored
        self.current = Stalled(now, seconds, holdup.waiting_for, last_error, failing)
        if self._reported_at is not None and now - self._reported_at < REPORT_EVERY:
            return None
        self._reported_at = now
        return self.current
