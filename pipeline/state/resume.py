"""Skipping what an earlier run committed, and noticing when the input changed under it.

Runs in the reader thread, between batching and the engine: committed batches
are read (ids still have to be seen, to catch duplicates) and compared with the
digest their part file recorded, but never sent or written again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from pipeline.core.errors import ConfigError
from pipeline.core.jsonio import dumps
from pipeline.core.models import Batch, Item
from pipeline.core.words import counted

DIGEST_BYTES = 8


class InputChanged(ConfigError):
    """The input no longer holds the items an earlier run committed."""


@dataclass(slots=True)
class ResumePoint:
    """The committed prefix of a job: how many batches, and each one's input digest."""

    batches: int = 0
    digests: bytearray = field(default_factory=bytearray)  # DIGEST_BYTES per batch

    def add(self, digest: str) -> None:
        self.digests += bytes.fromhex(digest)
        self.batches += 1

    def digest(self, batch: int) -> str:
        return self.digests[batch * DIGEST_BYTES : (batch + 1) * DIGEST_BYTES].hex()


def batch_digest(items: list[Item]) -> str:
    """A digest of the items as read: their ids and their original content."""
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
    for item in items:
        digest.update(dumps([item.id, item.original]))
        digest.update(b"\n")
    return digest.hexdigest()


def with_digests(batches: Iterator[Batch]) -> Iterator[Batch]:
    for batch in batches:
        batch.digest = batch_digest(batch.items)
        yield batch


def skip_committed(batches: Iterator[Batch], point: ResumePoint) -> Iterator[Batch]:
    """The batches still to do; raises InputChanged when a committed one differs."""
    seen = 0
    for batch in batches:
        seen = batch.index + 1
        if batch.index >= point.batches:
            yield batch
        elif batch.digest != point.digest(batch.index):
            raise InputChanged(_changed_message(batch))
    if seen < point.batches:
        raise InputChanged(
            f"the input changed since the stopped run: it now ends within batch {seen}, "
            f"but {counted(point.batches, 'batch')} were already committed; "
            "run again with --fresh to start the job over"
        )


def _changed_message(batch: Batch) -> str:
    first = batch.items[0]
    return (
        f"the input changed since the stopped run: the items of batch {batch.index} "
        f"(from {first.source} line {first.line}) differ from those already committed; "
        "run again with --fresh to start the job over"
    )
