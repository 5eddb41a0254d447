"""sluice against its floor on six measures, in one table at the top of `make bench`.

Each figure is what a user timing the command sees: the whole process, wall clock.
The floors are the least code doing the same work: the bare aiohttp loop
(minimal_client.py, paced with --rpm for the rate-bound run), an orjson
read-parse-write loop for a re-run answered wholly by the cache, and `python -c pass`
for start-up. Repeated runs alternate floor and sluice, so drift on the machine
(heat, other load) hits both; medians are compared.

Three measures get a second, indented row whose floor does everything sluice promises
there and nothing else:
- throughput against promised_live.py (ids, digests, cache keys and look-ups, each
  answer stored in the cache before its slot is free, checkpoints committed in order);
- the cached re-run against promised_cached.py (ids, digests, cache keys, look-ups,
  checked answers);
- the start of a run against importing the libraries it runs on.
Both promised floors write the same rows as sluice, byte for byte. The first row says
how far sluice is from the bare loop; the second, how much of that is sluice's own.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from tests.bench.harness import (
    BIN,
    measure,
    simulator,
    simulator_stats,
    sluice_run,
    write_reviews,
)
from tests.bench.traffic import BURST_SECONDS, LATENCY, RPM

CONCURRENCY = 64
DEFAULT_CONCURRENCY = 16  # sluice's own default, used by both sides of the rate-bound run
THROUGHPUT_TARGET = 0.8
RATE_BOUND_TARGET = 1.03
CACHED_TARGET = 50_000
START_UP_TARGET_SECONDS = 0.15
# What a run answered by the cache cannot start without: its CLI, its event loop, its cache.
STACK_IMPORTS = "import typer, asyncio, diskcache, orjson"
RSS_TARGET_MB = 100
# The floor of a cached re-run: read, parse, add the answer, serialise, write; no lookups.
PARSE_WRITE_LOOP = """\
import sys, orjson
with open(sys.argv[1], "rb") as lines, open(sys.argv[2], "wb") as out:
    for line in lines:
        item = orjson.loads(line)
        item["output"] = "a stored answer"
        out.write(orjson.dumps(item) + b"\\n")
"""


@dataclass(frozen=True)
class Sizes:
    throughput: int
    rate_bound: int
    cached: int
    memory: tuple[int, int]
    runs: int
    start_up_runs: int


FULL = Sizes(5_000, 600, 100_000, (10_000, 1_000_000), runs=3, start_up_runs=5)
QUICK = Sizes(1_000, 300, 10_000, (10_000, 100_000), runs=1, start_up_runs=3)


@dataclass(frozen=True)
class Row:
    measure: str
    floor: str
    sluice: str
    ratio: str
    target: str


WIDTHS = (36, 24, 24, 6)


def floor(work: Path, quick: bool) -> None:
    sizes = QUICK if quick else FULL
    runs = f"medians of {sizes.runs} alternating runs" if sizes.runs > 1 else "1 run each"
    print(
        f"sluice against its floor: whole process, wall clock; {runs} (start-up "
        f"{sizes.start_up_runs}, RSS 1); "
        f"load average {os.getloadavg()[0]:.1f} at start",
        flush=True,
    )
    _print(Row("measure", "floor", "sluice", "ratio", "target"))
    for row in _throughput(work, sizes.throughput, sizes.runs):
        _print(row)
    for row in _rate_bound(work, sizes.rate_bound, sizes.runs):
        _print(row)
    for row in _cached_rerun(work, sizes.cached, sizes.runs):
        _print(row)
    _print(_start_up(sizes.start_up_runs))
    for row in _start_of_run(work, sizes.start_up_runs):
        _print(row)
    _print(_peak_rss(work, sizes.memory))


def _print(row: Row) -> None:
    cells = (row.measure, row.floor, row.sluice, row.ratio)
    line = " ".join(f"{cell:<{width}}" for cell, width in zip(cells, WIDTHS, strict=True))
    print(f"{line} {row.target}", flush=True)


def _alternating_medians(runs: int, *sides: Callable[[], float]) -> list[float]:
    """Median wall seconds of each side, the sides taking turns: a, b, a, b, ..."""
    walls: list[list[float]] = [[] for _ in sides]
    for _ in range(runs):
        for side, side_walls in zip(sides, walls, strict=True):
            side_walls.append(side())
    return [statistics.median(side_walls) for side_walls in walls]


def _throughput(work: Path, items: int, runs: int) -> list[Row]:
    """Two rows: against the bare loop, and against the least code keeping what a
    default run promises (promised_live.py), whose rows are the same bytes."""
    source = write_reviews(work / "floor-throughput.jsonl", items)
    out = work / "floor-out.jsonl"
    with simulator("--latency", "0") as base_url:
        bare = minimal_client(base_url, source, out, CONCURRENCY)
        # sluice_run and promised_live make new, empty cache (and state) directories at
        # each call: nothing is cached.
        floor_wall, promised_wall, our_wall = _alternating_medians(
            runs,
            lambda: measure(bare).wall_seconds,
            lambda: measure(promised_live(base_url, source, out, CONCURRENCY)).wall_seconds,
            lambda: measure(sluice_run(base_url, source, out, CONCURRENCY)).wall_seconds,
        )
    source.unlink()
    ours = f"{items / our_wall:,.0f} items/s"
    return [
        Row(
            f"throughput, {items:,} items, c={CONCURRENCY}",
            f"{items / floor_wall:,.0f} items/s",
            ours,
            f"{floor_wall / our_wall:.2f}",
            f">= {THROUGHPUT_TARGET} x floor",
        ),
        Row(
            "  against its promised work alone",
            f"{items / promised_wall:,.0f} items/s",
            ours,
            f"{promised_wall / our_wall:.2f}",
            # The most any run keeping those promises could reach against the bare loop.
            "(ids, digests, keys, cache store, checkpoints; "
            f"itself {floor_wall / promised_wall:.2f} x the bare loop)",
        ),
    ]


def promised_live(base_url: str, source: Path, output: Path, concurrency: int) -> list[str]:
    """promised_live.py's command line, with an empty cache and state of its own."""
    cache = tempfile.mkdtemp(prefix="cache-", dir=output.parent)
    state = tempfile.mkdtemp(prefix="state-", dir=output.parent)
    module = "tests.bench.promised_live"
    return [
        sys.executable, "-m", module, str(source), cache, state, base_url, str(output),
        str(concurrency),
    ]  # fmt: skip


