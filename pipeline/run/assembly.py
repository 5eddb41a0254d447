"""Putting one run's sending machinery together from its config: the HTTP transport,
traffic control (the main model's, a fallback model's, and each workflow step
model's of its own), the dispatcher with its budget gate, and the worker pool
that drives them (with a workflow, through each item's steps)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Callable

from pipeline.cache.memo import ResponseMemo
from pipeline.core.clock import SystemClock
from pipeline.core.config import Endpoint, RunConfig
from pipeline.core.events import EventSink
from pipeline.core.redact import Redactor
from pipeline.dispatch.dispatcher import Dispatcher, Fallback
from pipeline.dispatch.transport import HttpTransport, Transport
from pipeline.engines.asyncio_pool import AsyncioEngine
from pipeline.engines.hosting import TrafficPool
from pipeline.engines.protocol import Engine, OutcomeWriter
from pipeline.prepare.packing import PackLimits
from pipeline.prepare.preparer import ItemRequests
from pipeline.prepare.request_builder import RequestBuilder
from pipeline.spend.budget import BudgetGate
from pipeline.spend.ledger import Ledger
from pipeline.spend.prices import pricing_for
from pipeline.traffic.limiter import Limits, RateLimiter
from pipeline.traffic.protocol import Limiter


def item_requests(config: RunConfig) -> ItemRequests:
    """What makes each item's request: the run's builder, or its workflow's steps'."""
    if config.workflow is None:
        return RequestBuilder(config.request)
    # The workflow machinery is imported by the runs that have one.
    from pipeline.workflow.calls import load_calls
    from pipeline.workflow.step_builders import StepBuilders

    return StepBuilders(config.request, config.workflow, load_calls(config.workflow))


def account_of(config: RunConfig) -> tuple[str, str | None]:
    """Whose limits a run draws on: the endpoint and the key (kept as a digest wherever
    it is stored)."""
    key = config.connection.api_key
    return config.connection.base_url, key.reveal() if key is not None else None


def http_transport(config: RunConfig) -> HttpTransport:
    connection = config.connection
    # --concurrency holds for each model a workflow asks (providers count them apart).
    models = max(1, len(workflow_models(config)))
    return HttpTransport(
        connection.base_url,
        connection.api_key,
        config.traffic.concurrency * models,
        connection.max_response_size,
        config.traffic.idle_timeout,
    )


def build_engine(
    config: RunConfig,
    transport: Transport,
    writer: OutcomeWriter,
    memo: ResponseMemo | None,
    events: EventSink,
    ledger: Ledger,
    builder: ItemRequests,
    pool: TrafficPool | None = None,
) -> Engine:
    """The run's engine; `pool` is a host's traffic control (else the run has its own)."""
    if config.engine.kind == "ray":  # imported only then: Ray is an optional extra
        from pipeline.engines.ray_engine import RayEngine

        clock = pool.clock if pool is not None else SystemClock()
        return RayEngine(config, writer, events, clock, worker_engine)
    pool = pool or TrafficPool(config.traffic, events, account=account_of(config))
    return local_engine(config, transport, writer, memo, events, ledger, builder, pool)


@contextlib.asynccontextmanager
async def worker_engine(
    config: RunConfig,
    writer: OutcomeWriter,
    memo: ResponseMemo | None,
    events: EventSink,
    granted: Callable[[str, Limits], RateLimiter],
) -> AsyncIterator[Engine]:
    """A Ray worker's engine (engines/ray_worker.py): the local one, with its own HTTP
    client and the limits the cluster's keeper grants."""
    async with http_transport(config) as transport:
        pool = TrafficPool(config.traffic, events, account=account_of(config), granted=granted)
        ledger = Ledger(pricing_for(config.spend))
        yield local_engine(
            config, transport, writer, memo, events, ledger, item_requests(config), pool
        )


def local_engine(
    config: RunConfig,
    transport: Transport,
    writer: OutcomeWriter,
    memo: ResponseMemo | None,
    events: EventSink,
    ledger: Ledger,
    builder: ItemRequests,
    pool: TrafficPool,
) -> AsyncioEngine:
    """The asyncio worker pool of this process, and the dispatcher it drives."""
    clock = pool.clock
    traffic = pool.for_model(config.request.model)
    by_model: dict[str, Limiter] = {}
    for model in workflow_models(config):
        if model != config.request.model:
            by_model[model] = pool.for_model(model)
    budget = BudgetGate(config.spend, ledger) if config.spend.budgeted else None
    fallback = None
    if config.request.fallback_model is not None:
        # Its own limits, breaker and timeouts: providers count each model apart.
        own_traffic = pool.for_model(config.request.fallback_model)
        fallback = Fallback(config.request.fallback_model, own_traffic)
    dispatcher = Dispatcher(
        transport,
        traffic,
        config.retry,
        events,
        Redactor(config.connection.api_key),
        clock,
        random.Random(),
        memo,
        budget,
        fallback,
        by_model,
    )
    concurrency, batch_size = config.traffic.concurrency, config.read.batch_size
    # Enough batches ahead of the writer that one slow item does not idle the pool,
    # and that commits can take several complete batches at once.
    window = max(16, 4 * -(-concurrency // batch_size))
    # A budget stop lets requests on the wire land: they are paid for.
    landing = config.traffic.timeout
    packing = None
    request = config.request
    if request.endpoint is Endpoint.EMBEDDINGS and request.inputs_per_request > 1:
        packing = PackLimits(inputs=request.inputs_per_request)
    workflow = None
    if config.workflow is not None:
        from pipeline.workflow.runner import WorkflowRunner
        from pipeline.workflow.step_builders import StepBuilders

        assert isinstance(builder, StepBuilders)  # item_requests made it for the workflow
        workflow = WorkflowRunner(builder, dispatcher, memo, events)
        packing = None  # a step's embeddings go one per request
    return AsyncioEngine(
        dispatcher, writer, events, concurrency, window, memo, landing, packing, workflow
    )


def workflow_models(config: RunConfig) -> list[str]:
    """The models a workflow's steps ask; none without a workflow (whose machinery is
    imported only by the runs that have one)."""
    if config.workflow is None:
        return []
    from pipeline.workflow.requests import step_models

    return step_models(config.request, config.workflow)
