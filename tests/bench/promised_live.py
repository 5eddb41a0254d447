"""The least code doing what a run that sends every item promises, for the throughput
row's second line.

    python -m tests.bench.promised_live INPUT CACHE_DIR STATE_DIR BASE_URL OUTPUT CONCURRENCY

The bare loop (minimal_client.py) sends and writes, nothing more. This one keeps
the promises a default `sluice run` keeps, each the simplest way, with none of
sluice's objects, events, limits or retries, so the gap between it and sluice is
sluice's own overhead and the gap between it and the bare loop is the promises':
- duplicate ids found on disk (an SQLite set), so memory stays flat;
- each batch's digest of its items (what a resume checks the input against);
- each item's cache key and one look-up a batch (nothing is paid for twice);
- each answer parsed and checked before it counts;
- each answer stored in the response cache before its slot is given back, the
  answers that land in one turn of the event loop in one transaction;
- batches committed in input order: a checkpoint part (temp file, fsync, rename,
  directory fsync) for the batches done together, their rows in the output's
  temporary file; at the end the output fsynced and renamed into place.

The id set, the cache, the storing of answers and the part files are sluice's own
(SeenIds, ResponseCache, ResponseMemo, write_part with its checksummed headers, written
in the default executor): the same work on disk, not a cheaper copy.
It expects a prompt of "Review: {{ text }}" on the simulator's `sim-chat`, as the
floor table's runs use.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from itertools import islice

import aiohttp
import orjson

from pipeline.cache.keys import CacheKeys
from pipeline.cache.memo import ResponseMemo
from pipeline.cache.store import ResponseCache
from pipeline.core.events import DISCARD
from pipeline.read.ids import SeenIds
from pipeline.state.part_header import PartHeader
from pipeline.state.parts import write_part
from tests.bench.promised_cached import BATCH, PATH, prepared


class Batch:
    """One batch in flight: its items, their keys, and the rows of those answered."""

    def __init__(self, number: int, items: list[dict], keys: list[str], digest: str) -> None:
        self.number = number
        self.items = items
        self.keys = keys
        self.digest = digest
        self.rows: list[bytes | None] = [None] * len(items)
        self.left = len(items)
        self.prompt_tokens = self.completion_tokens = 0


class Promised:
    """The ordered commits: checkpoint parts written in the default executor, one group
    after another, as sluice writes them, so an fsync never holds up the loop."""

    def __init__(self, state_dir: str, output: str) -> None:
        self.state_dir = state_dir
        self.output = open(output + ".tmp", "wb")  # noqa: SIM115 - closed in finish()
        self.output_path = output
        self.waiting: dict[int, Batch] = {}  # done or not, by number, until committed
        self.next_to_commit = 0
        self.committing: asyncio.Future[None] | None = None  # the latest group's write

    def answered(self, batch: Batch, index: int, row: bytes) -> None:
        batch.rows[index] = row
        batch.left -= 1
        if batch.left == 0:
            self._commit_ready()

    def _commit_ready(self) -> None:
        """Every batch done from the next to commit on, in one part and in order."""
        ready = []
        while (batch := self.waiting.get(self.next_to_commit)) is not None and not batch.left:
            del self.waiting[self.next_to_commit]
            ready.append(batch)
            self.next_to_commit += 1
        if not ready:
            return
        parts = []
        for batch in ready:
            results = b"".join(row for row in batch.rows if row is not None)
            header = PartHeader(
                batch=batch.number,
                items=len(batch.items),
                digest=batch.digest,
                succeeded=len(batch.items),
                cached=0,
                prompt_tokens=batch.prompt_tokens,
                completion_tokens=batch.completion_tokens,
                results_bytes=len(results),
                quarantine_bytes=0,
                committed_at=time.time(),
            )
            parts.append((header, results, b""))
            self.output.write(results)
        self.committing = asyncio.ensure_future(self._commit(self.committing, parts))

    async def _commit(
        self, previous: asyncio.Future[None] | None, parts: list[tuple[PartHeader, bytes, bytes]]
    ) -> None:
        if previous is not None:
            await previous  # groups commit in input order
        await asyncio.get_running_loop().run_in_executor(None, write_part, self.state_dir, parts)

    async def finish(self) -> None:
        if self.committing is not None:
            await self.committing
        self.output.flush()
        os.fsync(self.output.fileno())
        self.output.close()
        os.replace(self.output_path + ".tmp", self.output_path)


async def main(
    source: str, cache_dir: str, state_dir: str, base_url: str, output: str, concurrency: int
) -> None:
    cache = ResponseCache(cache_dir, size_limit=None, ttl=None)
    # Answers are stored by sluice's own memo: those landing in one turn of the loop in
    # one transaction, each request's slot held until its answer is on disk.
    memo = ResponseMemo(cache, base_url, read=True, events=DISCARD)
    seen, keys = SeenIds(), CacheKeys(base_url)
    promised = Promised(state_dir, output)
    todo: asyncio.Queue[tuple[Batch, int, bytes] | None] = asyncio.Queue(maxsize=concurrency)
    url = base_url + PATH
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency),
            headers={"Content-Type": "application/json"},
        ) as session:

            async def worker() -> None:
                while (job := await todo.get()) is not None:
                    batch, index, body = job
                    async with session.post(url, data=body) as response:
                        payload = await response.read()
                    answer = orjson.loads(payload)
                    item = batch.items[index]
                    item["output"] = answer["choices"][0]["message"]["content"]
                    item["usage"] = usage = answer["usage"]
                    item["cached"] = False
                    batch.prompt_tokens += usage["prompt_tokens"]
                    batch.completion_tokens += usage["completion_tokens"]
                    await memo.remember(batch.keys[index], payload)
                    promised.answered(batch, index, orjson.dumps(item) + b"\n")

            workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
            with open(source, "rb") as lines:
                number = 0
                while chunk := list(islice(lines, BATCH)):
                    batch, bodies = _prepared(number, chunk, seen, keys)
                    if memo.lookup(batch.keys):
                        raise SystemExit("the floor expects an empty cache")
                    promised.waiting[number] = batch
                    for index, body in enumerate(bodies):
                        await todo.put((batch, index, body))
                    number += 1
            for _ in workers:
                await todo.put(None)
            await asyncio.gather(*workers)
        await promised.finish()
    finally:
        memo.close()
        seen.close()
        cache.close()


def _prepared(
    number: int, chunk: list[bytes], seen: SeenIds, keys: CacheKeys
) -> tuple[Batch, list[bytes]]:
    items, digest, bodies, wanted = prepared(chunk, seen, keys)
    return Batch(number, items, wanted, digest), [orjson.dumps(body) for body in bodies]


if __name__ == "__main__":
    source, cache_dir, state_dir, base_url, output, concurrency = sys.argv[1:7]
    os.makedirs(state_dir, exist_ok=True)
    asyncio.run(main(source, cache_dir, state_dir, base_url, output, int(concurrency)))