@dataclass(frozen=True)
class Paced:
    """One rate-bound run: the whole process, its requests' span at the simulator (the
    first admitted to the last), and the 429s it got."""

    wall: float
    span: float
    refused: int


def _rate_bound(work: Path, items: int, runs: int) -> list[Row]:
    """Each run against a simulator of its own, so each starts with a full bucket; the
    two sides take turns. Two rows: the whole process against the ideal wall time, and
    its pacing alone (first request to last, no start-up) against the ideal pacing:
    the burst at once, then exactly the refill. Times are medians; 429s, the most any
    one run got."""
    source = write_reviews(work / "floor-rate-bound.jsonl", items)
    out, summary = work / "floor-rate-out.jsonl", work / "floor-rate-summary.json"
    rate = RPM / 60
    pacing = (items - rate * BURST_SECONDS) / rate
    ideal = pacing + LATENCY
    flags = ("--rpm", str(RPM), "--latency", str(LATENCY))

    def bare() -> Paced:
        with simulator(*flags) as base_url:
            paced = [*minimal_client(base_url, source, out, DEFAULT_CONCURRENCY), "--rpm", str(RPM)]
            wall, printed = _timed(paced)
            span = _admitting_span(base_url)
        return Paced(wall, span, orjson.loads(printed)["rate_limited_responses"])

    def ours() -> Paced:
        with simulator(*flags) as base_url:
            command = [
                *sluice_run(base_url, source, out, DEFAULT_CONCURRENCY),
                "--rpm", str(RPM), "--summary", str(summary),
            ]  # fmt: skip
            wall = measure(command).wall_seconds
            span = _admitting_span(base_url)
        return Paced(wall, span, orjson.loads(summary.read_bytes())["rate_limited_responses"])

    floor_runs: list[Paced] = []
    our_runs: list[Paced] = []
    for _ in range(runs):
        floor_runs.append(bare())
        our_runs.append(ours())
    source.unlink()
    floor_wall, our_wall = (
        statistics.median(r.wall for r in side) for side in (floor_runs, our_runs)
    )
    floor_span, our_span = (
        statistics.median(r.span for r in side) for side in (floor_runs, our_runs)
    )
    floor_refused, our_refused = (max(r.refused for r in side) for side in (floor_runs, our_runs))
    return [
        Row(
            f"rate-bound, {items:,} items, {RPM:,} rpm",
            f"{floor_wall / ideal:.3f} x ideal, {floor_refused:,} x 429",
            f"{our_wall / ideal:.3f} x ideal, {our_refused:,} x 429",
            f"{our_wall / floor_wall:.3f}",
            f"<= {RATE_BOUND_TARGET} x ideal ({ideal:.1f}s), 0 x 429",
        ),
        Row(
            "  its pacing alone, first to last",
            f"{floor_span / pacing:.3f} x ideal",
            f"{our_span / pacing:.3f} x ideal",
            f"{our_span / floor_span:.3f}",
            f"(requests admitted; ideal {pacing:.1f}s)",
        ),
    ]


def _admitting_span(base_url: str) -> float:
    """Seconds from the first request the simulator admitted to the last."""
    served = simulator_stats(base_url)
    return float(served["last_admitted_at"] - served["first_admitted_at"])


