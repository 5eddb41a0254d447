"""One run's moving parts: reading, preparing, the engine and the transport.

Whatever the outputs are (checkpoints or the final files directly), a job reads
the inputs in its own thread, prepares batches there, and drives the engine
until the input ends or a signal stops it.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager

from pipeline.cache.memo import ResponseMemo
from pipeline.cache.store import CacheUnavailable, ResponseCache
from pipeline.core.clock import Clock
from pipeline.core.config import RunConfig
from pipeline.core.counters import CacheCounts, RunStats
from pipeline.core.redact import Redactor
from pipeline.dispatch.dispatcher import Dispatcher
from pipeline.dispatch.transport import Transport
from pipeline.engines.asyncio_pool import AsyncioEngine
from pipeline.engines.protocol import Engine, OutcomeWriter, Progress
from pipeline.prepare.batching import batched
from pipeline.prepare.preparer import PreparedBatch, Preparer
from pipeline.prepare.request_builder import RequestBuilder
from pipeline.read.ids import SeenIds, identify
from pipeline.read.reader_thread import ThreadFeed
from pipeline.read.requeue import read_quarantine
from pipeline.read.sources import read_records
from pipeline.run.interrupts import run_until_signal
from pipeline.state.resume import ResumePoint, skip_committed, with_digests
from pipeline.traffic.control import TrafficControl

TransportFactory = Callable[[RunConfig], AbstractAsyncContextManager[Transport]]


class RunWiring:
    """Reading, the engine and the transport of one run, whatever it writes into."""

    def __init__(
        self,
        config: RunConfig,
        builder: RequestBuilder,
        progress: Progress,
        stats: RunStats,
        warnings: list[str],
        transport_factory: TransportFactory,
        clock: Clock,
    ) -> None:
        self.config = config
        self.builder = builder
        self.progress = progress
        self.stats = stats
        self.warnings = warnings
        self.transport_factory = transport_factory
        self.clock = clock

    async def run(self, writer: OutcomeWriter, resume: ResumePoint | None) -> int | None:
        """Until the input ends (None) or a signal stops it gracefully (its exit code)."""
        seen = SeenIds()
        with self._response_memo() as memo:
            feed = ThreadFeed(self._prepared_batches(seen, resume, memo))
            try:
                async with self.transport_factory(self.config) as transport:
                    engine = self._engine(transport, writer, memo)
                    work = engine.run(feed.next)
                    return await run_until_signal(work, engine, self.config.grace)
            finally:
                feed.close()
                seen.close()

    def _prepared_batches(
        self, seen: SeenIds, resume: ResumePoint | None, memo: ResponseMemo | None
    ) -> Iterator[PreparedBatch]:
        read = read_quarantine if self.config.requeue else read_records
        items = identify(read(self.config.inputs), self.config.id_field, seen)
        batches = batched(items, self.config.batch_size)
        if resume is not None:
            batches = skip_committed(with_digests(batches), resume)
        fields = self.config.result_fields
        if memo is None:
            return Preparer(self.builder, result_fields=fields)(batches)
        return Preparer(self.builder, memo.key, memo.lookup, fields)(batches)

    @contextlib.contextmanager
    def _response_memo(self) -> Iterator[ResponseMemo | None]:
        settings = self.config.cache
        if settings is None:
            yield None
            return
        try:
            cache = ResponseCache(settings.directory, settings.size_limit, settings.ttl)
        except CacheUnavailable as exc:
            self.warnings.append(f"{exc}; running without the cache")
            yield None
            return
        self.stats.cache = CacheCounts()
        memo = ResponseMemo(cache, self.config.base_url, settings.read, self.stats.cache)
        try:
            yield memo
        finally:
            memo.save()  # answers of requests cut short by a stop
            cache.close()

    def _engine(
        self, transport: Transport, writer: OutcomeWriter, memo: ResponseMemo | None
    ) -> Engine:
        config, stats, clock = self.config, self.stats, self.clock
        redact = Redactor(config.api_key)
        traffic = TrafficControl(
            config.traffic,
            config.concurrency,
            config.timeout,
            clock,
            stats.traffic,
            random.Random(),
        )
        dispatcher = Dispatcher(
            transport, traffic, config.retry, stats, redact, clock, random.Random(), memo
        )
        # Enough batches ahead of the writer that one slow item does not idle the pool,
        # and that commits can take several complete batches at once.
        window = max(16, 4 * -(-config.concurrency // config.batch_size))
        return AsyncioEngine(
            dispatcher, writer, stats, self.progress, config.concurrency, window, memo
        )
