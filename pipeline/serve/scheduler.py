"""Running the jobs of `sluice serve`: in the order they came, several at once, all on one
account's limits, one response cache and one HTTP client.

Each job is an ordinary run (pipeline/run/root.py) hosted by the server: its
items file in, its results and quarantine out, its checkpoints in its directory.
So a job whose server was killed resumes from its last committed batch when the
server starts again on the same data directory, and a job cancelled or stopped
by a shutdown lets its requests in flight land and commits what is complete. A
job's record is rewritten as its status changes; a finished one gets its webhook
(at least once, see webhooks.py) and wakes whoever waits for it (/v1/process).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.events import Event, ItemSettled
from pipeline.core.models import Success
from pipeline.dispatch.transport import Transport
from pipeline.engines.hosting import Hosted, StopRequest, TrafficPool
from pipeline.observe.progress import SilentProgress
from pipeline.run.result import EXIT_ERROR_RATE, EXIT_OK, RunResult
from pipeline.run.root import run
from pipeline.serve.intake import ConfigFor
from pipeline.serve.jobs import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    JobRecord,
    JobStore,
    RecordDamaged,
)

CANCEL_CODE = -1  # the stop code of a cancelled job (no process exit code is negative)
SHUTDOWN_CODE = 143  # the stop code of a job stopped by SIGTERM: it resumes next start


@dataclass(slots=True)
class Shared:
    """What every job of the server draws on."""

    traffic: TrafficPool
    transport: Transport
    sinks: tuple[Any, ...] = ()


@dataclass(slots=True)
class _Running:
    record: JobRecord
    stop: StopRequest = field(default_factory=StopRequest)
    settled: dict[str, int] = field(default_factory=dict)  # live counts by how items ended


class _LiveCounts:
    """A running job's items as they settle, for its status before its summary exists."""

    def __init__(self, running: _Running) -> None:
        self._counts = running.settled

    def emit(self, event: Event) -> None:
        if type(event) is ItemSettled:
            outcome = event.outcome
            kind = "quarantined"
            if isinstance(outcome, Success):
                kind = "cached" if outcome.cached else "succeeded"
            self._counts[kind] = self._counts.get(kind, 0) + 1


