"""Workflows' figures: a three-step workflow (two independent steps, a third after one of
them for about half the items) at simulator latency 100 ms, against the same work as
three separate `sluice run`s chained by hand, and against the ideal that concurrency
sets (every request's latency, `concurrency` at a time, nothing else).
"""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.bench.harness import measure, simulator, sluice_run, write_reviews

CONCURRENCY = 64
LATENCY = 0.1
WORKFLOW = """
[steps.sentiment]
prompt = "Sentiment of: {{ text }}"
schema = "label: positive|negative"

[steps.topic]
prompt = "Topic of: {{ text }}"

[steps.reply]
after = ["sentiment"]
when = 'steps.sentiment.output.label == "positive"'
prompt = "Thank the customer for: {{ text }}"
"""


def workflows(work: Path, items: int) -> None:
    source = write_reviews(work / "workflow.jsonl", items)
    workflow = work / "three_steps.toml"
    workflow.write_text(WORKFLOW)
    with simulator("--latency", str(LATENCY)) as base_url:
        summary = work / "workflow-summary.json"
        command = sluice_run(base_url, source, work / "workflow.out.jsonl", CONCURRENCY)
        command += ["--workflow", str(workflow), "--summary", str(summary)]
        together = measure(command)
        requests = orjson.loads(summary.read_bytes())["requests"]
        separate, separate_requests = _three_runs(work, base_url, source)
    ideal = requests * LATENCY / CONCURRENCY
    label = f"3-step workflow, {items:,} items, latency {LATENCY * 1000:g}ms, c={CONCURRENCY}"
    print(f"{label:<60} {together.wall_seconds:>6.1f}s  {requests:>7,} requests", flush=True)
    print(
        f"{'  same work as 3 separate sluice runs':<60} {separate:>6.1f}s  {separate_requests:>7,}"
    )
    print(f"{'  ideal (requests x latency / concurrency)':<60} {ideal:>6.1f}s")
    print(
        f"  -> workflow / separate runs {together.wall_seconds / separate:.2f}x; "
        f"workflow / ideal {together.wall_seconds / ideal:.2f}x; "
        f"peak RSS {together.peak_rss_mb:.0f} MB"
    )


def _three_runs(work: Path, base_url: str, source: Path) -> tuple[float, int]:
    """Sentiment, topic, then the replies over the sentiment run's results, as a user
    chains runs by hand; the wall times summed, and the requests sent."""
    sentiment_out = work / "sentiment.jsonl"
    sentiment = _with_prompt(
        sluice_run(base_url, source, sentiment_out, CONCURRENCY), "Sentiment of: {{ text }}"
    )
    topic = _with_prompt(
        sluice_run(base_url, source, work / "topic.jsonl", CONCURRENCY), "Topic of: {{ text }}"
    )
    reply = _with_prompt(
        sluice_run(base_url, sentiment_out, work / "reply.jsonl", CONCURRENCY),
        "Thank the customer for: {{ text }}",
    )
    runs = [
        [*sentiment, "--schema", "label: positive|negative"],
        topic,
        [*reply, "--where", 'output.label == "positive"', "--result-prefix", "reply_"],
    ]
    wall, requests = 0.0, 0
    for number, command in enumerate(runs):
        summary = work / f"separate-{number}.json"
        wall += measure([*command, "--summary", str(summary)]).wall_seconds
        requests += orjson.loads(summary.read_bytes())["requests"]
    return wall, requests


def _with_prompt(command: list[str], prompt: str) -> list[str]:
    at = command.index("-p")
    return [*command[: at + 1], prompt, *command[at + 2 :]]
