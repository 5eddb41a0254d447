"""The cost of observation: `sluice run` with --trace-file and --metrics-file against
the same run without them, at latency 0 where sluice's own work is all there is.

Runs alternate (plain, observed, plain, ...) so drift on the machine hits both;
the median of each is compared. Target: observed under 10% slower.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from tests.bench.harness import measure, simulator, sluice_run, write_reviews

ROUNDS = 3


def observation(work: Path, items: int) -> None:
    source = write_reviews(work / "observation.jsonl", items)
    plain_walls, observed_walls, plain_cpu, observed_cpu = [], [], [], []
    with simulator("--latency", "0") as base_url:
        for round_number in range(ROUNDS):
            out = work / f"plain-{round_number}.jsonl"
            plain = measure(sluice_run(base_url, source, out, 64))
            observed_out = work / f"observed-{round_number}.jsonl"
            extra = [
                "--trace-file", str(work / f"trace-{round_number}.jsonl"),
                "--metrics-file", str(work / f"metrics-{round_number}.prom"),
            ]  # fmt: skip
            observed = measure([*sluice_run(base_url, source, observed_out, 64), *extra])
            plain_walls.append(plain.wall_seconds)
            observed_walls.append(observed.wall_seconds)
            plain_cpu.append(plain.cpu_seconds)
            observed_cpu.append(observed.cpu_seconds)
    plain_wall, observed_wall = statistics.median(plain_walls), statistics.median(observed_walls)
    spans = sum(1 for _ in (work / f"trace-{ROUNDS - 1}.jsonl").open("rb"))
    print(
        f"{'sluice run, latency 0, c=64':<44} {items / plain_wall:>8,.0f} items/s  "
        f"CPU {statistics.median(plain_cpu):.1f}s  (median of {ROUNDS})"
    )
    print(
        f"{'  same, --trace-file --metrics-file':<44} {items / observed_wall:>8,.0f} items/s  "
        f"CPU {statistics.median(observed_cpu):.1f}s  ({spans:,} spans)"
    )
    slower = observed_wall / plain_wall - 1
    print(f"  -> observed runs take {slower:+.1%} wall time (target: under +10%)")
