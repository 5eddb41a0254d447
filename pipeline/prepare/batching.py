"""Grouping items into batches, the unit of writing and checkpointing; and which of
them a shard (`--shard I/N`) does."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from pipeline.core.config import ReadConfig
from pipeline.core.models import Batch, Item
from pipeline.read.ids import SeenIds, identify
from pipeline.read.requeue import read_quarantine
from pipeline.read.sources import read_records


def batched(items: Iterable[Item], size: int) -> Iterator[Batch]:
    if size < 1:
        raise ValueError("batch size must be at least 1")
    iterator = iter(items)
    index = 0
    while chunk := list(islice(iterator, size)):
        yield Batch(index, chunk)
        index += 1


def shard_of(batch: int, shards: int) -> int:
    """The shard (1 to `shards`) that owns batch `batch` (0-based): dealt round robin, so
    every shard gets an even share of the input, wherever its slow or invalid parts are."""
    return batch % shards + 1


def shard_batches(batches: Iterable[Batch], shard: tuple[int, int] | None) -> Iterator[Batch]:
    """Shard I/N's own batches, numbered 0, 1, 2, … again; every batch without a shard.

    To a shard its batches are a whole job: its checkpoint commits, resumes and
    assembles them as any run's, with no gaps in the numbering (a resume counts a
    committed prefix of batches). The other shards' batches were read and their items
    given ids, so ids, positions and duplicates are exactly a whole run's; they are
    dropped here, before anything is rendered, looked up, sent or written.
    """
    if shard is None:
        yield from batches
        return
    index, count = shard
    own = 0
    for batch in batches:
        if shard_of(batch.index, count) == index:
            yield Batch(own, batch.items)
            own += 1


def shard_share(items: int, batch_size: int, shard: tuple[int, int] | None) -> int:
    """How many of an input's `items` shard I/N does (all of them without a shard): for
    a shard's progress and what it left undone, never the whole input's count."""
    if shard is None:
        return items
    index, count = shard
    batches, last = -(-items // batch_size), items % batch_size  # the last may be short
    share = len(range(index - 1, batches, count)) * batch_size
    if last and shard_of(batches - 1, count) == index:
        share -= batch_size - last
    return share


def input_batches(read: ReadConfig, seen: SeenIds) -> Iterator[Batch]:
    """The run's batches from its inputs (quarantine files for a retry): read, given ids,
    cut into batches, and a shard's share taken. The one way runs and plans read."""
    records = read_quarantine(read.inputs) if read.requeue else read_records(read.inputs)
    items = identify(records, read.id_field, seen)
    return shard_batches(batched(items, read.batch_size), read.shard)
