"""Progress on stderr: a rich bar on a terminal, a plain line every few seconds otherwise.

Stalls are reported in every mode. Under -q ("nothing on success") only a run
held back by failures says so, at most every QUIET_STALL_SECONDS: a slow but
healthy server is not an error, a failing one may be.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cli.errors import say
from pipeline.core.events import Stalled
from pipeline.core.words import counted
from pipeline.observe.counters import RunStats

PLAIN_INTERVAL_SECONDS = 5.0
QUIET_STALL_SECONDS = 30.0


class QuietProgress:
    def __init__(self) -> None:
        self._stall_said_at: float | None = None

    def update(self, stats: RunStats) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass

    def stalled(self, stall: Stalled) -> None:
        said = self._stall_said_at
        if stall.failing and (said is None or stall.at - said >= QUIET_STALL_SECONDS):
            self._stall_said_at = stall.at
            say(stall.describe())

    def __enter__(self) -> QuietProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pass


class PlainProgress(QuietProgress):
    """For logs and CI: one line every few seconds, never a redraw."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._started = clock()
        self._last = self._started
        self._total: int | None = None

    def set_total(self, total: int | None) -> None:
        self._total = total

    def update(self, stats: RunStats) -> None:
        now = self._clock()
        if now - self._last < PLAIN_INTERVAL_SECONDS:
            return
        self._last = now
        rate = stats.items / max(now - self._started, 1e-9)
        done = f"{stats.items:,}/{self._total:,} items" if self._total else None
        say(
            f"{done or counted(stats.items, 'item')} done, {stats.failed:,} quarantined, "
            f"{rate:,.0f} items/s"
        )

    def stalled(self, stall: Stalled) -> None:
        say(stall.describe())


class BarProgress(QuietProgress):
    def __init__(self) -> None:
        super().__init__()
        self._bar = Progress(
            TextColumn("[bold]sluice"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>7,.0f} items/s"),
            TextColumn("[red]{task.fields[failed]:,} failed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._bar.add_task("run", total=None, rate=0.0, failed=0)
        self._started = time.monotonic()

    def set_total(self, total: int | None) -> None:
        self._bar.update(self._task, total=total)

    def update(self, stats: RunStats) -> None:
        rate = stats.items / max(time.monotonic() - self._started, 1e-9)
        self._bar.update(self._task, completed=stats.items, rate=rate, failed=stats.failed)

    def stalled(self, stall: Stalled) -> None:
        self._bar.console.print(f"sluice: {stall.describe()}", markup=False, highlight=False)

    def __enter__(self) -> BarProgress:
        self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bar.stop()


def progress_for(quiet: bool) -> QuietProgress:
    if quiet:
        return QuietProgress()
    if sys.stderr.isatty():
        return BarProgress()
    return PlainProgress()
