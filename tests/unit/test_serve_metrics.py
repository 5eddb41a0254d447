"""`GET /metrics` of sluice serve: what the metrics say, read back with prometheus_client's
own parser as a scrape would read them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from pipeline.core.errors import ErrorKind
from pipeline.core.events import AttemptEnded, Event, ItemSettled
from pipeline.core.models import Failure, Success, Usage
from pipeline.serve.metrics import (
    HTTP_DURATION_BUCKETS,
    JOB_STATUSES,
    LABEL_LENGTH_LIMIT,
    OTHER,
    UNKNOWN_MODEL,
    BoundedLabel,
    ServeMetrics,
)
from pipeline.spend.prices import Price, PriceTable, Pricing, shipped_table
from tests.fakes.run_events import MODEL, USAGE, item, small_run

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

PRICED = "priced-model"
UNPRICED = "unpriced-model"
PRICE = Price(input=2.0, output=8.0, cached_input=1.0)
TABLE = PriceTable("2026-01-01", {PRICED: PRICE})


def scrape(metrics: ServeMetrics) -> Samples:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode("utf-8"))
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def fed(pricing: Pricing, events: list[Event]) -> ServeMetrics:
    metrics = ServeMetrics(pricing)
    sink = metrics.sink()
    for event in events:
        sink.emit(event)
    return metrics


def answered(model: str | None, usage: Usage | None = USAGE, latency: float = 0.5) -> AttemptEnded:
    return AttemptEnded(item(0, "x"), 0, 1, 0.0, 200, None, usage, model, latency, False)


def test_a_small_run_counts_requests_items_tokens_cost_and_latency() -> None:
    samples = scrape(fed(Pricing(shipped_table()), small_run()))

    requests = "sluice_serve_requests_total"
    assert value(samples, requests, model=MODEL, outcome="ok") == 3
    assert value(samples, requests, model=MODEL, outcome="transient") == 1
    assert value(samples, requests, model=MODEL, outcome="permanent") == 1
    # "g" was sent but never ended: it is not a request with an outcome yet.
    assert sum(series(samples, requests).values()) == 5

    items = "sluice_serve_items_total"
    assert value(samples, items, status="ok") == 3
    assert value(samples, items, status="cached") == 1
    assert value(samples, items, status="quarantined") == 2
    assert value(samples, items, status="skipped") == 0

    # Three answers reported their usage; the cached one cost nothing.
    tokens = "sluice_serve_tokens_total"
    assert value(samples, tokens, model=MODEL, kind="prompt") == 3 * USAGE.prompt_tokens
    assert value(samples, tokens, model=MODEL, kind="completion") == 3 * USAGE.completion_tokens

    price = Pricing(shipped_table()).price_of(MODEL)
    assert price is not None  # the fake run's model is in the shipped table
    cost = value(samples, "sluice_serve_cost_usd_total", model=MODEL)
    assert cost == pytest.approx(3 * price.cost(USAGE.prompt_tokens, USAGE.completion_tokens))

    # Every ended attempt of the fake run had an answer (even the 503 and the 400), in 0.1s.
    latency = "sluice_serve_request_latency_seconds"
    assert value(samples, f"{latency}_count", model=MODEL) == 5
    assert value(samples, f"{latency}_sum", model=MODEL) == pytest.approx(0.5)
    assert value(samples, f"{latency}_bucket", model=MODEL, le="0.05") == 0
    assert value(samples, f"{latency}_bucket", model=MODEL, le="0.1") == 5
    assert value(samples, f"{latency}_bucket", model=MODEL, le="+Inf") == 5


def test_cost_is_counted_only_for_priced_models() -> None:
    cached = Usage(1000, 100, 1100, cached_prompt_tokens=400)
    events: list[Event] = [answered(PRICED, cached), answered(UNPRICED), answered(UNPRICED)]
    samples = scrape(fed(Pricing(TABLE), events))

    costs = series(samples, "sluice_serve_cost_usd_total")
    assert list(costs) == [frozenset({("model", PRICED)})]
    # The provider's prompt cache is billed at its own price, as the ledger bills it.
    assert costs[frozenset({("model", PRICED)})] == pytest.approx(
        (600 * 2.0 + 400 * 1.0 + 100 * 8.0) / 1_000_000
    )
    # An unpriced model's tokens are still counted: they were paid for.
    tokens = "sluice_serve_tokens_total"
    assert value(samples, tokens, model=UNPRICED, kind="prompt") == 2 * USAGE.prompt_tokens


def test_a_given_price_prices_every_model() -> None:
    pricing = Pricing(TABLE, given=Price(1.0, 1.0))
    samples = scrape(fed(pricing, [answered(UNPRICED)]))
    expected = (USAGE.prompt_tokens + USAGE.completion_tokens) / 1_000_000
    assert value(samples, "sluice_serve_cost_usd_total", model=UNPRICED) == pytest.approx(expected)


def test_failed_attempts_count_without_latency_or_tokens() -> None:
    refused = AttemptEnded(item(0, "x"), 0, 1, 0.0, None, "transient", None, None, None, False)
    samples = scrape(fed(Pricing(TABLE), [refused]))
    assert value(samples, "sluice_serve_requests_total", model=UNKNOWN_MODEL, outcome="transient")
    assert series(samples, "sluice_serve_tokens_total") == {}
    latency = "sluice_serve_request_latency_seconds_count"
    assert series(samples, latency) == {}


def test_item_statuses_follow_the_outcome() -> None:
    it = item(0, "x")
    events: list[Event] = [
        ItemSettled(0, 0.0, Success(it, "out", USAGE)),
        ItemSettled(0, 0.0, Success(it, "out", USAGE, cached=True, attempts=0)),
        ItemSettled(0, 0.0, Success(it, None, Usage(), attempts=0, skipped=True)),
        ItemSettled(0, 0.0, Failure(it, ErrorKind.INVALID_OUTPUT, "not JSON")),
        ItemSettled(0, 0.0, Failure(it, ErrorKind.PERMANENT, "HTTP 400")),
    ]
    samples = scrape(fed(Pricing(TABLE), events))
    items = series(samples, "sluice_serve_items_total")
    assert items == {
        frozenset({("status", "ok")}): 1,
        frozenset({("status", "cached")}): 1,
        frozenset({("status", "skipped")}): 1,
        frozenset({("status", "quarantined")}): 2,
    }


def test_every_job_status_is_always_present() -> None:
    metrics = ServeMetrics(Pricing(TABLE))
    jobs = "sluice_serve_jobs"
    assert series(scrape(metrics), jobs) == {
        frozenset({("status", status)}): 0 for status in JOB_STATUSES
    }
    metrics.set_jobs({"running": 2, "queued": 3})
    metrics.set_jobs({"running": 1, "succeeded": 4})  # queued went to 0: no stale value
    samples = scrape(metrics)
    assert value(samples, jobs, status="running") == 1
    assert value(samples, jobs, status="succeeded") == 4
    assert value(samples, jobs, status="queued") == 0
    assert len(series(samples, jobs)) == len(JOB_STATUSES)


def test_an_unknown_job_status_is_refused() -> None:
    metrics = ServeMetrics(Pricing(TABLE))
    with pytest.raises(ValueError, match="paused"):
        metrics.set_jobs({"paused": 1})


def test_queue_depth_is_the_last_value_set() -> None:
    metrics = ServeMetrics(Pricing(TABLE))
    assert value(scrape(metrics), "sluice_serve_queue_depth") == 0
    metrics.set_queue_depth(7)
    metrics.set_queue_depth(3)
    assert value(scrape(metrics), "sluice_serve_queue_depth") == 3


def test_http_requests_are_counted_by_route_template_and_status() -> None:
    metrics = ServeMetrics(Pricing(TABLE))
    metrics.observe_http("/v1/jobs/{id}", 200, 0.003)
    metrics.observe_http("/v1/jobs/{id}", 404, 0.002)
    metrics.observe_http("/v1/jobs", 201, 0.2)
    samples = scrape(metrics)
    requests = "sluice_serve_http_requests_total"
    assert value(samples, requests, route="/v1/jobs/{id}", status="200") == 1
    assert value(samples, requests, route="/v1/jobs/{id}", status="404") == 1
    assert value(samples, requests, route="/v1/jobs", status="201") == 1
    duration = "sluice_serve_http_request_duration_seconds"
    assert value(samples, f"{duration}_count", route="/v1/jobs/{id}") == 2
    assert value(samples, f"{duration}_bucket", route="/v1/jobs/{id}", le="0.005") == 2
    assert value(samples, f"{duration}_bucket", route="/v1/jobs", le="0.1") == 0
    assert value(samples, f"{duration}_bucket", route="/v1/jobs", le="0.25") == 1
    buckets = [
        dict(labels)["le"]
        for labels in series(samples, f"{duration}_bucket")
        if ("route", "/v1/jobs") in labels
    ]
    assert len(buckets) == len(HTTP_DURATION_BUCKETS) + 1  # and +Inf


def test_two_servers_never_share_a_count() -> None:
    first = fed(Pricing(TABLE), [answered(PRICED)])
    second = ServeMetrics(Pricing(TABLE))
    assert value(scrape(first), "sluice_serve_requests_total", model=PRICED, outcome="ok") == 1
    assert series(scrape(second), "sluice_serve_requests_total") == {}


def test_no_series_carries_a_job_id_or_an_item_id() -> None:
    body, _ = fed(Pricing(shipped_table()), small_run()).render()
    text = body.decode("utf-8")
    assert "job" not in {
        name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        for name in sample.labels
    }
    assert "PROMPT-TEXT" not in text and "ANSWER-TEXT" not in text
    assert 'id="' not in text


def test_a_model_name_too_long_reads_other() -> None:
    long_name = "m" * (LABEL_LENGTH_LIMIT + 1)
    samples = scrape(fed(Pricing(TABLE), [answered(long_name)]))
    assert value(samples, "sluice_serve_requests_total", model=OTHER, outcome="ok") == 1


@given(
    models=st.lists(st.text(min_size=1, max_size=12), max_size=60),
    limit=st.integers(min_value=0, max_value=10),
)
def test_a_bounded_label_keeps_the_first_distinct_values_and_no_more(
    models: list[str], limit: int
) -> None:
    bound = BoundedLabel(limit)
    labels = [bound(model) for model in models]
    first_distinct = list(dict.fromkeys(models))[:limit]
    assert set(labels) - {OTHER} <= set(first_distinct)
    for model, label in zip(models, labels, strict=True):
        assert label == (model if model in first_distinct else OTHER)
    # The same value always gets the same label.
    assert [bound(model) for model in models] == labels


@given(
    attempts=st.lists(
        st.tuples(
            st.sampled_from([PRICED, UNPRICED, None, "a", "b"]),
            st.sampled_from([None, *[str(kind) for kind in ErrorKind]]),
            st.integers(min_value=0, max_value=10_000),
            st.floats(min_value=0, max_value=500, allow_nan=False),
        ),
        max_size=40,
    )
)
def test_every_attempt_is_counted_once_and_every_paid_token_once(
    attempts: list[tuple[str | None, str | None, int, float]],
) -> None:
    events: list[Event] = [
        AttemptEnded(
            item(0, "x"),
            0,
            1,
            0.0,
            200,
            error,
            Usage(tokens, tokens, 2 * tokens),
            model,
            latency,
            False,
        )
        for model, error, tokens, latency in attempts
    ]
    samples = scrape(fed(Pricing(TABLE), events))
    assert sum(series(samples, "sluice_serve_requests_total").values()) == len(attempts)
    paid = sum(tokens for _, _, tokens, _ in attempts)
    assert sum(series(samples, "sluice_serve_tokens_total").values()) == 2 * paid
    latencies = series(samples, "sluice_serve_request_latency_seconds_count")
    assert sum(latencies.values()) == len(attempts)
    priced = sum(PRICE.cost(tokens, tokens) for model, _, tokens, _ in attempts if model == PRICED)
    costs = series(samples, "sluice_serve_cost_usd_total")
    assert math.isclose(sum(costs.values()), priced, rel_tol=1e-9, abs_tol=1e-12)
    assert all(dict(labels)["model"] == PRICED for labels in costs)
