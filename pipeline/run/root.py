"""The composition root: one `sluice run`, wired from its config, to committed outputs.

This is the only place that knows every stage. It checks what could turn the
run away before touching a file, builds each stage from its own sub-config
(read, prepare, cache, traffic, dispatch, engine, write, state), connects them
to one event stream (the counters behind the summary, and the progress
display), runs the engine until the input ends or a signal stops it, and turns
what happened into an exit code and a summary.

With a state directory each finished batch is committed there, and the final
files are assembled from those parts once all are done; without one, rows go
straight into the final files. Either way the outputs appear under their names
complete, or not at all.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from pipeline.cache.memo import ResponseMemo, response_memo
from pipeline.cache.store import CacheUnavailable
from pipeline.core.config import RunConfig
from pipeline.core.errors import (
    BudgetReached,
    ConfigError,
    InputUnreadable,
    SluiceError,
)
from pipeline.core.events import CacheOpened, JobResumed
from pipeline.core.formats import FileFormat
from pipeline.dispatch.transport import Transport
from pipeline.engines.hosting import Hosted
from pipeline.engines.protocol import Engine, OutcomeWriter
from pipeline.observe.broadcast import Broadcast
from pipeline.observe.counters import RunStats
from pipeline.observe.progress import Progress, ProgressFeed
from pipeline.observe.summary import RunFacts, error_rate_exceeded, summary_dict
from pipeline.observe.trace_ids import new_trace_id
from pipeline.prepare.batching import input_batches
from pipeline.prepare.preparer import ItemRequests, PreparedBatch, Preparer
from pipeline.read.ids import SeenIds
from pipeline.read.reader_thread import ThreadFeed
from pipeline.read.sources import check_inputs, never_block
from pipeline.run.assembly import build_engine, http_transport, item_requests, workflow_models
from pipeline.run.interrupts import (
    Interrupted,
    ended_at_deadline,
    run_until_signal,
    run_until_stopped,
)
from pipeline.run.result import EXIT_ERROR_RATE, EXIT_INTERNAL, EXIT_OK, RunResult
from pipeline.run.telemetry import skipped_items, span_recorder, write_summary
from pipeline.spend.budget import UNPRICED_HINT, deadline_left, deadline_reached
from pipeline.spend.ledger import Ledger
from pipeline.spend.prices import pricing_for
from pipeline.state.checkpoint import ArrowEncoding, CheckpointWriter
from pipeline.state.fingerprint import input_identity, run_fingerprint
from pipeline.state.resume import ResumePoint, skip_committed, with_digests
from pipeline.state.spent import SpendingKeeper
from pipeline.state.store import RunState
from pipeline.write.final import (
    DirectWriter,
    FinalWriters,
    check_output_paths,
    parquet_result_schema,
    sweep_output_temps,
)
from pipeline.write.writers import output_format, typed_output

if TYPE_CHECKING:
    import pyarrow as pa

TransportFactory = Callable[[RunConfig], AbstractAsyncContextManager[Transport]]


async def run(
    config: RunConfig,
    progress: Progress,
    transport: TransportFactory = http_transport,
    hosted: Hosted | None = None,
) -> RunResult:
    """The whole run; `transport` is the HTTP client, or an in-process one in tests.
    A `hosted` run (sluice serve) shares its host's cache, limits and client, and is
    stopped by its host (engines/hosting.py)."""
    if hosted is not None:  # the host paces the collector for all its runs
        return await _run_job(config, progress, transport, hosted)
    with _collector_paced():
        return await _run_job(config, progress, transport, None)


# A run makes a few small objects per event, and the cyclic collector's default pace
# (every 700 allocations) kept re-scanning the long-lived heap: 5-10% of a run's CPU at
# latency 0 (make bench). What was made before the run is frozen out of its scans, and
# the young generation is collected less often; memory stays flat (cycles are rare).
GC_YOUNG_THRESHOLD = 20_000


@contextlib.contextmanager
def _collector_paced() -> Iterator[None]:
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


async def _run_job(
    config: RunConfig, progress: Progress, transport: TransportFactory, hosted: Hosted | None
) -> RunResult:
    started_at, started = time.time(), time.monotonic()  # the events' clock (SystemClock)
    trace_id = config.observe.trace_id or new_trace_id()
    stats = RunStats()
    ledger = Ledger(pricing_for(config.spend))
    try:
        builder, state = _begin(config, ledger)
    except SluiceError as exc:
        # Refused before it began (bad input, unwritable output, lock held): a refused
        # run touches nothing, not even the summary of the run it was refused for.
        return RunResult(exc.exit_code, stats, time.monotonic() - started, exc)
    try:
        recorder = span_recorder(config, trace_id, started, started_at)
    except SluiceError as exc:  # the trace file, checked in _begin, vanished since
        if state is not None:
            state.close()
        return RunResult(exc.exit_code, stats, time.monotonic() - started, exc)
    host_sinks = () if hosted is None else hosted.sinks
    events = Broadcast(stats, ledger, ProgressFeed(progress, stats), *host_sinks)
    if recorder is not None:
        events.add(recorder)
    run = _Run(config, builder, events, transport, ledger, lambda: time.monotonic() - started)
    run.hosted = hosted
    stopped_by = None
    error: SluiceError | None = None
    exit_code = EXIT_INTERNAL
    try:
        await run.until_done(state)
        exit_code = _finished_exit_code(config, stats)
    except _Stopped as stop:
        exit_code = stop.exit_code
    except BudgetReached as reached:
        exit_code, error, stopped_by = reached.exit_code, reached, reached.budget
    except SluiceError as exc:
        exit_code, error = exc.exit_code, exc
    except Interrupted as exc:
        exit_code = exc.exit_code
    finally:
        ended = time.monotonic()
        if recorder is not None:
            message = None if error is None else error.message
            run.warnings.extend(recorder.finish(ended, exit_code, message))
    wall = ended - started
    ledger.ran_for(wall)
    facts = RunFacts.of(config, trace_id, started_at, started_at + wall)
    skipped = skipped_items(config, stats, exit_code)
    summary = summary_dict(stats, ledger, facts, exit_code, stopped_by, skipped)
    result = RunResult(exit_code, stats, wall, error, summary, warnings=run.warnings)
    resumable = error is None or error.resumable
    if exit_code not in (EXIT_OK, EXIT_ERROR_RATE) and resumable and _has_state(config):
        result.resumable_in = config.state.directory
    if config.output.summary is not None:
        write_summary(config.output.summary, result.summary)
    return result


def _begin(config: RunConfig, ledger: Ledger) -> tuple[ItemRequests, RunState | None]:
    """Everything that can turn a run away, before it touches a file."""
    check_inputs(config.read.inputs)
    check_output_paths(config.output)
    builder = item_requests(config)
    for model in (config.request.model, config.request.fallback_model, *workflow_models(config)):
        if config.spend.max_cost is not None and model and ledger.pricing.price_of(model) is None:
            raise ConfigError(f"--max-cost needs a price for {model!r}: {UNPRICED_HINT}")
    state = None
    if config.state.directory is not None:
        state = RunState(config.state.directory)
        state.open(_fingerprint(config), config.state.fresh)
        ledger.earlier = state.spent
    # Ours now (the lock is held, or there is no state): leftovers of killed runs can go.
    sweep_output_temps(config.output)
    return builder, state


class _Stopped(Exception):
    """A signal stopped the run gracefully: what was complete is committed, not the rest."""

    def __init__(self, exit_code: int) -> None:
        self.exit_code = exit_code


class _Run:
    """The stages of one run, built from the config and connected to its event stream."""

    def __init__(
        self,
        config: RunConfig,
        builder: ItemRequests,
        events: Broadcast,
        transport: TransportFactory,
        ledger: Ledger,
        elapsed: Callable[[], float],
    ) -> None:
        self.config = config
        self.builder = builder
        self.events = events
        self.transport = transport
        self.ledger = ledger
        self.elapsed = elapsed  # seconds since the attempt began
        self.warnings: list[str] = []
        self.hosted: Hosted | None = None

    async def until_done(self, state: RunState | None) -> None:
        """Every item answered and the final files published; `_Stopped` when a signal
        stopped it first."""
        if state is None:
            await self._without_state()
            return
        keeper = SpendingKeeper(state.directory, self.ledger, self.elapsed)
        try:
            self.warnings.extend(state.warnings)  # damaged parts found, and redone
            self.events.emit(JobResumed(state.totals.tally()))
            self.events.add(keeper)
            writer = CheckpointWriter(
                state.parts_dir,
                self.config.read.id_field,
                self._arrow_encoding(state),
                self.config.output.result_fields,
                self.config.output.drop_skipped,
            )
            await self._drive(writer, state.resume)
            self._finalize(state, state.resume.batches + writer.batches_written)
        except BaseException:
            self._record_spending(state, keeper)
            raise
        finally:
            state.close()

    def _record_spending(self, state: RunState, keeper: SpendingKeeper) -> None:
        """The job stops short: what it spent must count against its budgets next time."""
        spent_under_budget = self.config.spend.budgeted and self.ledger.requests > 0
        if not (state.worth_keeping() or spent_under_budget):
            return
        try:
            keeper.save()
        except OSError as exc:
            self.warnings.append(f"could not record what this run spent: {exc}")

    async def _without_state(self) -> None:
        writer = DirectWriter(self.config.output, self.config.read.id_field, self._result_schema())
        try:
            await self._drive(writer, None)
            writer.files.commit()
        except BaseException:
            writer.files.abort()
            raise

    async def _drive(self, writer: OutcomeWriter, resume: ResumePoint | None) -> None:
        """Read, prepare and dispatch until the input ends, writing into `writer`."""
        left = deadline_left(self.config.spend, self.ledger.earlier)
        if left is not None and left <= 0:
            raise deadline_reached(self.config.spend)
        seen = SeenIds()
        with self._response_memo() as memo:
            feed: ThreadFeed[PreparedBatch] | None = None
            try:
                async with self._transport() as transport:
                    engine = self._engine(transport, writer, memo)
                    batches = self._prepared_batches(seen, resume, memo)
                    feed = ThreadFeed(batches, self._read_inline_when(engine))
                    work = engine.run(feed.next)
                    reached = deadline_reached(self.config.spend)
                    with ended_at_deadline(engine, left, reached, self.config.traffic.timeout):
                        stopped = await self._until_done_or_stopped(work, engine)
            finally:
                if feed is not None:
                    feed.close()
                seen.close()
        if stopped is not None:
            raise _Stopped(stopped)

    def _prepared_batches(
        self, seen: SeenIds, resume: ResumePoint | None, memo: ResponseMemo | None
    ) -> Iterator[PreparedBatch]:
        batches = input_batches(self.config.read, seen)  # a shard's: its own, numbered 0, 1, …
        if resume is not None:
            batches = skip_committed(with_digests(batches), resume)
        fields = self.config.output.result_fields
        if memo is None:
            return Preparer(self.builder, result_fields=fields)(batches)
        return Preparer(self.builder, memo.key, memo.lookup, fields)(batches)

    def _read_inline_when(self, engine: Engine) -> Callable[[], bool] | None:
        """When the next batch may be read on the loop's own thread: while the engine has
        nothing in flight, if no input can block. Never under `sluice serve`, whose loop
        carries other jobs' requests."""
        if self.hosted is not None or not never_block(self.config.read.inputs):
            return None
        return engine.idle

    def _transport(self) -> AbstractAsyncContextManager[Transport]:
        if self.hosted is not None:  # the host's, open for as long as the host runs
            return contextlib.nullcontext(self.hosted.transport)
        return self.transport(self.config)

    async def _until_done_or_stopped(
        self, work: Coroutine[Any, Any, None], engine: Engine
    ) -> int | None:
        if self.hosted is not None:
            return await run_until_stopped(work, engine, self.hosted.stop)
        return await run_until_signal(work, engine, self.config.grace)

    @contextlib.contextmanager
    def _response_memo(self) -> Iterator[ResponseMemo | None]:
        settings = self.config.cache
        if settings is None:
            yield None
            return
        with contextlib.ExitStack() as opened:
            try:
                memo = opened.enter_context(
                    response_memo(settings, self.config.connection.base_url, self.events)
                )
            except CacheUnavailable as exc:
                self.warnings.append(f"{exc}; running without the cache")
                yield None
                return
            self.events.emit(CacheOpened(settings.directory))
            yield memo

    def _engine(
        self, transport: Transport, writer: OutcomeWriter, memo: ResponseMemo | None
    ) -> Engine:
        pool = self.hosted.traffic if self.hosted is not None else None
        return build_engine(
            self.config, transport, writer, memo, self.events, self.ledger, self.builder, pool
        )

    def _result_schema(self) -> pa.Schema | None:
        config = self.config
        return parquet_result_schema(
            config.output, config.read.inputs, config.read.id_field, config.request
        )

    def _arrow_encoding(self, state: RunState) -> ArrowEncoding | None:
        if output_format(self.config.output.results) is not FileFormat.PARQUET:
            return None
        return ArrowEncoding(self._parquet_schema(state), typed_output(self.config.output))

    def _parquet_schema(self, state: RunState) -> pa.Schema | None:
        """What committed parts were written with, when there are any (the one schema of
        the job), else what the inputs make it; None for results that are not Parquet."""
        if output_format(self.config.output.results) is not FileFormat.PARQUET:
            return None
        return state.results_schema() or self._result_schema()

    def _finalize(self, state: RunState, batches: int) -> None:
        """Every batch is committed: assemble the final files in input order, atomically."""
        files = FinalWriters(self.config.output, self._parquet_schema(state))
        try:
            state.assemble(files.results, files.quarantine, batches)
            files.commit()
        except BaseException:
            files.abort()
            raise
        state.finish()


def _has_state(config: RunConfig) -> bool:
    directory = config.state.directory
    return directory is not None and os.path.isdir(directory)


def _finished_exit_code(config: RunConfig, stats: RunStats) -> int:
    return EXIT_ERROR_RATE if error_rate_exceeded(stats, config.max_error_rate) else EXIT_OK


def _fingerprint(config: RunConfig) -> dict[str, Any]:
    try:
        inputs = [input_identity(path) for path in config.read.inputs]
    except OSError as exc:  # unreadable (permissions, vanished since checked)
        raise InputUnreadable(f"cannot read {exc.filename!r}: {exc.strerror}") from exc
    return run_fingerprint(config, inputs)
