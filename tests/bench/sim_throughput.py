"""How many chat requests per second `sluice sim` answers, at latency 0.

    .venv/bin/python -m tests.bench.sim_throughput [--requests N] [--concurrency N]

Starts `sluice sim --port 0` in its own process, so the client's CPU is not the
server's, and fires requests at it from a lean aiohttp client.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import aiohttp
import orjson

from tests.bench.harness import simulator


async def fire(base_url: str, total: int, concurrency: int) -> tuple[float, int]:
    """Send `total` chat requests, `concurrency` at a time; return seconds taken and failures."""
    url = f"{base_url}/chat/completions"
    bodies = [
        orjson.dumps({"model": "sim-chat", "messages": [{"role": "user", "content": f"item {i}"}]})
        for i in range(total)
    ]
    headers = {"Content-Type": "application/json"}
    next_index = iter(range(total))
    failures = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        for index in next_index:
            async with session.post(url, data=bodies[index], headers=headers) as response:
                await response.read()
                failures += response.status != 200

    # Lean: no cookies, no decompression, no per-request timer, no extra headers,
    # so the client's CPU is spent on the requests themselves.
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
    ) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return time.perf_counter() - started, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with simulator() as base_url:
        asyncio.run(fire(base_url, 500, args.concurrency))  # warm up connections and caches
        seconds, failures = asyncio.run(fire(base_url, args.requests, args.concurrency))
    print(
        f"sluice sim: {args.requests / seconds:,.0f} requests/s "
        f"({args.requests} chat requests, concurrency {args.concurrency}, "
        f"{failures} not 200, {seconds:.2f}s)"
    )
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
