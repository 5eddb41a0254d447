"""The summary of a run (`--summary`), and the error-rate rule for its exit code."""

from __future__ import annotations

from typing import Any

from pipeline.observe.counters import RunStats


def error_rate_exceeded(stats: RunStats, max_error_rate: float) -> bool:
    if stats.items == 0:
        return False
    return stats.failed / stats.items > max_error_rate


def summary_dict(stats: RunStats, wall_seconds: float, exit_code: int) -> dict[str, Any]:
    """The job's counts (which match the output files), this attempt's traffic and cost.

    `tokens`, `requests` and `retries` count this attempt alone, so summaries of
    the attempts of one job add up; `whole_job` holds the totals across them.
    """

    def ms(fraction: float) -> float | None:
        value = stats.latencies.percentile(fraction)
        return None if value is None else round(value * 1000, 1)

    job = stats.as_dict()  # the tally of the whole job, earlier attempts included
    attempt = {**stats.this_attempt.as_dict(), "requests": stats.requests, "retries": stats.retries}
    return {
        "items": stats.items,
        "resumed": stats.resumed,
        "succeeded": stats.succeeded,
        "cached": stats.cached,
        "quarantined": stats.failed,
        "quarantined_by_kind": job["quarantined_by_kind"],
        "requests": stats.requests,
        "retries": stats.retries,
        "rate_limited_responses": stats.rate_limited,
        "tokens": attempt["tokens"],
        "wall_seconds": round(wall_seconds, 3),
        # This run's pace: items that earlier runs committed took none of its time.
        "items_per_second": round(attempt["items"] / wall_seconds, 1) if wall_seconds > 0 else None,
        "latency_ms": {"p50": ms(0.50), "p95": ms(0.95), "p99": ms(0.99)},
        "traffic": stats.traffic.as_dict(),
        "cache": None if stats.cache is None else stats.cache.as_dict(),
        "this_attempt": attempt,
        "whole_job": job,
        "exit_code": exit_code,
    }