class Scheduler:
    def __init__(
        self,
        store: JobStore,
        config_for: ConfigFor,
        shared: Shared,
        max_running: int,
        grace: float,
        finished: Callable[[JobRecord], None] = lambda record: None,
    ) -> None:
        self._store = store
        self._config_for = config_for
        self._shared = shared
        self._max_running = max_running
        self._grace = grace
        self._finished = finished  # a job reached a final status (webhook, metrics)
        self._queue: list[str] = []
        self._running: dict[str, _Running] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiters: dict[str, list[asyncio.Future[JobRecord]]] = {}
        self._wake = asyncio.Event()
        self._closing = False
        self._statuses: dict[str, str] = {}  # every job on disk, by id

    # What the API asks of it.

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, record: JobRecord) -> None:
        self._statuses[record.id] = record.status
        self._queue.append(record.id)
        self._wake.set()

    def status(self, record: JobRecord) -> dict[str, Any]:
        running = self._running.get(record.id)
        status = (running.record if running else record).status_object()
        if running is not None and not status["counts"]:
            status["counts"] = dict(running.settled)
        return status

    def cancel(self, record: JobRecord) -> JobRecord:
        """Nothing new is sent; requests in flight land; complete batches are kept."""
        if record.final:
            return record
        running = self._running.get(record.id)
        if running is not None:
            running.stop.stop(CANCEL_CODE, self._grace)
            return running.record
        if record.id in self._queue:
            self._queue.remove(record.id)
        self._end(record, CANCELLED)
        return record

    async def wait(self, job_id: str, timeout: float) -> JobRecord | None:
        """The job's record once final, or None after `timeout` seconds."""
        future: asyncio.Future[JobRecord] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, []).append(future)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return None
        finally:
            waiting = self._waiters.get(job_id, [])
            if future in waiting:
                waiting.remove(future)

    def counts_by_status(self) -> dict[str, int]:
        """Jobs by status, from memory (a scrape must not read every record)."""
        counts: dict[str, int] = {}
        for status in self._statuses.values():
            counts[status] = counts.get(status, 0) + 1
        return counts

    def forget(self, job_id: str) -> None:
        """A job deleted (its retention passed)."""
        self._statuses.pop(job_id, None)

    # Its own life.

    def resume_unfinished(self) -> int:
        """Jobs a stopped or killed server left queued or running: queued again, oldest
        first. Returns how many."""
        self._store.sweep_unaccepted()
        resumed = 0
        for job_id in self._store.ids():
            try:
                record = self._store.load(job_id)
            except RecordDamaged:
                continue
            if record is None:
                continue
            if not record.final:
                if record.status != QUEUED:
                    record.status = QUEUED
                    self._store.save(record)
                self._queue.append(job_id)
                resumed += 1
            self._statuses[job_id] = record.status
        self._wake.set()
        return resumed

    async def run(self) -> None:
        """Start queued jobs while fewer than `max_running` run, until `shutdown`."""
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            while self._queue and len(self._running) < self._max_running and not self._closing:
                job_id = self._queue.pop(0)
                record = self._store.load(job_id)
                if record is None or record.final:
                    continue
                task = asyncio.create_task(self._execute(record))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def shutdown(self) -> None:
        """Stop every running job gracefully (they resume at the next start) and wait."""
        self._closing = True
        self._wake.set()
        for running in self._running.values():
            running.stop.stop(SHUTDOWN_CODE, self._grace)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _execute(self, record: JobRecord) -> None:
        running = _Running(record)
        self._running[record.id] = running
        record.status, record.started_at = RUNNING, record.started_at or time.time()
        self._store.save(record)
        self._statuses[record.id] = RUNNING
        try:
            config = self._config_for(record.options, self._store.directory(record.id))
            shared = self._shared
            hosted = Hosted(
                shared.traffic,
                shared.transport,
                running.stop,
                (*shared.sinks, _LiveCounts(running)),
            )
            result = await run(config, SilentProgress(), hosted=hosted)
        except Exception as exc:  # a bug must fail the job, never the server
            record.error = {"type": "internal", "message": f"{type(exc).__name__}: {exc}"}
            self._end(record, FAILED)
            return
        finally:
            self._running.pop(record.id, None)
            self._wake.set()
        self._ended(record, running.stop.code, result)

    def _ended(self, record: JobRecord, stopped: int | None, result: RunResult) -> None:
        record.counts = _counts(result.summary) or record.counts
        record.exit_code = result.exit_code
        if stopped == SHUTDOWN_CODE:  # resumes at the next start
            record.status = QUEUED
            self._store.save(record)
            self._statuses[record.id] = QUEUED
            return
        if stopped == CANCEL_CODE:
            self._end(record, CANCELLED)
        elif result.exit_code in (EXIT_OK, EXIT_ERROR_RATE):
            self._end(record, SUCCEEDED)
        else:
            message = result.error.message if result.error else f"exit {result.exit_code}"
            record.error = {"type": _error_type(result.exit_code), "message": message}
            self._end(record, FAILED)

    def _end(self, record: JobRecord, status: str) -> None:
        record.status, record.finished_at = status, time.time()
        self._store.save(record)
        self._statuses[record.id] = status
        self._finished(record)
        for future in self._waiters.pop(record.id, []):
            if not future.done():
                future.set_result(record)


# Exit codes of a run, as the error types of a failed job.
_ERROR_TYPES = {
    3: "budget",
    65: "input",
    69: "service_unavailable",
    73: "output",
    75: "temporary",
    77: "auth",
    78: "configuration",
}


def _error_type(exit_code: int) -> str:
    return _ERROR_TYPES.get(exit_code, "internal")


def _counts(summary: dict[str, Any]) -> dict[str, Any]:
    if not summary:
        return {}
    keys = ("items", "succeeded", "cached", "quarantined", "skipped_by_where", "requests")
    counts = {key: summary.get(key) for key in keys if key in summary}
    cost = summary.get("cost", {})
    if isinstance(cost, dict):
        counts["cost_usd"] = cost.get("whole_job")
    return counts
