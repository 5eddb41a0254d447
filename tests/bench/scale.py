"""Scale-out figures: a rate-bound job split over 1, 2 and 4 processes sharing one
account's limits through --shared-limits (and 2 processes each on its own, for
contrast), against a simulator that allows RPM requests a minute with a one-second
burst. The ideal is the account's pace: (items - burst) / rate.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import orjson

from tests.bench.harness import BIN, simulator, write_reviews

RPM = 6_000
BURST_SECONDS = 1.0


def scale(work: Path, items: int) -> None:
    rate = RPM / 60
    ideal = (items - rate * BURST_SECONDS) / rate
    flags = ("--rpm", str(RPM), "--burst-seconds", str(BURST_SECONDS), "--latency", "0.02")
    for processes, shared in ((1, True), (2, True), (4, True), (2, False)):
        with simulator(*flags) as base_url:
            wall, rate_limited = _together(work, base_url, items, processes, shared)
        label = f"{items:,} items in {processes} process(es), " + (
            "--shared-limits" if shared else "each its own limits"
        )
        print(
            f"{label:<56} {wall:>6.1f}s  {rate_limited:>5,} 429s  "
            f"({wall / ideal:.2f}x the ideal {ideal:.1f}s)",
            flush=True,
        )


def _together(
    work: Path, base_url: str, items: int, processes: int, shared: bool
) -> tuple[float, int]:
    limits = work / f"limits-{processes}-{shared}.sqlite"
    commands = []
    for p in range(processes):
        source = write_reviews(work / f"scale-{p}.jsonl", items // processes)
        command = [
            str(BIN / "sluice"), "run", str(source), "-o", str(work / f"scale-{p}.out.jsonl"),
            "-m", "sim-chat", "-p", "Review: {{ text }}", "-c", "32", "--base-url", base_url,
            "--no-cache", "--no-state", "-q", "--summary", str(work / f"scale-{p}.json"),
        ]  # fmt: skip
        if shared:
            command += ["--shared-limits", str(limits)]
        commands.append(command)
    env = {**os.environ, "OPENAI_API_KEY": ""}
    started = time.monotonic()
    running = [subprocess.Popen(c, env=env, stderr=subprocess.DEVNULL) for c in commands]
    for process in running:
        process.wait()
    wall = time.monotonic() - started
    summaries = [orjson.loads((work / f"scale-{p}.json").read_bytes()) for p in range(processes)]
    return wall, sum(summary["rate_limited_responses"] for summary in summaries)
