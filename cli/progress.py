"""Progress on stderr: a rich bar on a terminal, a plain line every few seconds otherwise."""

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

from pipeline.stats import RunStats

PLAIN_INTERVAL_SECONDS = 5.0


class QuietProgress:
    def update(self, stats: RunStats) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass

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
        of_total = f"/{self._total:,}" if self._total else ""
        print(
            f"sluice: {stats.items:,}{of_total} items done, {stats.failed:,} quarantined, "
            f"{rate:,.0f} items/s",
            file=sys.stderr,
            flush=True,
        )


class BarProgress(QuietProgress):
    def __init__(self) -> None:
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
