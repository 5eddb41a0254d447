"""Grouping items into batches: the unit of writing (and, later, of checkpointing)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from pipeline.core.models import Batch, Item


def batched(items: Iterable[Item], size: int) -> Iterator[Batch]:
    if size < 1:
        raise ValueError("batch size must be at least 1")
    iterator = iter(items)
    index = 0
    while chunk := list(islice(iterator, size)):
        yield Batch(index, chunk)
        index += 1
