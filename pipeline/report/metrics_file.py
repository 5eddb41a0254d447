"""The Prometheus textfile of a run (`--metrics-file`), for node_exporter's textfile collector.

Cron runs sluice; node_exporter's textfile collector reads `*.prom` files from a
directory on every scrape. The file is made by `prometheus_client` and written
like every other output (temp file beside it, fsync, rename; the user's umask),
so a scrape sees the previous run's file or this one's, never half of one. The
temp file's name starts with a dot and ends `.partial`, which the collector's
`*.prom` glob never matches.

Each value says what the last run of a job did, and the next run replaces it.
The four `*_total` families (items, requests, tokens, cost: the names operators
know from sluice's documentation) are counters of the run that wrote the file:
each new run starts them again, which Prometheus reads as a counter reset, so
`increase()` over a window counts every run in it. So are a workflow's
`sluice_step_*_total` families, the same counts step by step. Everything else is
a gauge.
No `_created` series appear. Names say what a value covers:

    sluice_items_total       the job's items by status, earlier attempts of a
                             resumed job included; they match the output files
    sluice_requests_total, sluice_tokens_total, sluice_cost_usd_total
                             this run alone
    sluice_last_run_*        this run alone (timing, retries, pace, latency)
    sluice_job_*             the job's quarantined items by kind
    sluice_last_success_*    carried from run to run, see below
    sluice_step_*, sluice_last_run_step_*
                             a workflow run's steps (--workflow), this run alone,
                             labelled `step`; absent from other runs' files

`sluice_last_success_timestamp_seconds` is the end of this run when it exited 0.
When it did not (exit 1, an error rate over the limit, included), the value is
carried from the file this one replaces, for the same `job` label. With no
earlier success to carry (no file, an unreadable or garbled one, another job's),
it is 0, so `time() - sluice_last_success_timestamp_seconds > 86400` still fires
for a job that has never succeeded, instead of the series going missing.

Values the summary leaves null are left out rather than written as 0: the cost
of a run on an unpriced model, items per second, latency quantiles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from pipeline.core.errors import OutputError
from pipeline.observe.step_stats import STEP_STATUSES
from pipeline.write.atomic import AtomicFile, sweep_stale_temps

LAST_SUCCESS = "sluice_last_success_timestamp_seconds"
NO_SUCCESS = 0.0  # what the file says when the job has no success on record
TOKEN_KINDS = ("prompt", "completion", "cached_prompt")
LATENCY_QUANTILES = {"p50": "0.5", "p95": "0.95", "p99": "0.99"}
STEP_TOKEN_KINDS = ("prompt", "completion")
STEP_LATENCY_QUANTILES = {"p50": "0.5", "p95": "0.95"}
# A file of ours is a few kilobytes; anything far larger is not one to read.
_PREVIOUS_FILE_LIMIT = 1 << 20


def write_metrics_file(path: str, summary: Mapping[str, Any]) -> None:
    """Replace `path`, atomically, with the metrics of the run `summary` describes.

    Raises OutputError (exit 73) naming the path when it cannot be written: a
    missing or read-only directory, a directory or a device under that name.
    """
    sweep_stale_temps(path)  # a killed run's leftover temp file beside it
    output = AtomicFile(path, private=False)
    try:
        previous = _previous_success(output.path, str(summary["job"]))
        exposition = generate_latest(_registry(summary, previous))
        output.handle.write(exposition)
    except OSError as exc:
        output.abort()
        raise OutputError(f"cannot write {path!r}: {exc.strerror or exc}") from exc
    except BaseException:
        output.abort()
        raise
    output.commit()


def last_success(summary: Mapping[str, Any], previous: float | None) -> float:
    """The end of this run if it succeeded, else the earlier success (or NO_SUCCESS)."""
    if summary["exit_code"] == 0:
        return unix_seconds(summary["ended_at"])
    return NO_SUCCESS if previous is None else previous


def unix_seconds(iso_time: str) -> float:
    moment = datetime.fromisoformat(iso_time)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the summary writes UTC
    return moment.timestamp()


class _Families:
    """A collector of metric families made beforehand (one run's, fixed)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _registry(summary: Mapping[str, Any], previous: float | None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(_families(summary, last_success(summary, previous))))
    return registry


def _families(summary: Mapping[str, Any], success: float) -> Iterator[Metric]:
    job = str(summary["job"])
    yield from _timing(summary, job)
    yield _gauge(
        LAST_SUCCESS,
        "When the job last finished with exit code 0 (unix seconds); 0 if never on record.",
        job,
        success,
    )
    yield from _counts(summary, job)
    yield from _traffic(summary, job)
    yield from _spend(summary, job)
    if summary.get("steps"):
        yield from _steps(summary["steps"], job)


def _timing(summary: Mapping[str, Any], job: str) -> Iterator[Metric]:
    yield _gauge(
        "sluice_last_run_start_timestamp_seconds",
        "When the last run started (unix seconds).",
        job,
        unix_seconds(summary["started_at"]),
    )
    yield _gauge(
        "sluice_last_run_end_timestamp_seconds",
        "When the last run ended (unix seconds).",
        job,
        unix_seconds(summary["ended_at"]),
    )
    yield _gauge(
        "sluice_last_run_duration_seconds",
        "Wall-clock time of the last run.",
        job,
        summary["wall_seconds"],
    )
    yield _gauge(
        "sluice_last_run_exit_code",
        "Exit code of the last run (0 ok, 1 error rate exceeded, 3 budget stop; see the README).",
        job,
        summary["exit_code"],
    )


def _counts(summary: Mapping[str, Any], job: str) -> Iterator[Metric]:
    by_status = {
        "ok": summary["succeeded"] - summary["cached"],
        "cached": summary["cached"],
        "quarantined": summary["quarantined"],
    }
    yield _counter_by(
        "sluice_items",
        "Items of the job by how they ended: ok (answered by a request of their own), "
        "cached (answered from the response cache), quarantined. Earlier attempts of a "
        "resumed job included, as in the output files.",
        job,
        "status",
        by_status,
    )
    yield _gauge_by(
        "sluice_job_quarantined_items",
        "Quarantined items of the job by error kind, as in the quarantine file.",
        job,
        "kind",
        summary["quarantined_by_kind"],
    )
    yield _gauge(
        "sluice_last_run_resumed_items",
        "Items the last run took from the checkpoint of earlier attempts of the job.",
        job,
        summary["resumed"],
    )


def _traffic(summary: Mapping[str, Any], job: str) -> Iterator[Metric]:
    yield _counter_by(
        "sluice_requests",
        "Requests the last run sent, by outcome (ok, or the error kind of the attempt).",
        job,
        "outcome",
        summary["requests_by_outcome"],
    )
    yield _gauge(
        "sluice_last_run_retries",
        "Requests of the last run that repeated an earlier attempt.",
        job,
        summary["retries"],
    )
    if summary["items_per_second"] is not None:
        yield _gauge(
            "sluice_last_run_items_per_second",
            "Items the last run finished per second of its wall-clock time.",
            job,
            summary["items_per_second"],
        )
    latency_ms = summary["latency_ms"]
    yield _gauge_by(
        "sluice_last_run_request_latency_seconds",
        "Request latency quantiles of the last run (from a sample of its requests).",
        job,
        "quantile",
        {
            q: latency_ms[key] / 1000
            for key, q in LATENCY_QUANTILES.items()
            if latency_ms[key] is not None
        },
    )


def _spend(summary: Mapping[str, Any], job: str) -> Iterator[Metric]:
    yield _counter_by(
        "sluice_tokens",
        "Tokens the last run paid for, by kind; cached_prompt is the part of prompt the "
        "provider served from its own prompt cache. Answers from the response cache cost none.",
        job,
        "kind",
        {kind: summary["tokens"][kind] for kind in TOKEN_KINDS},
    )
    cost = summary["cost"]
    if cost["this_attempt"] is not None and cost["currency"] == "USD":
        family = CounterMetricFamily(
            "sluice_cost_usd",
            "Spend of the last run alone in US dollars, from the answers' usage and the "
            "price table (absent when the model has no price).",
            labels=["job"],
        )
        family.add_metric([job], cost["this_attempt"])
        yield family


def _steps(steps: Mapping[str, Mapping[str, Any]], job: str) -> Iterator[Metric]:
    """A workflow's steps, one series per step (and kind, status or quantile)."""
    labels = ["job", "step"]
    requests = CounterMetricFamily(
        "sluice_step_requests",
        "Requests the last run sent for each workflow step, retries included.",
        labels=labels,
    )
    items = CounterMetricFamily(
        "sluice_step_items",
        "Items of the last run by how each workflow step ended for them: answered, "
        "cached, skipped (its condition was false), failed, not_run.",
        labels=[*labels, "status"],
    )
    tokens = CounterMetricFamily(
        "sluice_step_tokens",
        "Tokens the last run paid for each workflow step, by kind (prompt, completion).",
        labels=[*labels, "kind"],
    )
    cost = CounterMetricFamily(
        "sluice_step_cost_usd",
        "Spend of the last run on each workflow step in US dollars (absent for a step "
        "whose model has no price).",
        labels=labels,
    )
    latency = GaugeMetricFamily(
        "sluice_last_run_step_request_latency_seconds",
        "Request latency quantiles of each workflow step in the last run (from a sample).",
        labels=[*labels, "quantile"],
    )
    for step, counts in steps.items():
        series = [job, str(step)]
        requests.add_metric(series, counts["requests"])
        for status in STEP_STATUSES:
            items.add_metric([*series, status], counts[status])
        for kind in STEP_TOKEN_KINDS:
            tokens.add_metric([*series, kind], counts["tokens"][kind])
        if counts["cost_usd"] is not None:
            cost.add_metric(series, counts["cost_usd"])
        for key, quantile in STEP_LATENCY_QUANTILES.items():
            if (ms := counts["latency_ms"][key]) is not None:
                latency.add_metric([*series, quantile], ms / 1000)
    # A family without series (no step priced, no answer timed) is left out, like the
    # run's own cost: absent, never an empty heading.
    yield from (family for family in (requests, items, tokens, cost, latency) if family.samples)


def _gauge(name: str, documentation: str, job: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["job"])
    family.add_metric([job], value)
    return family


def _gauge_by(
    name: str, documentation: str, job: str, label: str, values: Mapping[str, float]
) -> GaugeMetricFamily:
    return _by(GaugeMetricFamily(name, documentation, labels=["job", label]), job, values)


def _counter_by(
    name: str, documentation: str, job: str, label: str, values: Mapping[str, float]
) -> CounterMetricFamily:
    """`name`_total, one series per value of `label`."""
    return _by(CounterMetricFamily(name, documentation, labels=["job", label]), job, values)


FamilyT = TypeVar("FamilyT", GaugeMetricFamily, CounterMetricFamily)


def _by(family: FamilyT, job: str, values: Mapping[str, float]) -> FamilyT:
    """One series of `family` per entry of `values`, labelled with the job and its key."""
    for key, value in values.items():
        family.add_metric([job, str(key)], value)
    return family


def _previous_success(path: str, job: str) -> float | None:
    """The last success of `job` in the file at `path`, or None when it records none."""
    text = _read_previous(path)
    if text is None:
        return None
    try:
        values = [
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == LAST_SUCCESS and sample.labels.get("job") == job
        ]
    except Exception:
        # Whatever a third-party parser raises on a damaged file, it means the same
        # thing: no success on record. It must never cost a run its metrics.
        return None
    # NaN or a negative time would keep a staleness alert from ever firing.
    recorded = [value for value in values if math.isfinite(value) and value > NO_SUCCESS]
    return max(recorded, default=None)


def _read_previous(path: str) -> str | None:
    try:
        with open(path, "rb") as previous:
            data = previous.read(_PREVIOUS_FILE_LIMIT + 1)
        if len(data) > _PREVIOUS_FILE_LIMIT:
            return None
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
