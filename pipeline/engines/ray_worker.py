"""One worker of a `--engine ray` run: today's asyncio engine, fed batches by the driver.

The driver (ray_engine.py) reads, prepares and writes; a worker only sends. It
builds the dispatcher and worker pool a local run builds (run/assembly.py), with
its own HTTP client, rate limits granted by the cluster's keeper
(ray_limits.py), and the response cache opened from its directory (storage every
node reaches). `process` takes one prepared batch and returns its outcomes once
all are known, with what happened meanwhile: the events the driver's summary,
metrics and traces are made of.

The API key never travels through Ray (its messages are stored by the cluster):
each worker reads it from its own environment, the variable the driver read it
from. A local Ray instance's workers inherit the driver's environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace

from pipeline.cache.memo import ResponseMemo, response_memo
from pipeline.cache.store import CacheUnavailable
from pipeline.core.config import ConnectionConfig, RunConfig, Secret
from pipeline.core.errors import ConfigError, SluiceError
from pipeline.core.events import (
    BatchesCommitted,
    BatchStarted,
    CacheOpened,
    Event,
    EventSink,
    Heartbeat,
    ItemSettled,
)
from pipeline.core.models import Batch, Outcome
from pipeline.engines.protocol import Engine, OutcomeWriter
from pipeline.engines.ray_limits import Grant, GrantedLimiter, LimitsKeeper, Report
from pipeline.prepare.preparer import PreparedBatch
from pipeline.traffic.limiter import Limits, RateLimiter
from pipeline.traffic.shared_limits import SharedLimitsFile, SharedRateLimiter

# How a worker gets its engine: the run's assembly (run/assembly.py, a layer above),
# given the config, where complete batches go, the cache, the event sink, and how to
# make each account and model's limiter. Open for as long as the worker sends.
MakeLimiter = Callable[[str, Limits], RateLimiter]  # an account and model's limiter
EngineMaker = Callable[
    [RunConfig, OutcomeWriter, ResponseMemo | None, EventSink, MakeLimiter],
    AbstractAsyncContextManager[Engine],
]

# The driver tells these itself (it starts, settles and commits batches), or has no use for them.
_DRIVER_TELLS = (BatchStarted, BatchesCommitted, ItemSettled, Heartbeat, CacheOpened)


@dataclass(slots=True)
class BatchDone:
    """A worker's answer for one batch."""

    outcomes: list[Outcome] | None  # None: stopped before the batch completed
    events: list[Event] = field(default_factory=list)  # all it had to tell since its last answer
    error: SluiceError | None = None  # the run must end (a refused key, a wrong template...)


def for_workers(config: RunConfig) -> RunConfig:
    """The run's config as workers get it: no key (each reads its own), a local engine,
    the cache's directory absolute (a worker's working directory is Ray's choice), and
    no budget (the driver keeps the one budget there is, --deadline)."""
    cache = config.cache
    if cache is not None:
        cache = cache._replace(directory=os.path.abspath(cache.directory))
    return replace(
        config,
        connection=config.connection._replace(api_key=None),
        engine=config.engine._replace(kind="asyncio"),
        cache=cache,
        spend=config.spend._replace(max_cost=None, max_requests=None, deadline=None),
    )


