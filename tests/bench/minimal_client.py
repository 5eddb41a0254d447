"""The floor: the least code that sends the same requests and writes the answers.

    python -m tests.bench.minimal_client INPUT OUTPUT BASE_URL CONCURRENCY [--rpm N]

No templates, retries, ordering, ids or validation: sluice's overhead is measured
against this loop. With --rpm it is the floor of a rate-bound run: one bucket
shared by every worker, holding ten seconds' worth (N/6) and refilled
continuously, and one gate that a 429 closes for everyone until the server's
reset. It then retries refused requests and prints how many 429s it got.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Mapping

import aiohttp
import orjson

BURST_SECONDS = 10.0


class Pacer:
    """A shared token bucket and a shared 429 gate; asyncio alone needs no lock."""

    def __init__(self, rpm: int) -> None:
        self.rate = rpm / 60.0
        self.capacity = self.rate * BURST_SECONDS
        self.level = self.capacity
        self.updated = time.monotonic()
        self.closed_until = 0.0
        self.refusals = 0

    async def take(self) -> None:
        """Wait until the gate is open and the bucket holds a request, then take it."""
        while True:
            now = time.monotonic()
            if now < self.closed_until:
                await asyncio.sleep(self.closed_until - now)
                continue
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now
            if self.level >= 1.0:
                self.level -= 1.0
                return
            await asyncio.sleep((1.0 - self.level) / self.rate)

    def refused(self, headers: Mapping[str, str]) -> None:
        """A 429: nobody sends again until the wait the server asked for has passed."""
        self.refusals += 1
        if "retry-after-ms" in headers:
            wait = float(headers["retry-after-ms"]) / 1000.0
        else:
            wait = float(headers.get("retry-after", "1"))
        self.closed_until = max(self.closed_until, time.monotonic() + wait)


async def main(
    source: str, output: str, base_url: str, concurrency: int, pacer: Pacer | None
) -> None:
    url = f"{base_url}/chat/completions"
    with open(source, "rb") as lines, open(output, "wb") as out:

        async def worker(session: aiohttp.ClientSession) -> None:
            for line in lines:
                item = orjson.loads(line)
                content = f"Review: {item['text']}"
                body = {"model": "sim-chat", "messages": [{"role": "user", "content": content}]}
                while True:
                    if pacer is not None:
                        await pacer.take()
                    async with session.post(url, data=orjson.dumps(body)) as response:
                        answer = await response.read()
                        if pacer is None or response.status != 429:
                            break
                        pacer.refused(response.headers)
                item["output"] = orjson.loads(answer)["choices"][0]["message"]["content"]
                out.write(orjson.dumps(item) + b"\n")

        connector = aiohttp.TCPConnector(limit=concurrency)
        headers = {"Content-Type": "application/json"}
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source")
    parser.add_argument("output")
    parser.add_argument("base_url")
    parser.add_argument("concurrency", type=int)
    parser.add_argument("--rpm", type=int, help="requests a minute to keep to")
    args = parser.parse_args()
    pacer = Pacer(args.rpm) if args.rpm else None
    asyncio.run(main(args.source, args.output, args.base_url, args.concurrency, pacer))
    if pacer is not None:
        print(orjson.dumps({"rate_limited_responses": pacer.refusals}).decode())
