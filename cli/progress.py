"""What a run says on stderr while it goes: progress, stalls, warnings and errors.

Three displays, one interface (the `Progress` protocol of pipeline/observe/):

- `QuietDisplay` (-q): nothing on success; errors, and a run held back by failures
  at most every QUIET_STALL_SECONDS (a slow but healthy server is not an error).
- `LineDisplay` (stderr is not a terminal, or --log-format json): a line every
  --log-every seconds, whether or not anything completed, with a UTC timestamp,
  done/total, rate, ETA, retries, 429s and the concurrency; a stalled run's line
  says what it waits for. Rate and ETA count this attempt alone, so a resumed run
  is not credited with the items earlier runs did. In JSON, every line (these,
  warnings, errors, the summary) is one object carrying the run's trace id.
- `BarDisplay` (a terminal): a rich progress bar.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, NamedTuple

import orjson

from pipeline.core.config import ReadConfig
from pipeline.core.errors import SluiceError
from pipeline.core.events import BatchesCommitted, Stalled
from pipeline.core.models import Failure
from pipeline.core.words import counted
from pipeline.observe.counters import RunStats
from pipeline.prepare.batching import shard_share
from pipeline.read.sources import count_items

QUIET_STALL_SECONDS = 30.0


class LogSettings(NamedTuple):
    quiet: bool = False
    verbose: bool = False
    json: bool = False
    every: float = 5.0  # seconds between progress lines
    trace_id: str = ""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


DEFAULT_LOG_SETTINGS = LogSettings()


class QuietDisplay:
    def __init__(self, settings: LogSettings = DEFAULT_LOG_SETTINGS) -> None:
        self.settings = settings
        self._stall_said_at: float | None = None
        self.total: int | None = None

    # -- the log: every message the run prints goes through here -----------------------

    def say(self, message: str, level: str = "info", **fields: Any) -> None:
        if self.settings.json:
            record = {"time": utc_now(), "level": level, "message": message}
            record.update(fields)
            record["trace_id"] = self.settings.trace_id
            sys.stderr.write(orjson.dumps(record).decode() + "\n")
            sys.stderr.flush()
        else:
            print(f"sluice: {message}", file=sys.stderr, flush=True)

    def record(self, event: str, data: dict[str, Any]) -> None:
        """A structured record (the summary): one JSON object, or nothing in text mode."""
        self.say(event, event=event, **data)

    # -- the Progress protocol -----------------------------------------------------------

    def set_total(self, total: int | None) -> None:
        self.total = total

    def resumed(self, stats: RunStats) -> None:
        pass

    def update(self, stats: RunStats, committed: BatchesCommitted) -> None:
        pass

    def tick(self, stats: RunStats, at: float, stall: Stalled | None = None) -> None:
        pass

    def stalled(self, stall: Stalled) -> None:
        said = self._stall_said_at
        if stall.failing and (said is None or stall.at - said >= QUIET_STALL_SECONDS):
            self._stall_said_at = stall.at
            self.say(stall.describe(), level="warning", event="stalled")

    def __enter__(self) -> QuietDisplay:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pass


class LineDisplay(QuietDisplay):
    """For logs, cron and CI: one line every few seconds, never a redraw."""

    def __init__(self, settings: LogSettings, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(settings)
        self._clock = clock
        self._started = clock()
        self._last_line = self._started

    def resumed(self, stats: RunStats) -> None:
        if not stats.resumed:
            return
        of = f" of {self.total:,}" if self.total else ""
        self.say(
            f"resuming: {stats.resumed:,}{of} items already done",
            event="resuming",
            done=stats.resumed,
            total=self.total,
        )

    def update(self, stats: RunStats, committed: BatchesCommitted) -> None:
        if self.settings.verbose:
            self._batch_lines(committed)

    def _batch_lines(self, committed: BatchesCommitted) -> None:
        """One line per batch committed (-v)."""
        start = 0
        for batch, size in zip(committed.batches, committed.sizes, strict=False):
            outcomes = committed.outcomes[start : start + size]
            start += size
            failed = sum(1 for outcome in outcomes if isinstance(outcome, Failure))
            self.say(
                f"batch {batch:,} committed: {counted(size, 'item')}, {failed:,} quarantined",
                event="committed",
                batch=batch,
                items=size,
                quarantined=failed,
            )

    def tick(self, stats: RunStats, at: float, stall: Stalled | None = None) -> None:
        now = self._clock()
        if now - self._last_line < self.settings.every:
            return
        self._last_line = now
        self._progress_line(stats, now, stall)

    def stalled(self, stall: Stalled) -> None:
        """Said when the engine reports it; progress lines say it too while it lasts."""
        self.say(
            stall.describe(),
            level="warning" if stall.failing else "info",
            event="stalled",
            stalled_seconds=round(stall.seconds),
            waiting_for=stall.waiting_for,
            last_error=stall.last_error,
        )

    def _progress_line(self, stats: RunStats, now: float, stall: Stalled | None) -> None:
        elapsed = max(now - self._started, 1e-9)
        done_here = stats.items - stats.resumed
        rate = done_here / elapsed
        total = self.total
        eta = (total - stats.items) / rate if total and rate > 0 else None
        traffic = stats.traffic
        fields: dict[str, Any] = {
            "event": "progress",
            "done": stats.items,
            "total": total,
            "quarantined": stats.failed,
            "items_per_second": round(rate, 1),
            "eta_seconds": None if eta is None else round(eta),
            "retries": stats.retries,
            "rate_limited": stats.rate_limited,
            "concurrency": traffic.concurrency,
        }
        if stall is not None:
            fields.update(
                stalled_seconds=round(stall.seconds),
                waiting_for=stall.waiting_for,
                last_error=stall.last_error,
            )
        if self.settings.json:
            self.say("progress", **fields)
            return
        done = f"{stats.items:,}/{total:,}" if total else f"{stats.items:,}"
        share = f" ({stats.items / total:.0%})" if total else ""
        line = (
            f"{utc_now()} {done} items{share}, {rate:,.0f}/s, ETA {_eta(eta)}; "
            f"{stats.failed:,} quarantined, {counted(stats.retries, 'retry')}, "
            f"{stats.rate_limited:,} 429s, concurrency {traffic.concurrency}"
        )
        if stall is not None:
            line += f"; {stall.describe()}"
        self.say(line)


class BarDisplay(LineDisplay):
    def __init__(self, settings: LogSettings) -> None:
        # rich (~100 ms to import) only for the display that draws with it.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        super().__init__(settings)
        self._console = Console(stderr=True)
        self._bar = Progress(
            TextColumn("[bold]sluice"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>7,.0f} items/s"),
            TextColumn("[red]{task.fields[failed]:,} failed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._task = self._bar.add_task("run", total=None, rate=0.0, failed=0)

    def say(self, message: str, level: str = "info", **fields: Any) -> None:
        self._console.print(f"sluice: {message}", markup=False, highlight=False)

    def set_total(self, total: int | None) -> None:
        super().set_total(total)
        self._bar.update(self._task, total=total)

    def resumed(self, stats: RunStats) -> None:
        super().resumed(stats)
        self._bar.update(self._task, completed=stats.items)

    def update(self, stats: RunStats, committed: BatchesCommitted) -> None:
        super().update(stats, committed)
        self._show(stats)

    def tick(self, stats: RunStats, at: float, stall: Stalled | None = None) -> None:
        self._show(stats)

    def _show(self, stats: RunStats) -> None:
        elapsed = max(self._clock() - self._started, 1e-9)
        rate = (stats.items - stats.resumed) / elapsed
        self._bar.update(self._task, completed=stats.items, rate=rate, failed=stats.failed)

    def stalled(self, stall: Stalled) -> None:
        self.say(stall.describe())

    def __enter__(self) -> BarDisplay:
        self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bar.stop()


def display_for(settings: LogSettings, read: ReadConfig) -> QuietDisplay:
    if settings.quiet:
        return QuietDisplay(settings)
    display: QuietDisplay
    if sys.stderr.isatty() and not settings.json:
        display = BarDisplay(settings)
    else:
        display = LineDisplay(settings)
    _count_in_background(display, read)
    return display


def _count_in_background(display: QuietDisplay, read: ReadConfig) -> None:
    """The ETA needs a total (a shard's share of the input); counting lines is a quick
    read, kept off the main path."""

    def count() -> None:
        # No total means no ETA; the run itself reports unreadable inputs.
        with contextlib.suppress(OSError, SluiceError, ValueError):
            total = count_items(read.inputs)
            if total is not None:
                total = shard_share(total, read.batch_size, read.shard)
            display.set_total(total)

    threading.Thread(target=count, name="sluice-count", daemon=True).start()


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
