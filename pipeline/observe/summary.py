"""The summary of a run (`--summary`), and the error-rate rule for its exit code.

The same dictionary is written as JSON, printed as the end-of-run table, kept in
the job's history and turned into metrics, so its keys are a contract:
`schema_version` changes whenever one is renamed or removed (adding is free).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from pipeline import __version__
from pipeline.core.config import RunConfig, Secret, shard_label
from pipeline.observe.counters import LatencySample, RunStats
from pipeline.observe.step_stats import STEP_STATUSES, StepCounts
from pipeline.spend.ledger import Ledger, StepSpend

SCHEMA_VERSION = 1


class RunFacts(NamedTuple):
    """What the summary says about the run beyond its counts."""

    job: str
    trace_id: str
    started_at: float  # unix seconds
    ended_at: float
    model: str | None
    base_url: str
    inputs: Sequence[str]
    outputs: dict[str, str | None]
    options: dict[str, Any]
    steps: Sequence[str] = ()  # --workflow: its steps, in the file's order; () without

    @classmethod
    def of(cls, config: RunConfig, trace_id: str, started_at: float, ended_at: float) -> RunFacts:
        output = config.output
        return cls(
            job=config.observe.job,
            trace_id=trace_id,
            started_at=started_at,
            ended_at=ended_at,
            model=config.request.model,
            base_url=without_credentials(config.connection.base_url),
            inputs=list(config.read.inputs),
            outputs={
                "results": output.results,
                "quarantine": output.quarantine,
                "summary": output.summary,
                "trace": output.trace,
                "metrics": output.metrics,
            },
            options=options_of(config),
            steps=tuple(config.workflow.outputs) if config.workflow is not None else (),
        )


def error_rate_exceeded(stats: RunStats, max_error_rate: float) -> bool:
    if stats.items == 0:
        return False
    return stats.failed / stats.items > max_error_rate


def summary_dict(
    stats: RunStats,
    ledger: Ledger,
    facts: RunFacts,
    exit_code: int,
    stopped_by: str | None = None,
    skipped: int | None = 0,
) -> dict[str, Any]:
    """The job's counts (which match the output files), this attempt's traffic and cost.
    `skipped`: items a stopped run did not reach (None when not known).

    `tokens`, `requests` and `retries` count this attempt alone, so summaries of
    the attempts of one job add up; `whole_job` holds the totals across them.
    """
    wall_seconds = max(0.0, facts.ended_at - facts.started_at)
    job = stats.as_dict()  # the tally of the whole job, earlier attempts included
    attempt = {**stats.this_attempt.as_dict(), "requests": stats.requests, "retries": stats.retries}
    tokens = {**attempt["tokens"], "cached_prompt": ledger.cached_prompt_tokens}
    cost = cost_dict(ledger, facts.model)
    per_second = round(attempt["items"] / wall_seconds, 1) if wall_seconds > 0 else None
    return {
        "schema_version": SCHEMA_VERSION,
        "sluice_version": sluice_version(),
        "job": facts.job,
        "trace_id": facts.trace_id,
        "started_at": iso_utc(facts.started_at),
        "ended_at": iso_utc(facts.ended_at),
        "model": facts.model,
        "base_url": facts.base_url,
        "inputs": list(facts.inputs),
        "outputs": facts.outputs,
        "options": facts.options,
        "exit_code": exit_code,
        "stopped_by": stopped_by,
        "items": stats.items,
        "resumed": stats.resumed,
        "succeeded": stats.succeeded,
        "cached": stats.cached,
        "quarantined": stats.failed,
        "quarantined_by_kind": job["quarantined_by_kind"],
        "skipped_by_where": stats.skipped,
        "skipped": skipped,
        "requests": stats.requests,
        "retries": stats.retries,
        "rate_limited_responses": stats.rate_limited,
        "requests_by_outcome": dict(sorted(stats.requests_by_outcome.items())),
        "tokens": tokens,
        "cost": cost,
        "wall_seconds": round(wall_seconds, 3),
        # This run's pace: items that earlier runs committed took none of its time.
        "items_per_second": per_second,
        "latency_ms": _percentiles(stats.latencies),
        "latency_ms_by_stage": {
            "queue_wait": _percentiles(stats.queue_waits),
            "limiter_wait": _percentiles(stats.limiter_waits),
            "request": _percentiles(stats.latencies),
            "first_token": _percentiles(stats.first_tokens),  # with --stream
        },
        "traffic": stats.traffic.as_dict(),
        "limits_used": _limits_used(stats, tokens, wall_seconds),
        "cache": _cache(stats),
        **_steps(stats, ledger, facts.steps),
        "this_attempt": {**attempt, "tokens": tokens, "cost_usd": _rounded(ledger.attempt.cost)},
        "whole_job": {
            **job,
            "requests": ledger.job.requests,
            "cost_usd": _rounded(ledger.job.cost),
        },
    }


def cost_dict(ledger: Ledger, model: str | None) -> dict[str, Any]:
    """Cost from the answers' usage: null when some answer's model has no price."""
    price = ledger.pricing.price_of(model) if model else None
    return {
        "currency": "USD",
        "this_attempt": _rounded(ledger.attempt.cost),
        "saved_by_cache": _rounded(ledger.saved),
        "whole_job": _rounded(ledger.job.cost),
        "unpriced_answers": ledger.attempt.unpriced_answers,
        "price": None
        if price is None
        else {
            "model": model,
            "input_per_million": price.input,
            "output_per_million": price.output,
            "cached_input_per_million": price.cached_input,
            "source": ledger.pricing.source(),
        },
    }


def _rounded(usd: float | None) -> float | None:
    return None if usd is None else round(usd, 6)


def _percentiles(sample: LatencySample) -> dict[str, float | None]:
    def ms(fraction: float) -> float | None:
        value = sample.percentile(fraction)
        return None if value is None else round(value * 1000, 1)

    return {"p50": ms(0.50), "p95": ms(0.95), "p99": ms(0.99)}


def _limits_used(
    stats: RunStats, tokens: dict[str, int], wall_seconds: float
) -> dict[str, float | None]:
    """How close the run came to its limits: the pace it kept over the limit in force
    (1.0 = exactly at the limit), and the lowest concurrency over the highest."""
    minutes = wall_seconds / 60
    traffic = stats.traffic

    def share(done: float, limit: float | None) -> float | None:
        if not limit or minutes <= 0:
            return None
        return round(done / minutes / limit, 3)

    return {
        "rpm": share(stats.requests, traffic.rpm),
        "tpm": share(tokens["prompt"] + tokens["completion"], traffic.tpm),
    }


def _steps(stats: RunStats, ledger: Ledger, order: Sequence[str]) -> dict[str, Any]:
    """`{"steps": {NAME: ...}}` when a workflow ran, else nothing at all (the summaries of
    other runs keep their shape). This attempt's share of each step, in the file's order;
    a step heard of that the file does not list (none should be) comes after."""
    heard = [name for name in [*stats.steps, *ledger.steps] if name not in order]
    names = list(dict.fromkeys([*order, *heard]))
    if not names:
        return {}
    return {"steps": {name: _step(stats.steps.get(name), ledger.steps.get(name)) for name in names}}


def _step(counts: StepCounts | None, spend: StepSpend | None) -> dict[str, Any]:
    counts = counts or StepCounts(LatencySample())
    spend = spend or StepSpend()
    latency = _percentiles(counts.latencies)
    return {
        "requests": counts.requests,
        "retries": counts.retries,
        **{status: counts.statuses[status] for status in STEP_STATUSES},
        "tokens": counts.paid_tokens.as_dict(),
        "reused_tokens": counts.reused_tokens.as_dict(),
        "cost_usd": _rounded(spend.cost),
        "saved_by_cache_usd": _rounded(spend.saved),
        "latency_ms": {"p50": latency["p50"], "p95": latency["p95"]},
    }


def _cache(stats: RunStats) -> dict[str, Any] | None:
    if stats.cache is None:
        return None
    counts: dict[str, Any] = dict(stats.cache.as_dict())
    looked_up = stats.cache.hits + stats.cache.misses
    counts["hit_rate"] = round(stats.cache.hits / looked_up, 4) if looked_up else None
    return counts


def iso_utc(unix_seconds: float) -> str:
    stamp = datetime.fromtimestamp(unix_seconds, UTC).isoformat(timespec="microseconds")
    return stamp.replace("+00:00", "Z")


def sluice_version() -> str:
    return __version__


def without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def options_of(config: RunConfig) -> dict[str, Any]:
    """The run's settings as plain JSON values, section by section; never the key."""
    options = {
        section.name: _plain(getattr(config, section.name))
        for section in dataclasses.fields(config)
        if section.name != "workflow"
    }
    options["connection"]["base_url"] = without_credentials(config.connection.base_url)
    if config.read.shard is not None:
        options["read"]["shard"] = shard_label(config.read.shard)  # "2/3", as --shard takes it
    if config.workflow is not None:
        options["workflow"] = config.workflow.identity()
    return options


def _field_names(value: Any) -> tuple[str, ...] | None:
    """The fields of a config section or of a dataclass; None for any other value."""
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return tuple(value._fields)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return tuple(f.name for f in dataclasses.fields(value))
    return None


def _plain(value: Any) -> Any:
    # A config section (a NamedTuple) is an object, before the tuples that are lists.
    names = _field_names(value)
    if names is not None:
        return {
            name: _plain(getattr(value, name))
            for name in names
            if name != "api_key" and not isinstance(getattr(value, name), Secret)
        }
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Secret):
        return None
    return value
