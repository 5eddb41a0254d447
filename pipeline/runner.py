"""One `sluice run`, from inputs to committed outputs, summary and exit code.

This is the I/O edge of the engine: it opens the inputs, writers and HTTP
session, runs the engine, then commits the outputs atomically, or drops them on
failure, so nothing half-written ever stands under a final name.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from pipeline.atomic import AtomicFile
from pipeline.batching import batched
from pipeline.clock import Clock, SystemClock
from pipeline.config import Endpoint, RunConfig
from pipeline.dispatch import Dispatcher
from pipeline.engine import Engine, Progress
from pipeline.errors import OutputError, SluiceError
from pipeline.feed import ThreadFeed
from pipeline.formats import FileFormat
from pipeline.identity import SeenIds, identify, is_batch_line
from pipeline.models import Batch, Outcome, Success
from pipeline.redact import Redactor
from pipeline.request_builder import RequestBuilder
from pipeline.rows import quarantine_row, result_row
from pipeline.sinks import (
    RowWriter,
    open_quarantine_writer,
    open_result_writer,
    output_format,
    result_schema,
)
from pipeline.sources import check_inputs, input_format, parquet_schema, read_records
from pipeline.stats import RunStats, error_rate_exceeded, summary_dict
from pipeline.traffic import TrafficControl
from pipeline.transport import HttpTransport, Transport

EXIT_OK = 0
EXIT_ERROR_RATE = 1
SIGNAL_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


@dataclass(slots=True)
class RunResult:
    exit_code: int
    stats: RunStats
    wall_seconds: float
    error: SluiceError | None = None
    summary: dict[str, Any] = field(default_factory=dict)


class SplitWriter:
    """Successes to the results file, failures to quarantine, each in input order."""

    def __init__(self, results: RowWriter, quarantine: RowWriter, id_field: str) -> None:
        self.results = results
        self.quarantine = quarantine
        self._id_field = id_field

    def write(self, outcomes: list[Outcome]) -> None:
        good = [result_row(o, self._id_field) for o in outcomes if isinstance(o, Success)]
        bad = [quarantine_row(o) for o in outcomes if not isinstance(o, Success)]
        if good:
            self.results.write_rows(good)
        if bad:
            self.quarantine.write_rows(bad)

    def commit(self) -> None:
        self.quarantine.commit()
        self.results.commit()

    def abort(self) -> None:
        self.results.abort()
        self.quarantine.abort()


TransportFactory = Callable[[RunConfig], AbstractAsyncContextManager[Transport]]


def http_transport(config: RunConfig) -> HttpTransport:
    return HttpTransport(config.base_url, config.api_key, config.concurrency)


async def run(
    config: RunConfig,
    progress: Progress,
    transport_factory: TransportFactory = http_transport,
    clock: Clock | None = None,
) -> RunResult:
    _check_summary_directory(config)
    started = time.perf_counter()
    stats = RunStats()
    try:
        exit_code = await _run(config, progress, stats, transport_factory, clock or SystemClock())
        error = None
    except SluiceError as exc:
        exit_code, error = exc.exit_code, exc
    except _Interrupted as exc:
        exit_code, error = exc.exit_code, None
    wall = time.perf_counter() - started
    result = RunResult(exit_code, stats, wall, error, summary_dict(stats, wall, exit_code))
    if config.summary_path is not None:
        write_summary(str(config.summary_path), result.summary)
    return result


def _check_summary_directory(config: RunConfig) -> None:
    """Found out now, not after every item has been paid for."""
    directory = config.summary_path.parent if config.summary_path else None
    if directory is not None and not directory.is_dir():
        where = str(directory)
        raise OutputError(f"cannot write the summary: directory {where!r} does not exist")


class _Interrupted(Exception):
    def __init__(self, exit_code: int) -> None:
        self.exit_code = exit_code


async def _run(
    config: RunConfig,
    progress: Progress,
    stats: RunStats,
    transport_factory: TransportFactory,
    clock: Clock,
) -> int:
    check_inputs(config.inputs)
    builder = RequestBuilder(config.request)
    writer = _open_writers(config)
    seen = SeenIds()
    feed: ThreadFeed[Batch] = ThreadFeed(_batches(config, seen))
    try:
        async with transport_factory(config) as transport:
            engine = _engine(config, builder, transport, writer, stats, progress, clock)
            await _until_signal(engine.run(feed.next))
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        feed.close()
        seen.close()
    return EXIT_ERROR_RATE if error_rate_exceeded(stats, config.max_error_rate) else EXIT_OK


def _open_writers(config: RunConfig) -> SplitWriter:
    results = open_result_writer(config.output, _parquet_result_schema(config))
    try:
        quarantine = open_quarantine_writer(config.quarantine)
    except BaseException:
        results.abort()
        raise
    return SplitWriter(results, quarantine, config.id_field)


def _batches(config: RunConfig, seen: SeenIds) -> Iterator[Batch]:
    items = identify(read_records(config.inputs), config.id_field, seen)
    return batched(items, config.batch_size)


def _engine(
    config: RunConfig,
    builder: RequestBuilder,
    transport: Transport,
    writer: SplitWriter,
    stats: RunStats,
    progress: Progress,
    clock: Clock,
) -> Engine:
    redact = Redactor(config.api_key)
    traffic = TrafficControl(
        config.traffic, config.concurrency, config.timeout, clock, stats.traffic, random.Random()
    )
    dispatcher = Dispatcher(transport, traffic, config.retry, stats, redact, clock, random.Random())
    # Enough batches ahead of the writer that one slow item does not idle the pool.
    window = max(4, 4 * -(-config.concurrency // config.batch_size))
    return Engine(builder, dispatcher, writer, stats, progress, config.concurrency, window)


async def _until_signal(work: Coroutine[Any, Any, None]) -> None:
    """Run `work`; SIGINT/SIGTERM cancel it and become exit 130/143."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    received: list[int] = []

    def interrupt(signum: signal.Signals) -> None:
        received.append(SIGNAL_EXIT_CODES[signum])
        task.cancel()

    installed = []
    for signum in SIGNAL_EXIT_CODES:
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signum, interrupt, signum)
            installed.append(signum)
    try:
        await task
    except asyncio.CancelledError:
        if not received:
            raise
        raise _Interrupted(received[0]) from None
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _parquet_result_schema(config: RunConfig) -> pa.Schema | None:
    """For Parquet in and out, the result schema follows the input's, fixed up front."""
    if output_format(config.output) is not FileFormat.PARQUET:
        return None
    if not all(input_format(path) is FileFormat.PARQUET for path in config.inputs):
        return None
    try:
        schema = pa.unify_schemas([parquet_schema(path) for path in config.inputs])
    except (pa.ArrowException, OSError):
        return None  # reading will report the unreadable input with its own message
    endpoint = config.request.endpoint
    if endpoint is None and not is_batch_line(schema.names):
        endpoint = Endpoint.CHAT
    if endpoint is None or endpoint is Endpoint.RAW:
        return None
    output_type = pa.list_(pa.float64()) if endpoint is Endpoint.EMBEDDINGS else pa.string()
    return result_schema(schema, config.id_field, output_type)


def write_summary(path: str, summary: dict[str, Any]) -> None:
    target = AtomicFile(path)
    target.handle.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    target.commit()
