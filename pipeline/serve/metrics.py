"""The Prometheus metrics of `sluice serve` (`GET /metrics`): jobs, items, requests,
tokens, cost, latencies and the server's own HTTP traffic, across every job it runs.

Each job's run events (core/events.py) reach one shared sink (`ServeMetrics.sink()`),
which counts them into series labelled by model, outcome or status, never by job:
the job count grows without bound, a scrape must not. For the same reason model
names, the one label value that comes from what users send (a batch line may name
any model), are bounded: past `MAX_LABEL_VALUES` distinct names, or a name longer
than `LABEL_LENGTH_LIMIT`, a model reads `other`; a request without one reads
`unknown`. Routes are bounded the same way, as a guard against a caller passing raw
paths instead of route templates.

The metrics live in a registry of their own (never prometheus_client's global
one), so several servers in one process (tests) never share a count. The metric
objects lock their own updates, so jobs may report from any thread.
`_created` series are prometheus_client's default for a live endpoint and are
kept: turning them off is a process-wide switch, not ours to flip.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from pipeline.core.events import AttemptEnded, Event, EventSink, ItemSettled
from pipeline.core.models import Outcome, Success, Usage
from pipeline.serve.jobs import STATUSES
from pipeline.spend.prices import Pricing

JOB_STATUSES = STATUSES  # as the job store names them
ITEM_STATUSES = ("ok", "cached", "skipped", "quarantined")
TOKEN_KINDS = ("prompt", "completion")
# An LLM answer takes from tens of milliseconds (a cached prefix, a short label) to
# minutes (a long generation); sluice's own HTTP answers are mostly milliseconds, but a
# synchronous answer waits for the model.
REQUEST_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
HTTP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
MAX_LABEL_VALUES = 64
LABEL_LENGTH_LIMIT = 128
OTHER = "other"
UNKNOWN_MODEL = "unknown"


class BoundedLabel:
    """The values one label may take: the first `limit` distinct ones as they come (each
    at most `length_limit` characters), then `other` for every newcomer."""

    def __init__(
        self, limit: int = MAX_LABEL_VALUES, length_limit: int = LABEL_LENGTH_LIMIT
    ) -> None:
        self._limit = limit
        self._length_limit = length_limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if len(value) > self._length_limit:
            return OTHER
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(value)
            return value


def item_status(outcome: Outcome) -> str:
    """How an item ended, as `sluice_serve_items_total` labels it (one of ITEM_STATUSES)."""
    if not isinstance(outcome, Success):
        return "quarantined"
    if outcome.skipped:
        return "skipped"
    return "cached" if outcome.cached else "ok"


class _RunEventMeter:
    """The event sink every job's run reports to: requests, tokens, cost, items, latency."""

    def __init__(self, registry: CollectorRegistry, pricing: Pricing) -> None:
        self._pricing = pricing
        self._models = BoundedLabel()
        self._requests = Counter(
            "sluice_serve_requests",
            "Requests sent to the API by all jobs, by model and outcome "
            "(ok, or the error kind of the attempt: rate_limited, transient, ...).",
            ["model", "outcome"],
            registry=registry,
        )
        self._tokens = Counter(
            "sluice_serve_tokens",
            "Tokens paid for by all jobs, by model and kind (prompt, completion). "
            "Answers reused from the response cache cost none.",
            ["model", "kind"],
            registry=registry,
        )
        self._cost = Counter(
            "sluice_serve_cost_usd",
            "Spend of all jobs in US dollars, by model, from the answers' usage and the "
            "price table; models without a price have no series.",
            ["model"],
            registry=registry,
        )
        self._items = Counter(
            "sluice_serve_items",
            "Items settled by all jobs: ok (answered by a request of their own), cached "
            "(from the response cache), skipped (--where), quarantined.",
            ["status"],
            registry=registry,
        )
        self._latency = Histogram(
            "sluice_serve_request_latency_seconds",
            "Seconds from sending a request to the last byte of its answer, by model.",
            ["model"],
            registry=registry,
            buckets=REQUEST_LATENCY_BUCKETS,
        )
        for status in ITEM_STATUSES:  # present at 0 from the start, so rate() sees them
            self._items.labels(status)

    def emit(self, event: Event) -> None:
        if isinstance(event, AttemptEnded):
            self._attempt_ended(event)
        elif isinstance(event, ItemSettled):
            self._items.labels(item_status(event.outcome)).inc()

    def _attempt_ended(self, event: AttemptEnded) -> None:
        model = self._models(event.model or UNKNOWN_MODEL)
        self._requests.labels(model, event.error or "ok").inc()
        if event.latency is not None:  # an answer came (any status)
            self._latency.labels(model).observe(event.latency)
        if event.usage is not None:  # the answer reported its tokens: paid for
            self._paid(event.model, model, event.usage)

    def _paid(self, model: str | None, label: str, usage: Usage) -> None:
        self._tokens.labels(label, "prompt").inc(usage.prompt_tokens)
        self._tokens.labels(label, "completion").inc(usage.completion_tokens)
        price = self._pricing.price_of(model)  # by the real name, not the bounded label
        if price is not None:
            cost = price.cost(
                usage.prompt_tokens, usage.completion_tokens, usage.cached_prompt_tokens
            )
            self._cost.labels(label).inc(cost)