def _cached_rerun(work: Path, items: int, runs: int) -> list[Row]:
    """Two rows: against the bare read-parse-write loop, and against the least code doing
    what a cached re-run promises (promised_cached.py), whose rows are the same bytes."""
    source = write_reviews(work / "floor-cached.jsonl", items)
    out, summary = work / "floor-cached-out.jsonl", work / "floor-cached-summary.json"
    parse_write = [sys.executable, "-c", PARSE_WRITE_LOOP, str(source), str(out)]
    with simulator("--latency", "0") as base_url:
        command = [*sluice_run(base_url, source, out, CONCURRENCY), "--summary", str(summary)]
        cache_dir = command[command.index("--cache-dir") + 1]
        promised = [
            sys.executable, "-m", "tests.bench.promised_cached",
            str(source), cache_dir, base_url, str(work / "floor-promised-out.jsonl"),
        ]  # fmt: skip
        measure(command)  # fills the cache
        floor_wall, promised_wall, our_wall = _alternating_medians(
            runs,
            lambda: measure(parse_write).wall_seconds,
            lambda: measure(promised).wall_seconds,
            lambda: measure([*command, "--fresh"]).wall_seconds,
        )
    cached = orjson.loads(summary.read_bytes())["cached"]
    source.unlink()
    missed = "" if cached == items else f" ({cached:,} cached!)"
    ours = f"{items / our_wall:,.0f} items/s{missed}"
    return [
        Row(
            f"cached re-run, {items:,} items",
            f"{items / floor_wall:,.0f} items/s",
            ours,
            f"{floor_wall / our_wall:.2f}",
            f">= {CACHED_TARGET:,} items/s",
        ),
        Row(
            "  against its promised work alone",
            f"{items / promised_wall:,.0f} items/s",
            ours,
            f"{promised_wall / our_wall:.2f}",
            "(ids, digests, keys, look-ups, checks)",
        ),
    ]


def _start_up(runs: int) -> Row:
    python = [sys.executable, "-c", "pass"]
    version = [str(BIN / "sluice"), "--version"]
    floor_wall, our_wall = _alternating_medians(
        runs, lambda: measure(python).wall_seconds, lambda: measure(version).wall_seconds
    )
    return Row(
        "start-up (sluice --version)",
        f"{floor_wall:.3f} s",
        f"{our_wall:.3f} s",
        f"{our_wall / floor_wall:.1f}",
        f"<= {START_UP_TARGET_SECONDS} s",
    )


def _start_of_run(work: Path, runs: int) -> list[Row]:
    """A whole `sluice run` of one item answered by the cache: what a run costs before
    and after its items (imports, settings, state, final files), with no request.
    Two rows: against bare Python, and against importing the libraries such a run
    cannot do without (STACK_IMPORTS), which no change inside sluice can go below."""
    source = work / "floor-one.jsonl"
    source.write_bytes(b'{"id": "one", "text": "arrived late, works fine."}\n')
    out = work / "floor-one-out.jsonl"
    python = [sys.executable, "-c", "pass"]
    stack = [sys.executable, "-c", STACK_IMPORTS]
    with simulator("--latency", "0") as base_url:
        command = sluice_run(base_url, source, out, CONCURRENCY)
        measure(command)  # fills the cache
        floor_wall, stack_wall, our_wall = _alternating_medians(
            runs,
            lambda: measure(python).wall_seconds,
            lambda: measure(stack).wall_seconds,
            lambda: measure([*command, "--fresh"]).wall_seconds,
        )
    return [
        Row(
            "start of a run (1 item, cached)",
            f"{floor_wall:.3f} s",
            f"{our_wall:.3f} s",
            f"{our_wall / floor_wall:.1f}",
            f"<= {START_UP_TARGET_SECONDS} s",
        ),
        Row(
            "  against its libraries alone",
            f"{stack_wall:.3f} s",
            f"{our_wall:.3f} s",
            f"{our_wall / stack_wall:.1f}",
            "(typer, asyncio, diskcache, orjson)",
        ),
    ]


def _peak_rss(work: Path, sizes: tuple[int, int]) -> Row:
    """The engine alone (--no-cache --no-state): memory must not grow with the input."""
    peaks = []
    with simulator("--latency", "0") as base_url:
        for size in sizes:
            source = write_reviews(work / f"floor-memory-{size}.jsonl", size)
            command = [
                *sluice_run(base_url, source, work / "floor-memory-out.jsonl", CONCURRENCY),
                "--no-cache", "--no-state",
            ]  # fmt: skip
            peaks.append(measure(command).peak_rss_mb)
            source.unlink()
    small, large = sizes
    return Row(
        f"peak RSS, {small:,} -> {large:,} lines",
        "flat",
        f"{peaks[0]:,.0f} -> {peaks[1]:,.0f} MB",
        f"{peaks[1] / peaks[0]:.2f}",
        f"flat, < {RSS_TARGET_MB} MB",
    )


def minimal_client(base_url: str, source: Path, output: Path, concurrency: int) -> list[str]:
    """The bare loop's command line (add --rpm N for the paced one)."""
    module = "tests.bench.minimal_client"
    return [sys.executable, "-m", module, str(source), str(output), base_url, str(concurrency)]


def _timed(command: list[str]) -> tuple[float, bytes]:
    """Wall seconds of one child process, and what it printed."""
    started = time.perf_counter()
    finished = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        stderr = finished.stderr.decode()[-2000:]
        raise RuntimeError(f"{command[:3]} exited {finished.returncode}: {stderr}")
    return wall, finished.stdout
