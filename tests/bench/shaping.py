"""Request shaping's figures: packed embeddings (requests and wall time, 1 vs 64 inputs a
request, at simulator latency 100 ms) and the cost of checking structured answers
(items/s with and without --schema at latency 0, where sluice's own work is all
there is). Runs alternate so drift on the machine hits both sides; medians compared.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import orjson

from tests.bench.harness import measure, simulator, sluice_run, write_reviews

ROUNDS = 3
SCHEMA = "label: positive|negative|neutral, score: int, reason: str"


def shaping(work: Path, embedding_items: int, structured_items: int) -> None:
    packed_embeddings(work, embedding_items)
    structured_output(work, structured_items)


def packed_embeddings(work: Path, items: int) -> None:
    source = write_reviews(work / "embed.jsonl", items)
    with simulator("--latency", "0.1") as base_url:
        for per_request in (1, 64):
            out = work / f"vectors-{per_request}.parquet"
            summary = work / f"embed-{per_request}.json"
            command = [
                *_embeddings(sluice_run(base_url, source, out, 64)),
                "--inputs-per-request", str(per_request), "--summary", str(summary),
            ]  # fmt: skip
            measured = measure(command)
            requests = orjson.loads(summary.read_bytes())["requests"]
            print(
                f"{f'embeddings, {per_request} input(s) a request, latency 100ms':<44} "
                f"{items / measured.wall_seconds:>8,.0f} items/s  {requests:>7,} requests  "
                f"({measured.wall_seconds:.1f}s, peak RSS {measured.peak_rss_mb:.0f} MB)",
                flush=True,
            )


def _embeddings(command: list[str]) -> list[str]:
    """The chat run's command, asking for embeddings of each item's text instead."""
    swapped = [("sim-embed" if arg == "sim-chat" else arg) for arg in command]
    prompt = swapped.index("-p")
    return [*swapped[:prompt], *swapped[prompt + 2 :], "--endpoint", "embeddings"]


def structured_output(work: Path, items: int) -> None:
    source = write_reviews(work / "structured.jsonl", items)
    plain_walls, typed_walls = [], []
    with simulator("--latency", "0") as base_url:
        for round_number in range(ROUNDS):
            plain = measure(sluice_run(base_url, source, work / f"plain-{round_number}.jsonl", 64))
            typed_out = work / f"typed-{round_number}.jsonl"
            typed = measure([*sluice_run(base_url, source, typed_out, 64), "--schema", SCHEMA])
            plain_walls.append(plain.wall_seconds)
            typed_walls.append(typed.wall_seconds)
    plain_wall, typed_wall = statistics.median(plain_walls), statistics.median(typed_walls)
    print(f"{'chat, latency 0, c=64':<44} {items / plain_wall:>8,.0f} items/s  (median of 3)")
    print(f"{'  same, --schema (3 fields), validated':<44} {items / typed_wall:>8,.0f} items/s")
    per_item = (typed_wall - plain_wall) / items * 1e6
    print(f"  -> --schema costs {typed_wall / plain_wall - 1:+.1%} wall, {per_item:.0f} us an item")
