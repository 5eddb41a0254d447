"""Rendering each batch's requests and finding their stored answers, where batches are read.

This is the CPU- and disk-heavy part of getting an item ready. While requests are in
flight it is done off the event loop and one batch ahead of it, in the reader thread:
SQLite drops the GIL on every row it steps through, and a lookup made on the loop
while another thread computes waits out the interpreter's switch interval each time
(measured: 6 us a key alone, 26 us beside the reader, 1 ms beside a busy thread).
With nothing in flight to hold up, the loop does it itself (read/reader_thread.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.core.config import RESULT_FIELDS, ResultFields, result_field_clash
from pipeline.core.models import Batch, Item
from pipeline.prepare.request_builder import ITEM_REQUESTS, InvalidItem, Request, Unbuilt


class Skipped:
    """`--where` left the item out: it is not sent, and its result row says so."""

    __slots__ = ()


SKIPPED = Skipped()


class Staged:
    """A workflow's item (--workflow): its steps are asked on the loop as their inputs are
    ready. `first` holds what the steps that read no other step's output came to here,
    in the reader thread: a request, SKIPPED by their `when`, why it cannot be made, or
    None for a step a function answers (no request). With a cache, `keys` holds their
    requests' cache keys and `stored` the answers found for them, looked up here with
    the rest of the batch rather than one by one on the loop."""

    __slots__ = ("first", "keys", "stored")

    def __init__(self, first: dict[str, Request | Skipped | str | None]) -> None:
        self.first = first
        self.keys: dict[str, str] = {}  # by step
        self.stored: dict[str, bytes] = {}  # by cache key


class ItemRequests(Protocol):
    """What makes an item's request: a RequestBuilder, or a workflow's step builders."""

    def wanted(self, item: Item) -> bool: ...

    def prepare(self, item: Item) -> Request | Unbuilt | Staged: ...


@dataclass(slots=True)
class PreparedBatch:
    batch: Batch
    # Per item: its request (Unbuilt when a stored answer was found for it, Staged: its
    # workflow's); why it could not be rendered; SKIPPED when --where leaves it out; or
    # None when the item is invalid (item.problem).
    requests: list[Request | Unbuilt | Staged | str | Skipped | None] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)  # cache keys; None without a cache
    stored: dict[str, bytes] = field(default_factory=dict)  # answers found, by cache key


class Preparer:
    def __init__(
        self,
        builder: ItemRequests,
        key: Callable[[Request | Unbuilt], str] | None = None,
        lookup: Callable[[list[str]], dict[str, bytes]] | None = None,
        result_fields: ResultFields = RESULT_FIELDS,
    ) -> None:
        self._builder = builder
        self._key = key
        self._lookup = lookup
        self._result_fields = result_fields
        self._reserved = frozenset(result_fields.names)  # a set test per item, in C

    def __call__(self, batches: Iterator[Batch]) -> Iterator[PreparedBatch]:
        for batch in batches:
            yield self.prepare(batch)

    def prepare(self, batch: Batch) -> PreparedBatch:
        prepared = PreparedBatch(batch)
        requests, keys, key = prepared.requests, prepared.keys, self._key
        for item in batch.items:
            request = self._request(item) if item.problem is None else None
            requests.append(request)
            keys.append(key(request) if key and isinstance(request, ITEM_REQUESTS) else None)
        staged = [r for r in requests if isinstance(r, Staged)]
        if key is not None:
            for item_steps in staged:
                item_steps.keys = {
                    name: key(request)
                    for name, request in item_steps.first.items()
                    if isinstance(request, Request)
                }
        if self._lookup is not None:
            wanted = [k for k in keys if k is not None]
            wanted += [k for item_steps in staged for k in item_steps.keys.values()]
            prepared.stored = self._lookup(wanted)
            for item_steps in staged:
                found = prepared.stored
                item_steps.stored = {k: found[k] for k in item_steps.keys.values() if k in found}
        # Only a request the cache may answer stays unbuilt; the rest are built here,
        # off the event loop while requests are in flight.
        stored = prepared.stored
        for index, request in enumerate(requests):
            if isinstance(request, Unbuilt) and keys[index] not in stored:
                requests[index] = request.build()
        return prepared

    def _request(self, item: Item) -> Request | Unbuilt | Staged | str | Skipped:
        """The item's request, SKIPPED, or why it cannot have one."""
        # A user's field is never dropped: one the answer would overwrite stops the item.
        if item.row is not None and not self._reserved.isdisjoint(item.row):
            return result_field_clash(self._result_fields.clash(item.row) or "")
        try:
            if not self._builder.wanted(item):
                return SKIPPED
            return self._builder.prepare(item)
        except InvalidItem as exc:
            return str(exc)
