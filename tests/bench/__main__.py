"""`make bench`: throughput, CPU and memory of `sluice run` against `sluice sim`.

Figures are printed, never asserted: targets are judged by a person reading them.

    python -m tests.bench [--quick]
"""

from __future__ import annotations

import argparse
import compileall
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench.durability import durability
from tests.bench.floor import floor, minimal_client
from tests.bench.harness import Measured, measure, simulator, sluice_run, write_reviews
from tests.bench.instructions import instructions
from tests.bench.observation import observation
from tests.bench.scale import engines, scale
from tests.bench.serve import serve
from tests.bench.shaping import shaping
from tests.bench.traffic import traffic
from tests.bench.workflows import workflows

THROUGHPUT_ITEMS = 20_000
GROUPS = [
    "floor", "instructions", "throughput", "memory", "traffic", "durability", "observation",
    "shaping", "workflows", "serve", "scale",
]  # fmt: skip


def _report(label: str, items: int, measured: Measured) -> None:
    print(
        f"{label:<44} {items / measured.wall_seconds:>8,.0f} items/s  "
        f"{measured.cpu_seconds / items * 1000:>6.3f} CPU s/1k items  "
        f"peak RSS {measured.peak_rss_mb:>6.0f} MB  ({measured.wall_seconds:.1f}s)",
        flush=True,
    )


def throughput(work: Path, items: int) -> None:
    source = write_reviews(work / "throughput.jsonl", items)
    out = work / "out.jsonl"
    for latency, concurrency in (("0", 64), ("0.2", 256)):
        label = f"latency {float(latency) * 1000:g}ms, c={concurrency}"
        with simulator("--latency", latency) as base_url:
            floor = measure(minimal_client(base_url, source, out, concurrency))
            _report(f"minimal aiohttp loop, {label}", items, floor)
            ours = measure(sluice_run(base_url, source, out, concurrency))
            _report(f"sluice run, {label}", items, ours)
            # What checkpoints and the cache add, against the engine alone.
            lean = [*sluice_run(base_url, source, out, concurrency), "--no-cache", "--no-state"]
            _report("  same, --no-cache --no-state", items, measure(lean))
        ratio = floor.wall_seconds / ours.wall_seconds
        ideal = f"; ideal {concurrency / float(latency):,.0f} items/s" if float(latency) else ""
        print(f"  -> sluice / minimal loop: {ratio:.2f}x{ideal}")


def simulator_speed(requests: int) -> None:
    """How fast `sluice sim` answers a lean client: the ceiling for everything below.

    Run in a child process: anything this process allocates would be inherited by
    every child it forks and inflate their peak RSS.
    """
    module = "tests.bench.sim_throughput"
    subprocess.run([sys.executable, "-m", module, "--requests", str(requests)], check=True)


def memory(work: Path, sizes: list[int]) -> None:
    peaks = []
    with simulator() as base_url:
        for size in sizes:
            source = write_reviews(work / f"memory-{size}.jsonl", size)
            measured = measure(sluice_run(base_url, source, work / "out.jsonl", 64))
            _report(f"sluice run, {size:,} lines, latency 0, c=64", size, measured)
            peaks.append(measured.peak_rss_mb)
            source.unlink()
    if len(peaks) == 2:
        print(f"  -> peak RSS ratio {peaks[1] / peaks[0]:.2f}x (target <= 1.2x, and < 300 MB)")


def compile_bytecode() -> None:
    """Measure starts as a user's install makes them: with every module's bytecode
    written. Under PYTHONDONTWRITEBYTECODE (or in a fresh clone) each sluice process
    would otherwise compile the modules changed since the last write, every time:
    ~0.1-0.4 s of each start that no installed copy pays."""
    root = Path(__file__).resolve().parents[2]
    for package in ("cli", "pipeline"):
        compileall.compile_dir(root / package, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--only",
        choices=GROUPS,
        help="run one group of figures",
    )
    args = parser.parse_args()
    compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as directory:
        work = Path(directory)
        # The runs' history goes here, never into the user's.
        os.environ["XDG_STATE_HOME"] = str(work / "state")
        if args.only in (None, "floor"):
            floor(work, quick=args.quick)
        if args.only in (None, "instructions"):
            instructions(work, quick=args.quick)
        if args.only in (None, "throughput"):
            simulator_speed(2_000 if args.quick else THROUGHPUT_ITEMS)
            throughput(work, 2_000 if args.quick else THROUGHPUT_ITEMS)
        if args.only in (None, "memory"):
            memory(work, [10_000, 100_000] if args.quick else [100_000, 1_000_000])
        if args.only in (None, "traffic"):
            traffic(work, 400 if args.quick else 1_000)
        if args.only in (None, "observation"):
            observation(work, 2_000 if args.quick else THROUGHPUT_ITEMS)
        if args.only in (None, "shaping"):
            if args.quick:
                shaping(work, embedding_items=5_000, structured_items=2_000)
            else:
                shaping(work, embedding_items=100_000, structured_items=THROUGHPUT_ITEMS)
        if args.only in (None, "workflows"):
            workflows(work, 1_000 if args.quick else 5_000)
        if args.only in (None, "serve"):
            serve(work, 200 if args.quick else 1_000)
        if args.only in (None, "scale"):
            scale(work, 1_200 if args.quick else 2_400)
            engines(work, 2_000 if args.quick else 5_000)
        if args.only in (None, "durability"):
            if args.quick:
                durability(work, cached_items=20_000, kill_items=600, checkpoint_items=5_000)
            else:
                durability(work, cached_items=100_000, kill_items=2_000)


if __name__ == "__main__":
    main()
