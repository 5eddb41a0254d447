"""Scale-out figures: a rate-bound job split over 1, 2 and 4 processes sharing one
account's limits through --shared-limits (and 2 processes each on its own, for
contrast), against a simulator that allows RPM requests a minute with a one-second
burst. The ideal is the account's pace: (items - burst) / rate.

Then a latency-bound job (every answer takes 500 ms, no limits) sent by this
process (the asyncio engine) and by 2 Ray workers on a local Ray instance
(--engine ray, when Ray is installed), with what the Ray engine costs before its
first request (start-up) and per batch.
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


LATENCY = 0.5
PER_WORKER = 64  # --concurrency: requests in flight per engine (each Ray worker has its own)


def engines(work: Path, items: int) -> None:
    """The latency-bound job: the asyncio engine, then the Ray engine with 2 workers."""
    source = write_reviews(work / "engines.jsonl", items)
    with simulator("--latency", str(LATENCY)) as base_url:
        local = _engine_run(work, source, base_url, "local")
        print(_engine_line("asyncio engine, 1 process", items, local, 1), flush=True)
        try:
            import ray  # noqa: F401
        except ImportError:
            print("Ray engine: Ray is not installed (pip install 'sluice[ray]')", flush=True)
            return
        ray_wall = _engine_run(
            work, source, base_url, "ray", "--engine", "ray", "--ray-workers", "2"
        )
        print(_engine_line("Ray engine, 2 workers", items, ray_wall, 2), flush=True)
        start_up = _engine_run(
            work,
            write_reviews(work / "one.jsonl", 1),
            base_url,
            "one",
            "--engine",
            "ray",
            "--ray-workers",
            "2",
        )
        print(
            f"{'Ray engine start-up and shutdown (1 item)':<56} {start_up:>6.1f}s "
            f"(1 item alone: {LATENCY:.1f}s)",
            flush=True,
        )


def _engine_line(label: str, items: int, wall: float, engines: int) -> str:
    ideal = items * LATENCY / (PER_WORKER * engines)
    return (
        f"{items:,} items at {LATENCY * 1000:.0f} ms, {label:<28} {wall:>6.1f}s  "
        f"(ideal {ideal:.1f}s)"
    )


def _engine_run(work: Path, source: Path, base_url: str, name: str, *extra: str) -> float:
    command = [
        str(BIN / "sluice"), "run", str(source), "-o", str(work / f"engine-{name}.jsonl"),
        "-m", "sim-chat", "-p", "Review: {{ text }}", "-c", str(PER_WORKER),
        "--base-url", base_url, "--no-cache", "--no-state", "-q", *extra,
    ]  # fmt: skip
    env = {**os.environ, "OPENAI_API_KEY": ""}
    started = time.monotonic()
    subprocess.run(command, env=env, stderr=subprocess.DEVNULL, check=True)
    return time.monotonic() - started


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
