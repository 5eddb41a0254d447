"""The progress display's side of the event stream.

A display (cli/progress.py) is told the counts after each commit and after a
resume, about once a second whatever happens, and every stall; `ProgressFeed`
turns events into those calls. It must
come after the `RunStats` it reads in a `Broadcast`, so the counts include the
commit it reports.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from pipeline.core.events import BatchesCommitted, Event, Heartbeat, JobResumed, Stalled
from pipeline.observe.counters import RunStats


class Progress(Protocol):
    def resumed(self, stats: RunStats) -> None:
        """Earlier attempts of the job committed `stats.resumed` items."""

    def update(self, stats: RunStats, committed: BatchesCommitted) -> None:
        """Batches were committed; the job's counts include them."""

    def tick(self, stats: RunStats, at: float, stall: Stalled | None) -> None:
        """About once a second while the run goes, whether or not anything finished;
        `stall` says what it waits for when it is stalled."""

    def stalled(self, stall: Stalled) -> None:
        """Nothing finished for a while, or the endpoint is failing: say what the run waits for."""


class ProgressFeed:
    takes: ClassVar[frozenset[type]]  # _TOLD, set below it

    def __init__(self, progress: Progress, stats: RunStats) -> None:
        self._progress = progress
        self._stats = stats

    def emit(self, event: Event) -> None:
        if type(event) not in _TOLD:  # most events (several per request) are not
            return
        if isinstance(event, BatchesCommitted):
            self._progress.update(self._stats, event)
        elif isinstance(event, Heartbeat):
            self._progress.tick(self._stats, event.at, event.stall)
        elif isinstance(event, JobResumed):
            self._progress.resumed(self._stats)
        elif isinstance(event, Stalled):
            self._progress.stalled(event)


_TOLD = frozenset({BatchesCommitted, Heartbeat, JobResumed, Stalled})
ProgressFeed.takes = _TOLD


class SilentProgress:
    """A display that shows nothing (tools and tests); override what you need."""

    def resumed(self, stats: RunStats) -> None:
        pass

    def update(self, stats: RunStats, committed: BatchesCommitted) -> None:
        pass

    def tick(self, stats: RunStats, at: float, stall: Stalled | None) -> None:
        pass

    def stalled(self, stall: Stalled) -> None:
        pass
