"""The end-of-run lines on stderr: the same facts as the --summary JSON."""

from __future__ import annotations

import sys
from typing import Any

from pipeline.core.config import STDIO, RunConfig
from pipeline.core.words import counted
from pipeline.run.result import RunResult
from pipeline.write.paths import Target, target_kind

COMMITTED_EXIT_CODES = (0, 1)


def print_summary(result: RunResult, config: RunConfig) -> None:
    for line in summary_lines(result, config):
        print(f"sluice: {line}", file=sys.stderr)


def summary_lines(result: RunResult, config: RunConfig) -> list[str]:
    data = result.summary
    by_kind = ", ".join(f"{kind} {count:,}" for kind, count in data["quarantined_by_kind"].items())
    latency = data["latency_ms"]
    resumed = (
        f", {counted(data['resumed'], 'item')} done by earlier runs" if data["resumed"] else ""
    )
    cached = f" ({data['cached']:,} from the cache)" if data["cached"] else ""
    lines = [
        f"{counted(data['items'], 'item')}{resumed}; {data['wall_seconds']:.1f}s "
        f"({data['items_per_second'] or 0:,.0f} items/s): {data['succeeded']:,} ok{cached}, "
        f"{data['quarantined']:,} quarantined" + (f" ({by_kind})" if by_kind else ""),
        f"{counted(data['requests'], 'request')}, {counted(data['retries'], 'retry')}, "
        f"{data['rate_limited_responses']:,} rate-limited; {_tokens(data)}; "
        f"latency p50 {_ms(latency['p50'])}, p95 {_ms(latency['p95'])}",
        _traffic_line(data["traffic"]),
    ]
    if result.exit_code in COMMITTED_EXIT_CODES:
        if config.output.results != STDIO:
            lines.append(f"results:    {config.output.results}")
        if config.output.quarantine != STDIO:
            lines.append(f"quarantine: {config.output.quarantine}")
        if result.exit_code == 1:
            lines.append(
                f"more than {config.max_error_rate:.1%} of items were quarantined "
                "(--max-error-rate): exit 1"
            )
    else:
        lines.append(f"stopped with exit code {result.exit_code}: {what_was_written(config)}")
        if result.resumable_in is not None:
            lines.append(f"run the same command again to resume (state in {result.resumable_in})")
    return lines


def _tokens(data: dict[str, Any]) -> str:
    tokens = data["tokens"]
    line = f"tokens {tokens['prompt']:,} in, {tokens['completion']:,} out"
    if not data["resumed"]:
        return line
    job = data["whole_job"]["tokens"]
    return f"{line} this attempt ({job['prompt']:,} in, {job['completion']:,} out for the job)"


def what_was_written(config: RunConfig) -> str:
    """Only regular files are held back until the end; a stream already has rows."""
    both = (config.output.results, config.output.quarantine)
    files = [p for p in both if target_kind(p) is Target.FILE]
    streams = [p for p in both if p not in files]
    said = []
    if files:
        said.append(f"{' and '.join(files)} not written (an earlier file is left as it was)")
    if streams:
        where = ["standard output" if p == STDIO else p for p in streams]
        said.append(f"the rows already written to {' and '.join(where)} are incomplete")
    return "; ".join(said)


def _traffic_line(traffic: dict[str, Any]) -> str:
    limits = [f"{traffic[kind]:,.0f} {kind}" for kind in ("rpm", "tpm") if traffic[kind]]
    parts = [
        f"limits {', '.join(limits) if limits else 'none seen'}",
        f"concurrency {traffic['concurrency']} (lowest {traffic['lowest_concurrency']})",
    ]
    if traffic["rate_limit_pauses"]:
        pauses = counted(traffic["rate_limit_pauses"], "rate-limit pause")
        parts.append(f"{pauses} ({traffic['paused_seconds']:.1f}s)")
    for key, noun, plural in (
        ("timeouts", "timeout", None),
        ("retry_budget_waits", "retry held by the budget", "retries held by the budget"),
        ("breaker_outages", "breaker opening", None),
    ):
        if traffic[key]:
            parts.append(counted(traffic[key], noun, plural))
    return "; ".join(parts)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}ms"
