"""What durability costs and what it saves: the response cache, checkpoints, and kills.

Every run gets its own `--cache-dir` inside the work directory, so a benchmark
never reads or fills ~/.cache, and runs that must not share answers do not.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import time
from pathlib import Path

import orjson

from tests.bench.harness import measure, simulator, simulator_stats, sluice_run, write_reviews

CACHED_TARGET = 20_000  # items/s of a re-run answered wholly from the cache
# Re-runs of a finished run; the second shows what checkpoints cost when no request is awaited.
RERUNS = (("re-run, state on (--fresh)", "--fresh"), ("re-run, --no-state", "--no-state"))
CHECKPOINT_ITEMS = 20_000
CHECKPOINT_REPEATS = 5  # the machine varies by ±20% from run to run; medians of 5 steady it
CHECKPOINT_TARGET_PERCENT = 10.0
KILL_LATENCY = 0.05
KILL_CONCURRENCY = 16
# Shares of the items the simulator has seen as requests when each kill lands:
# spread from before the first commits to well into the run.
KILL_AT = (0.10, 0.25, 0.40, 0.55, 0.70)
POLL_SECONDS = 0.02
RUN_TIMEOUT_SECONDS = 300.0


def durability(
    work: Path, cached_items: int, kill_items: int, checkpoint_items: int = CHECKPOINT_ITEMS
) -> None:
    cached_rerun(work, cached_items)
    checkpoint_overhead(work, checkpoint_items)
    paid_twice_over_kills(work, kill_items)


def cached_rerun(work: Path, items: int) -> None:
    source = write_reviews(work / "cached.jsonl", items)
    out, cache = work / "cached-out.jsonl", work / "cache-rerun"
    print(f"cached re-run: {items:,} items, latency 0, c=64; target >= {CACHED_TARGET:,} items/s")
    with simulator() as base_url:
        command = [*sluice_run(base_url, source, out, 64), "--cache-dir", str(cache)]
        _rerun("first run, fills the cache", command, work, base_url, items, target=None)
        # --fresh is a no-op after a finished run (its state is gone) but says what is meant:
        # a new run from scratch whose answers all happen to be stored already.
        for label, flag in RERUNS:
            _rerun(label, [*command, flag], work, base_url, items, target=0)
    source.unlink()


def _rerun(
    label: str, command: list[str], work: Path, base_url: str, items: int, target: int | None
) -> None:
    before = simulator_stats(base_url)["requests_total"]
    summary_path = work / "cached-summary.json"
    measured = measure([*command, "--summary", str(summary_path)])
    summary = orjson.loads(summary_path.read_bytes())
    # Counted by the simulator as well as by the run: 0 must mean nothing went out.
    seen = simulator_stats(base_url)["requests_total"] - before
    # The process figure includes Python's start-up and imports; the summary's is the run alone.
    print(
        f"  {label:<28} process {items / measured.wall_seconds:>8,.0f} items/s "
        f"({measured.wall_seconds:5.2f}s), run {summary['items_per_second'] or 0:>8,.0f} items/s "
        f"({summary['wall_seconds']:5.2f}s); {summary['cached']:,} cached; "
        f"requests {summary['requests']:,} (simulator saw {seen:,}"
        + ("" if target is None else f"; target {target}")
        + ")",
        flush=True,
    )


def checkpoint_overhead(work: Path, items: int) -> None:
    """Wall time with checkpoints against straight writes, the cache off so every item is sent.

    Alternating the two spreads any drift of the machine (heat, other load) over both.
    """
    source = write_reviews(work / "checkpoint.jsonl", items)
    out = work / "checkpoint-out.jsonl"
    walls: dict[str, list[float]] = {"state": [], "no-state": []}
    with simulator() as base_url:
        command = [*sluice_run(base_url, source, out, 64), "--no-cache"]
        for _ in range(CHECKPOINT_REPEATS):
            walls["state"].append(measure(command).wall_seconds)
            walls["no-state"].append(measure([*command, "--no-state"]).wall_seconds)
    with_state, without = (statistics.median(walls[kind]) for kind in ("state", "no-state"))
    print(
        f"checkpoint overhead: {items:,} items, latency 0, c=64, --no-cache, "
        f"median of {CHECKPOINT_REPEATS} alternating runs each\n"
        f"  state on {with_state:6.2f}s ({items / with_state:,.0f} items/s; runs "
        f"{_seconds(walls['state'])}), --no-state {without:6.2f}s ({items / without:,.0f} "
        f"items/s; runs {_seconds(walls['no-state'])})\n"
        f"  -> overhead {(with_state / without - 1) * 100:+.1f}% "
        f"(target < {CHECKPOINT_TARGET_PERCENT:g}%)",
        flush=True,
    )
    source.unlink()


def _seconds(walls: list[float]) -> str:
    return ", ".join(f"{wall:.2f}" for wall in walls)


def paid_twice_over_kills(work: Path, items: int) -> None:
    """SIGKILL a run again and again, resume it, and count the requests sent twice.

    Every answer is cached as it arrives, and all the runs share one cache dir, so
    only requests on the wire at a kill can be paid again: at most `concurrency` each.
    """
    # Imported here, not at the top: verify pulls in the input readers, and a bigger
    # parent process is not wanted while the other sections measure their children.
    from pipeline.run.verify import verify

    source = write_reviews(work / "kills.jsonl", items)  # every text distinct
    out, quarantine = work / "kills-out.jsonl", work / "kills-out.quarantine.jsonl"
    print(f"paid twice over kills: {items:,} items, latency {KILL_LATENCY * 1000:g} ms, "
          f"c={KILL_CONCURRENCY}, SIGKILL at {', '.join(f'{s:.0%}' for s in KILL_AT)} "
          "of the items sent")  # fmt: skip
    with simulator("--latency", str(KILL_LATENCY)) as base_url:
        command = [
            *sluice_run(base_url, source, out, KILL_CONCURRENCY),
            "--cache-dir", str(work / "cache-kills"),
        ]  # fmt: skip
        kills, finished = _kill_repeatedly(command, base_url, items)
        if not finished:
            measure(command)  # the same command once more, left to finish: it resumes
        served = simulator_stats(base_url)
    counts = served["requests_by_digest"].values()
    paid_twice = sum(count - 1 for count in counts if count > 1)
    report = verify([str(source)], [str(out)], [str(quarantine)])
    print(
        f"  {kills} kills{'' if not finished else ' (the run finished before the rest)'}; "
        f"{served['requests_total']:,} requests for {items:,} items; "
        f"{paid_twice:,} paid twice (bound kills x concurrency = {kills * KILL_CONCURRENCY}); "
        f"every id once, in order: {report.ok}",
        flush=True,
    )
    if not report.ok:
        for line in report.lines():
            print(f"    {line}")
    source.unlink()


def _kill_repeatedly(command: list[str], base_url: str, items: int) -> tuple[int, bool]:
    """Start the command and SIGKILL it at each of KILL_AT; (kills made, whether it finished)."""
    kills = 0
    for share in KILL_AT:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        # The simulator's count spans every run so far, so the kills follow the job's progress.
        if _wait_for_requests(process, base_url, round(items * share)):
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
            kills += 1
            continue
        stderr = process.communicate(timeout=30)[1].decode()
        if process.returncode != 0:
            raise RuntimeError(f"sluice run exited {process.returncode}: {stderr[-2000:]}")
        print(f"  the run finished before the kill at {share:.0%}", flush=True)
        return kills, True
    return kills, False


def _wait_for_requests(process: subprocess.Popen[bytes], base_url: str, total: int) -> bool:
    """Until the simulator has seen `total` requests (True) or the run ended by itself (False)."""
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while process.poll() is None:
        if simulator_stats(base_url)["requests_total"] >= total:
            return True
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"sluice run sent fewer than {total} requests in time")
        time.sleep(POLL_SECONDS)
    return False
