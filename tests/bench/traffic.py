"""Rate-bound runs against a simulator that enforces limits like a provider.

The simulator allows 1,200 requests a minute as a bucket holding ten seconds'
worth (200), refilled continuously, and answers in 300 ms. The ideal wall time
of 1,000 items is (items - burst) / rate + one latency: spend the burst at
once, then keep pace with the refill exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from tests.bench.harness import BIN, PROMPT, measure, simulator, simulator_stats, write_reviews

ITEMS = 1_000
RPM = 1_200
BURST_SECONDS = 10.0
LATENCY = 0.3


@dataclass(frozen=True)
class Scenario:
    label: str
    simulator_flags: tuple[str, ...]
    sluice_flags: tuple[str, ...]
    target: str


FAULTS = ("--fail-rate", "0.05", "--drop-rate", "0.02", "--hang-rate", "0.01")
SCENARIOS = (
    Scenario("(a) --rpm 1200 given", (), ("--rpm", str(RPM)), "within 3% of ideal, no 429"),
    Scenario("(b) no limits given", (), (), "within 10% of ideal, 429s < 2% of requests"),
    Scenario(
        "(c) 5% 5xx, 2% drops, 1% hangs, no limits",
        FAULTS,
        (),
        "every good item lands, extra requests < 10%",
    ),
)


def traffic(work: Path, items: int = ITEMS) -> None:
    source = write_reviews(work / "traffic.jsonl", items)
    ideal = (items - RPM / 60 * BURST_SECONDS) / (RPM / 60) + LATENCY
    print(f"rate-bound runs: {items:,} items, {RPM} rpm, latency {LATENCY * 1000:g} ms; "
          f"ideal {ideal:.1f}s")  # fmt: skip
    for scenario in SCENARIOS:
        _run_scenario(work, source, items, ideal, scenario)


def _run_scenario(work: Path, source: Path, items: int, ideal: float, scenario: Scenario) -> None:
    flags = ("--rpm", str(RPM), "--latency", str(LATENCY), *scenario.simulator_flags)
    output, summary = work / "traffic-out.jsonl", work / "traffic-summary.json"
    with simulator(*flags) as base_url:
        command = [
            str(BIN / "sluice"), "run", str(source), "-o", str(output), "-m", "sim-chat",
            "-p", PROMPT, "--base-url", base_url, "--summary", str(summary), "-q",
            "--max-error-rate", "1", *scenario.sluice_flags,
        ]  # fmt: skip
        measured = measure(command)
        served = simulator_stats(base_url)
    ours = orjson.loads(summary.read_bytes())
    requests = served["requests_total"]
    run_wall = ours["wall_seconds"]  # the run itself, without Python's start-up
    print(
        f"{scenario.label:<42} run {run_wall:5.1f}s = {run_wall / ideal:.3f} x ideal"
        f" (process {measured.wall_seconds:.1f}s = {measured.wall_seconds / ideal:.3f} x);"
        f" {requests:,} requests ({(requests - items) / items:+.1%} beyond one per item),"
        f" {served['rate_limited']} x 429 ({served['rate_limited'] / requests:.1%});"
        f" {ours['succeeded']:,} landed, {ours['quarantined']} quarantined;"
        f" timeouts {ours['traffic']['timeouts']}, lowest concurrency"
        f" {ours['traffic']['lowest_concurrency']}.  Target: {scenario.target}",
        flush=True,
    )
