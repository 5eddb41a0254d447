"""Putting one run's sending machinery together from its config: the HTTP transport,
traffic control (the main model's, and a fallback model's of its own), the
dispatcher with its budget gate, and the worker pool that drives them."""

from __future__ import annotations

import random

from pipeline.cache.memo import ResponseMemo
from pipeline.core.clock import SystemClock
from pipeline.core.config import Endpoint, RunConfig
from pipeline.core.events import EventSink
from pipeline.core.redact import Redactor
from pipeline.dispatch.dispatcher import Dispatcher, Fallback
from pipeline.dispatch.transport import HttpTransport, Transport
from pipeline.engines.asyncio_pool import AsyncioEngine
from pipeline.engines.protocol import OutcomeWriter
from pipeline.prepare.packing import PackLimits
from pipeline.spend.budget import BudgetGate
from pipeline.spend.ledger import Ledger
from pipeline.traffic.control import TrafficControl


def http_transport(config: RunConfig) -> HttpTransport:
    connection = config.connection
    return HttpTransport(
        connection.base_url,
        connection.api_key,
        config.traffic.concurrency,
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
) -> AsyncioEngine:
    clock = SystemClock()
    traffic = TrafficControl(config.traffic, clock, events, random.Random())
    budget = BudgetGate(config.spend, ledger) if config.spend.budgeted else None
    fallback = None
    if config.request.fallback_model is not None:
        # Its own limits, breaker and timeouts: providers count each model apart.
        own_traffic = TrafficControl(config.traffic, clock, events, random.Random())
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
    return AsyncioEngine(dispatcher, writer, events, concurrency, window, memo, landing, packing)