class _Collected:
    """The worker's event sink: kept until the next answer carries it to the driver."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        if not isinstance(event, _DRIVER_TELLS):
            self.events.append(event)

    def take(self) -> list[Event]:
        taken, self.events = self.events, []
        return taken


class SluiceWorker:
    """The actor's class (made remote by ray_engine.py). `keeper` names the limits actor
    (a name, not its handle: Ray restarts an actor only from arguments it holds inline)."""

    def __init__(self, config: RunConfig, keyed: bool, keeper: str, make: EngineMaker) -> None:
        self._config = config
        self._make = make
        self._keyed = keyed  # the driver had a key: this worker must find one too
        self._keeper_name = keeper
        self._events = _Collected()
        self._feed: asyncio.Queue[PreparedBatch | None] = asyncio.Queue()
        self._waiting: dict[int, asyncio.Future[list[Outcome] | None]] = {}
        self._running: asyncio.Task[None] | None = None
        self._engine: Engine | None = None
        self._error: SluiceError | None = None

    async def process(self, prepared: PreparedBatch) -> BatchDone:
        if self._running is None:
            self._running = asyncio.get_running_loop().create_task(self._serve())
        if self._error is not None:
            return BatchDone(None, self._events.take(), self._error)
        answer: asyncio.Future[list[Outcome] | None] = asyncio.get_running_loop().create_future()
        self._waiting[prepared.batch.index] = answer
        await self._feed.put(prepared)
        outcomes = await answer
        return BatchDone(outcomes, self._events.take(), self._error)

    async def stop(self, grace: float) -> None:
        """Send nothing new; requests in flight land for `grace` seconds; batches then
        incomplete are answered as stopped."""
        if self._engine is not None and self._engine.running:
            self._engine.stop(grace)
        elif self._running is not None:
            self._running.cancel()
        await self.close()

    async def close(self) -> list[Event]:
        """The input ended: finish, let go of the client and the cache; the last events."""
        await self._feed.put(None)
        if self._running is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._running
        self._answer_rest(None)
        return self._events.take()

    async def write(self, batches: list[tuple[Batch, list[Outcome]]]) -> None:
        """The engine's OutcomeWriter: a complete batch goes back to the driver."""
        for batch, outcomes in batches:
            answer = self._waiting.pop(batch.index, None)
            if answer is not None and not answer.done():
                answer.set_result(outcomes)

    async def _serve(self) -> None:
        try:
            config = replace(self._config, connection=self._connection())
            async with (
                self._memo(config) as memo,
                self._make(config, self, memo, self._events, self._granted) as engine,
            ):
                self._engine = engine
                await engine.run(self._next)
        except SluiceError as error:
            self._error = error
            self._answer_rest(None)

    async def _next(self) -> PreparedBatch | None:
        return await self._feed.get()

    def _answer_rest(self, outcomes: list[Outcome] | None) -> None:
        for answer in self._waiting.values():
            if not answer.done():
                answer.set_result(outcomes)
        self._waiting.clear()

    def _connection(self) -> ConnectionConfig:
        variable = self._config.engine.key_variable
        key = os.environ.get(variable, "")
        if self._keyed and not key:
            raise ConfigError(
                f"the Ray worker on {socket.gethostname()} has no {variable} in its "
                "environment: set it on every node of the cluster"
            )
        return self._config.connection._replace(api_key=Secret(key) if key else None)

    @contextlib.asynccontextmanager
    async def _memo(self, config: RunConfig) -> AsyncIterator[ResponseMemo | None]:
        settings = config.cache
        if settings is None:
            yield None
            return
        with contextlib.ExitStack() as opened:
            try:
                memo = opened.enter_context(
                    response_memo(settings, config.connection.base_url, self._events)
                )
            except CacheUnavailable as exc:
                raise ConfigError(
                    f"the Ray worker on {socket.gethostname()} cannot open the response cache: "
                    f"{exc} (with --engine ray it must be on storage every node reaches)"
                ) from exc
            yield memo

    def _granted(self, key: str, limits: Limits) -> GrantedLimiter:
        import ray  # this runs in a Ray worker: Ray is there

        keeper = ray.get_actor(self._keeper_name)

        def ask(
            key: str, limits: Limits, want: int, tokens: float, report: Report
        ) -> Awaitable[Grant]:
            ref: Awaitable[Grant] = keeper.grant.remote(key, limits, want, tokens, report)
            return ref

        def tell_pause(key: str, limits: Limits, seconds: float, kinds: list[str]) -> None:
            keeper.pause.remote(key, limits, seconds, kinds)

        return GrantedLimiter(key, limits, ask, tell_pause, self._config.traffic.concurrency)


class KeeperActor:
    """The limits actor's class (made remote by ray_engine.py): the cluster's LimitsKeeper,
    on the wall clock; its limiters kept in the `shared` limits file when there is one."""

    def __init__(self, shared: str | None) -> None:
        if shared is None:
            self._keeper = LimitsKeeper()
            return
        limits_file = SharedLimitsFile(shared)

        def in_the_file(key: str, limits: Limits, now: float) -> RateLimiter:
            return SharedRateLimiter(limits_file, key, limits)

        self._keeper = LimitsKeeper(in_the_file)

    def grant(self, key: str, limits: Limits, want: int, tokens: float, report: Report) -> Grant:
        return self._keeper.grant(key, limits, want, tokens, report, time.time())

    def pause(self, key: str, limits: Limits, seconds: float, kinds: list[str]) -> None:
        self._keeper.pause(key, limits, seconds, kinds, time.time())
