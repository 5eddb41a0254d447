"""The end-of-run lines on stderr: the same facts as the --summary JSON."""

from __future__ import annotations

import sys
from typing import Any

from pipeline.config import STDIO, RunConfig
from pipeline.runner import RunResult

COMMITTED_EXIT_CODES = (0, 1)


def print_summary(result: RunResult, config: RunConfig) -> None:
    for line in summary_lines(result, config):
        print(f"sluice: {line}", file=sys.stderr)


def summary_lines(result: RunResult, config: RunConfig) -> list[str]:
    data = result.summary
    by_kind = ", ".join(f"{kind} {count:,}" for kind, count in data["quarantined_by_kind"].items())
    latency = data["latency_ms"]
    resumed = f", {data['resumed']:,} done by earlier runs" if data["resumed"] else ""
    cached = f" ({data['cached']:,} from the cache)" if data["cached"] else ""
    lines = [
        f"{data['items']:,} items{resumed}; {data['wall_seconds']:.1f}s "
        f"({data['items_per_second'] or 0:,.0f} items/s): {data['succeeded']:,} ok{cached}, "
        f"{data['quarantined']:,} quarantined" + (f" ({by_kind})" if by_kind else ""),
        f"{data['requests']:,} requests, {data['retries']:,} retries, "
        f"{data['rate_limited_responses']:,} rate-limited; tokens "
        f"{data['tokens']['prompt']:,} in, {data['tokens']['completion']:,} out; "
        f"latency p50 {_ms(latency['p50'])}, p95 {_ms(latency['p95'])}",
        _traffic_line(data["traffic"]),
    ]
    if result.exit_code in COMMITTED_EXIT_CODES:
        if config.output != STDIO:
            lines.append(f"results:    {config.output}")
        lines.append(f"quarantine: {config.quarantine}")
        if result.exit_code == 1:
            lines.append(
                f"more than {config.max_error_rate:.1%} of items were quarantined "
                "(--max-error-rate): exit 1"
            )
    else:
        lines.append(f"stopped with exit code {result.exit_code}: no output file was written")
        if result.resumable_in is not None:
            lines.append(f"run the same command again to resume (state in {result.resumable_in})")
    return lines


def _traffic_line(traffic: dict[str, Any]) -> str:
    limits = [f"{traffic[kind]:,.0f} {kind}" for kind in ("rpm", "tpm") if traffic[kind]]
    parts = [
        f"limits {', '.join(limits) if limits else 'none seen'}",
        f"concurrency {traffic['concurrency']} (lowest {traffic['lowest_concurrency']})",
    ]
    if traffic["rate_limit_pauses"]:
        parts.append(
            f"{traffic['rate_limit_pauses']:,} rate-limit pauses ({traffic['paused_seconds']:.1f}s)"
        )
    for key, label in (
        ("timeouts", "timeouts"),
        ("retry_budget_waits", "retries held by the budget"),
        ("breaker_outages", "breaker openings"),
    ):
        if traffic[key]:
            parts.append(f"{traffic[key]:,} {label}")
    return "; ".join(parts)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}ms"
