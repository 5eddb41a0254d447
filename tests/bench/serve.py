"""sluice serve's figures: the synchronous round trip for one item at simulator latency 0
(p50/p99 over many requests, beside the same request sent straight to the simulator, so
the server's own overhead shows), and 20 concurrent jobs of 1,000 items at latency 50 ms
against one `sluice run` of all 20,000 items at the same concurrency.
"""

from __future__ import annotations

import statistics
import time
import urllib.request
from pathlib import Path

import orjson

from tests.bench.harness import measure, simulator, sluice_run, write_reviews
from tests.serve_process import ServeProcess

CONCURRENCY = 64
JOBS = 20
JOB_ITEMS = 1_000


def serve(work: Path, round_trips: int) -> None:
    sync_round_trip(work, round_trips)
    concurrent_jobs(work)


def sync_round_trip(work: Path, requests: int) -> None:
    with simulator("--latency", "0") as base_url:
        direct = [_direct(base_url, n) for n in range(requests)]
        with ServeProcess(work / "sync-data", base_url, "--cache-dir", str(work / "c")) as server:
            served = []
            for n in range(requests):
                item = {"id": n, "text": f"sync item {n}"}  # distinct: never from the cache
                started = time.perf_counter()
                status, _ = server.call("POST", "/v1/process", {"items": [item]})
                served.append(time.perf_counter() - started)
                assert status == 200, status
    for label, times in (("straight to the simulator", direct), ("POST /v1/process", served)):
        print(
            f"{f'1 item, latency 0, {label}':<52} p50 {_ms(times, 0.5):>7.1f} ms  "
            f"p99 {_ms(times, 0.99):>7.1f} ms",
            flush=True,
        )
    overhead = statistics.median(served) - statistics.median(direct)
    print(f"  -> the server's own overhead: {overhead * 1000:.1f} ms a synchronous job (p50)")


def _direct(base_url: str, n: int) -> float:
    body = {"model": "sim-chat", "messages": [{"role": "user", "content": f"Label: direct {n}"}]}
    request = urllib.request.Request(
        base_url + "/chat/completions", data=orjson.dumps(body), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
    return time.perf_counter() - started


def concurrent_jobs(work: Path) -> None:
    total = JOBS * JOB_ITEMS
    with simulator("--latency", "0.05") as base_url:
        extra = ("-c", str(CONCURRENCY), "--max-running-jobs", str(JOBS))
        with ServeProcess(work / "jobs-data", base_url, *extra) as server:
            started = time.perf_counter()
            ids = [
                server.call("POST", "/v1/jobs", {"items": _job_items(j)})[1]["id"]
                for j in range(JOBS)
            ]
            for job_id in ids:
                assert server.wait_for(job_id, timeout=600)["status"] == "succeeded"
            served = time.perf_counter() - started
        source = write_reviews(work / "one-run.jsonl", total)
        one = measure(sluice_run(base_url, source, work / "one-run.out.jsonl", CONCURRENCY))
    ideal = total * 0.05 / CONCURRENCY
    print(
        f"{f'{JOBS} jobs x {JOB_ITEMS:,} items, latency 50ms, c={CONCURRENCY}':<52} "
        f"{total / served:>8,.0f} items/s  ({served:.1f}s)"
    )
    print(
        f"{f'one sluice run of {total:,} items, same settings':<52} "
        f"{total / one.wall_seconds:>8,.0f} items/s  ({one.wall_seconds:.1f}s)"
    )
    print(
        f"  -> jobs / one run {one.wall_seconds / served:.2f}x the throughput; "
        f"ideal {total / ideal:,.0f} items/s"
    )


def _job_items(job: int) -> list[dict[str, str]]:
    return [
        {"id": f"j{job}-{n:05d}", "text": f"Review {job}/{n}: arrived late, works fine."}
        for n in range(JOB_ITEMS)
    ]


def _ms(times: list[float], fraction: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000
