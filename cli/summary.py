"""The end-of-run table on stderr: the same facts as the --summary JSON, compactly.

A workflow run (--workflow) adds one `step NAME` line per step below the run's own
lines; with --quiet (the table is printed only when the run did not succeed), only
the steps where something failed.
"""

from __future__ import annotations

from typing import Any

from cli.progress import QuietDisplay
from pipeline.core.config import STDIO, RunConfig
from pipeline.core.words import counted, money
from pipeline.observe.step_stats import STEP_STATUSES
from pipeline.run.result import RunResult
from pipeline.write.paths import Target, target_kind

COMMITTED_EXIT_CODES = (0, 1)


def print_summary(result: RunResult, config: RunConfig, display: QuietDisplay) -> None:
    if display.settings.json:
        display.record("summary", result.summary)
        return
    for line in summary_lines(result, config, quiet=display.settings.quiet):
        display.say(line)


def summary_lines(result: RunResult, config: RunConfig, quiet: bool = False) -> list[str]:
    data = result.summary
    rows = [
        ("job", f"{data['job']} (trace {data['trace_id']}), exit {data['exit_code']}"),
        ("items", _items(data)),
        ("requests", _requests(data)),
        ("cost", _cost(data["cost"])),
        ("time", _time(data)),
        ("traffic", _traffic(data["traffic"], data["limits_used"])),
    ]
    if data["cache"] is not None:
        rows.append(("cache", _cache(data["cache"])))
    for name, step in data.get("steps", {}).items():
        if not quiet or step["failed"] or step["not_run"]:
            rows.append((f"step {name}", _step(step)))
    if result.exit_code in COMMITTED_EXIT_CODES:
        if config.output.results != STDIO:
            rows.append(("results", config.output.results))
        if config.output.quarantine != STDIO:
            rows.append(("quarantine", config.output.quarantine))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    if result.exit_code == 1:
        lines.append(
            f"more than {config.max_error_rate:.1%} of items were quarantined "
            "(--max-error-rate): exit 1"
        )
    elif result.exit_code not in COMMITTED_EXIT_CODES:
        lines.append(f"stopped with exit code {result.exit_code}: {what_was_written(config)}")
        if result.resumable_in is not None:
            lines.append(f"run the same command again to resume (state in {result.resumable_in})")
    return lines


def _items(data: dict[str, Any]) -> str:
    by_kind = ", ".join(f"{kind} {count:,}" for kind, count in data["quarantined_by_kind"].items())
    resumed = f" ({data['resumed']:,} done by earlier runs)" if data["resumed"] else ""
    cached = f" ({data['cached']:,} from the cache)" if data["cached"] else ""
    quarantined = f"{data['quarantined']:,} quarantined" + (f" ({by_kind})" if by_kind else "")
    skipped = data.get("skipped_by_where") or 0
    left_out = f", {skipped:,} skipped by --where" if skipped else ""
    ok = f"{data['succeeded']:,} ok{cached}"
    return f"{data['items']:,}{resumed}: {ok}{left_out}, {quarantined}"


def _requests(data: dict[str, Any]) -> str:
    tokens = data["tokens"]
    line = (
        f"{data['requests']:,}, {counted(data['retries'], 'retry')}, "
        f"{data['rate_limited_responses']:,} rate-limited; "
        f"tokens {tokens['prompt']:,} in, {tokens['completion']:,} out"
    )
    if data["resumed"]:
        job = data["whole_job"]["tokens"]
        line += f" this attempt ({job['prompt']:,} in, {job['completion']:,} out for the job)"
    return line


def _cost(cost: dict[str, Any]) -> str:
    if cost["this_attempt"] is None:
        return "unpriced (the price table does not list the model; see --price-in)"
    parts = [f"{money(cost['this_attempt'])} this attempt"]
    if cost["saved_by_cache"]:
        parts.append(f"{money(cost['saved_by_cache'])} saved by the cache")
    if cost["whole_job"] is not None and cost["whole_job"] != cost["this_attempt"]:
        parts.append(f"{money(cost['whole_job'])} for the job")
    return ", ".join(parts)


def _time(data: dict[str, Any]) -> str:
    stages = data["latency_ms_by_stage"]
    request, queue, limiter = stages["request"], stages["queue_wait"], stages["limiter_wait"]
    return (
        f"{data['wall_seconds']:,.1f}s, {data['items_per_second'] or 0:,.0f} items/s; "
        f"request p50 {_ms(request['p50'])} p95 {_ms(request['p95'])} "
        f"p99 {_ms(request['p99'])}; waits p95: queue {_ms(queue['p95'])}, "
        f"limiter {_ms(limiter['p95'])}"
    )


def _cache(cache: dict[str, Any]) -> str:
    rate = cache["hit_rate"]
    hit = "no look-ups" if rate is None else f"{rate:.0%} hits"
    return f"{hit} ({cache['hits']:,} hits, {cache['misses']:,} misses, {cache['stored']:,} stored)"


def _step(step: dict[str, Any]) -> str:
    """One workflow step: requests, how it ended for the items, tokens, cost, latency."""
    ended = [
        f"{step[status]:,} {status.replace('_', ' ')}" for status in STEP_STATUSES if step[status]
    ] or ["no items"]
    tokens = step["tokens"]
    cost = "unpriced" if step["cost_usd"] is None else money(step["cost_usd"])
    latency = step["latency_ms"]
    return (
        f"{counted(step['requests'], 'request')}, {counted(step['retries'], 'retry')}; "
        f"{', '.join(ended)}; tokens {tokens['prompt']:,} in, {tokens['completion']:,} out; "
        f"{cost}; p50 {_ms(latency['p50'])} p95 {_ms(latency['p95'])}"
    )


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


def _traffic(traffic: dict[str, Any], used: dict[str, float | None]) -> str:
    limits = []
    for kind in ("rpm", "tpm"):
        if traffic[kind]:
            share = f" ({used[kind]:.0%} used)" if used[kind] is not None else ""
            limits.append(f"{traffic[kind]:,.0f} {kind}{share}")
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
