"""The least code doing what a cached re-run promises, for the floor table's second row.

    python -m tests.bench.promised_cached INPUT CACHE_DIR BASE_URL OUTPUT

The first cached row's floor (read, parse, write) skips everything that makes a
re-run safe. This loop does only that, with no objects, events or checkpoints, so
the gap between it and sluice is sluice's own overhead, and its figure is the most a
re-run answered item by item from the disk cache can reach:
- duplicate ids, found on disk (an SQLite set), so memory stays flat;
- each batch's digest of its items (what a resume checks the input against);
- each item's request and its cache key, the same key sluice computes;
- one look-up a batch in the cache's SQLite table, refusing expired entries;
- each stored answer parsed before it is served (a damaged one is a miss);
- rows written to a temporary file, fsynced and renamed into place.

The id set and the look-ups are sluice's own (SeenIds, ResponseCache.get_many): both
are a single statement a batch already, and the look-up's SQL reads diskcache's private
table, which stays in one place. Everything around them is bare.

It expects a prompt of "Review: {{ text }}" on the simulator's `sim-chat`, as the
floor table's runs use, and fails when any item is not in the cache.
"""

from __future__ import annotations

import hashlib
import os
import sys
from itertools import islice
from typing import Any, NamedTuple

import orjson

from pipeline.cache.keys import CacheKeys
from pipeline.cache.store import ResponseCache
from pipeline.read.ids import SeenIds

BATCH = 50  # sluice's default batch size
MODEL = "sim-chat"
PATH = "/chat/completions"


class Prepared(NamedTuple):
    items: list[dict[str, Any]]
    digest: str
    bodies: list[dict[str, Any]]
    keys: list[str]


def main(source: str, cache_dir: str, base_url: str, output: str) -> None:
    cache = ResponseCache(cache_dir, size_limit=None, ttl=None)
    seen = SeenIds()
    keys = CacheKeys(base_url)
    temporary = output + ".tmp"
    try:
        with open(source, "rb") as lines, open(temporary, "wb") as out:
            while batch := list(islice(lines, BATCH)):
                out.write(_answered(batch, seen, cache, keys))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, output)
    finally:
        seen.close()
        cache.close()


def prepared(lines: list[bytes], seen: SeenIds, keys: CacheKeys) -> Prepared:
    """What sluice does to a batch before any look-up: parse it, check its ids against
    every id seen, digest its items, and build each item's request and cache key."""
    items = [orjson.loads(line) for line in lines]
    if seen.add_many([item["id"] for item in items]):
        raise SystemExit("duplicate ids: the floor loop expects none")
    digest = hashlib.blake2b(digest_size=8)
    for item in items:
        digest.update(orjson.dumps([item["id"], item]))
    bodies = [
        {"model": MODEL, "messages": [{"role": "user", "content": f"Review: {item['text']}"}]}
        for item in items
    ]
    return Prepared(items, digest.hexdigest(), bodies, [keys.key(PATH, body) for body in bodies])


def _answered(batch: list[bytes], seen: SeenIds, cache: ResponseCache, keys: CacheKeys) -> bytes:
    items, _, _, wanted = prepared(batch, seen, keys)
    stored = cache.get_many(wanted)
    rows = []
    for item, key in zip(items, wanted, strict=True):
        if key not in stored:
            raise SystemExit(f"item {item['id']!r} is not in the cache")
        answer = orjson.loads(stored[key])
        item["output"] = answer["choices"][0]["message"]["content"]
        item["usage"] = answer["usage"]
        item["cached"] = True
        rows.append(orjson.dumps(item))
    return b"\n".join(rows) + b"\n"


if __name__ == "__main__":
    main(*sys.argv[1:5])
