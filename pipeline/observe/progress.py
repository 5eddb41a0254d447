"""The progress display's side of the event stream.

A display (cli/progress.py) is told the counts after each commit and after a
resume, and every stall; `ProgressFeed` turns events into those calls. It must
come after the `RunStats` it reads in a `Broadcast`, so the counts include the
commit it reports.
"""

from __future__ import annotations

from typing import Protocol

from pipeline.core.events import BatchesCommitted, Event, JobResumed, Stalled
from pipeline.observe.counters import RunStats


class Progress(Protocol):
    def update(self, stats: RunStats) -> None:
        """The job's counts changed (a commit, or what earlier attempts committed)."""

    def stalled(self, stall: Stalled) -> None:
        """Nothing finished for a while, or the endpoint is failing: say what the run waits for."""


class ProgressFeed:
    def __init__(self, progress: Progress, stats: RunStats) -> None:
        self._progress = progress
        self._stats = stats

    def emit(self, event: Event) -> None:
        if isinstance(event, BatchesCommitted | JobResumed):
            self._progress.update(self._stats)
        elif isinstance(event, Stalled):
            self._progress.stalled(event)
