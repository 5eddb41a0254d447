"""Where a run's CPU goes, item by item: instructions counted by valgrind's callgrind.

Wall-clock figures move with the machine (the same bench has measured the bare loop
anywhere from 5,300 to 7,300 items/s); instruction counts move by a few percent at
most (how many answers one turn of the event loop takes varies). Each command runs
twice under callgrind, on 1,000 and on 3,000 items (200 and 600 with --quick): the
difference over the 2,000 items between is what one more item costs, with the
start-up left out.

The commands are the floor table's (floor.py): the bare loop, the least code keeping a
default run's promises, and `sluice run`, then sluice again without checkpoints
(--no-state) and without the cache (--no-cache), which shows what each of those
promises costs an item inside sluice. The same for a re-run answered by the cache.

At latency 0 a run is bound by the CPU of the process sending (the simulator has a
core of its own), so a share of the bare loop's instructions is, to a first
approximation, the same share of its throughput: the arrow line says how many an item
may cost for 0.8 x the bare loop's throughput.

Needs valgrind (`apt install valgrind`); without it the group says so and is skipped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from tests.bench.floor import CONCURRENCY, THROUGHPUT_TARGET, minimal_client, promised_live
from tests.bench.harness import simulator, sluice_run, write_reviews

COLLECTED = re.compile(rb"Collected : (\d+)")
Command = Callable[[Path, Path], list[str]]  # (input, output) -> the command line
Inputs = list[tuple[int, Path]]  # the two inputs, each with its number of items


class Cost(NamedTuple):
    per_item: float  # instructions one more item costs
    fixed: float  # the rest: start-up and end, whatever the size


def instructions(work: Path, quick: bool = False) -> None:
    if shutil.which("valgrind") is None:
        print("instructions per item: skipped, valgrind is not installed", flush=True)
        return
    small, large = (200, 600) if quick else (1_000, 3_000)
    sources = [(n, write_reviews(work / f"instructions-{n}.jsonl", n)) for n in (small, large)]
    out = work / "instructions-out.jsonl"
    print(
        f"instructions per item (callgrind, whole process: {small:,} items against "
        f"{large:,}, start-up left out)",
        flush=True,
    )
    print(f"{'command':<44} {'per item':>10} {'x first row':>12} {'start and end':>14}")
    with simulator("--latency", "0") as base_url:
        bare = _cost(sources, out, lambda s, o: minimal_client(base_url, s, o, CONCURRENCY))
        _row("bare loop (floor.py's floor)", bare, bare)
        _row(
            "promised work alone (promised_live.py)",
            _cost(sources, out, lambda s, o: promised_live(base_url, s, o, CONCURRENCY)),
            bare,
        )
        for label, flags in (
            ("sluice run, defaults", ()),
            ("  --no-state (no checkpoints)", ("--no-state",)),
            ("  --no-cache", ("--no-cache",)),
            ("  --no-cache --no-state", ("--no-cache", "--no-state")),
        ):
            _row(label, _cost(sources, out, _sluice(base_url, *flags)), bare)
        allowed = bare.per_item / THROUGHPUT_TARGET / 1000
        print(f"  -> at {THROUGHPUT_TARGET} x the bare loop's throughput, ~{allowed:,.0f}k an item")
        _cached(work, sources, base_url)
    for _, source in sources:
        source.unlink()


def _cached(work: Path, sources: Inputs, base_url: str) -> None:
    """A re-run answered wholly by one cache, filled by a first run of each input."""
    cache = tempfile.mkdtemp(prefix="cache-", dir=work)
    out = work / "instructions-cached-out.jsonl"

    def sluice(*flags: str) -> Command:
        def command(source: Path, output: Path) -> list[str]:
            line = [*sluice_run(base_url, source, output, CONCURRENCY), *flags]
            line[line.index("--cache-dir") + 1] = cache
            return line

        return command

    for _, source in sources:
        subprocess.run(sluice()(source, out), stdin=subprocess.DEVNULL, check=True)

    def promised(source: Path, output: Path) -> list[str]:
        module = "tests.bench.promised_cached"
        return [sys.executable, "-m", module, str(source), cache, base_url, str(output)]

    print("re-run answered by the cache:")
    floor = _cost(sources, out, promised)
    _row("  promised work alone (promised_cached.py)", floor, floor)
    _row("  sluice run --fresh", _cost(sources, out, sluice("--fresh")), floor)
    without_state = _cost(sources, out, sluice("--fresh", "--no-state"))
    _row("    --no-state (no checkpoints)", without_state, floor)


def _sluice(base_url: str, *flags: str) -> Command:
    """sluice_run's command (a new, empty cache at each call) with `flags` added."""
    return lambda source, output: [*sluice_run(base_url, source, output, CONCURRENCY), *flags]


def _cost(sources: Inputs, output: Path, command: Command) -> Cost:
    (small, first), (large, second) = sources
    small_count, large_count = _counted(command(first, output)), _counted(command(second, output))
    per_item = (large_count - small_count) / (large - small)
    return Cost(per_item, small_count - per_item * small)


def _counted(command: list[str]) -> int:
    """Instructions the whole process ran, as callgrind counts them (its own output
    file is thrown away: only the total is wanted)."""
    valgrind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    finished = subprocess.run([*valgrind, *command], stdin=subprocess.DEVNULL, capture_output=True)
    if finished.returncode != 0:
        stderr = finished.stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"{command[:3]} exited {finished.returncode}: {stderr}")
    found = COLLECTED.search(finished.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count for {command[:3]}")
    return int(found.group(1))


def _row(label: str, cost: Cost, first: Cost) -> None:
    """`first`: the first row of the section (a floor), which ratios are taken against."""
    ratio = cost.per_item / first.per_item
    print(
        f"{label:<44} {cost.per_item / 1000:>9,.0f}k {ratio:>12.2f} {cost.fixed / 1e6:>13,.0f}M",
        flush=True,
    )