class ServeMetrics:
    """Everything `GET /metrics` reports, in a registry of its own."""

    def __init__(self, pricing: Pricing) -> None:
        self._registry = CollectorRegistry(auto_describe=True)
        self._meter = _RunEventMeter(self._registry, pricing)
        self._routes = BoundedLabel()
        self._jobs = Gauge(
            "sluice_serve_jobs",
            "Jobs the server knows, by status (queued, running, succeeded, failed, cancelled).",
            ["status"],
            registry=self._registry,
        )
        self._queue_depth = Gauge(
            "sluice_serve_queue_depth",
            "Jobs accepted and waiting for a free slot to start.",
            registry=self._registry,
        )
        self._http_requests = Counter(
            "sluice_serve_http_requests",
            "HTTP requests the server answered, by route template and status code.",
            ["route", "status"],
            registry=self._registry,
        )
        self._http_duration = Histogram(
            "sluice_serve_http_request_duration_seconds",
            "Seconds the server took to answer an HTTP request, by route template.",
            ["route"],
            registry=self._registry,
            buckets=HTTP_DURATION_BUCKETS,
        )
        self.set_jobs({})

    def sink(self) -> EventSink:
        """The one sink every job's run events go to (shared: no series is per job)."""
        return self._meter

    def set_jobs(self, by_status: Mapping[str, int]) -> None:
        """The number of jobs in each status now; a status left out has none. ValueError
        for a status not in JOB_STATUSES (a programming error, not a user's)."""
        unknown = set(by_status) - set(JOB_STATUSES)
        if unknown:
            raise ValueError(f"unknown job status {sorted(unknown)[0]!r}")
        for status in JOB_STATUSES:
            self._jobs.labels(status).set(by_status.get(status, 0))

    def set_queue_depth(self, jobs: int) -> None:
        """The number of jobs waiting to start now."""
        self._queue_depth.set(jobs)

    def observe_http(self, route: str, status: int, seconds: float) -> None:
        """One HTTP request answered: `route` is its template (`/v1/jobs/{id}`), never the
        raw path, which would put job ids (and whatever a client sends) in a label."""
        label = self._routes(route)
        self._http_requests.labels(label, str(status)).inc()
        self._http_duration.labels(label).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its Content-Type, in the text format every Prometheus
        reads (prometheus_client's answer to a scrape that asks for nothing else)."""
        encode, content_type = choose_encoder("")
        return encode(self._registry), content_type
