"""Item ids: taken from the id field, or the item's position; duplicates are invalid input.

An id field that holds no valid id (null, a float, a boolean, an empty string)
leaves the item without any id (None) rather than with its position: the
position may be the real id of another item, and the two would then be one.
Such an item is quarantined and known by its source and line alone.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator

import orjson

from pipeline.core.models import Item, ItemId, Record
from pipeline.protocol.batch_lines import RAW_ID_FIELD, is_batch_line

IDS_PER_CHECK = 256  # ids checked against those seen in one go (2 bound params each)


class SeenIds:
    """An exact set of ids on disk, so ten million ids cost no memory.

    A Python set of 10M strings takes about a gigabyte; a throwaway SQLite file
    with journaling off costs ~3 microseconds an insert and a few MB of page cache.
    """

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="sluice-ids-")
        path = os.path.join(self._dir.name, "ids.sqlite")
        # Filled where batches are read (the reader thread, or the loop while nothing is
        # in flight), closed by the main thread; never two at once.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        # `at` numbers each id as it is offered, so a repeat is told by an `at` not its own.
        self._db.execute("CREATE TABLE ids (key BLOB PRIMARY KEY, at INTEGER) WITHOUT ROWID")
        self._db.execute("BEGIN")
        self._offered = 0

    def add_many(self, item_ids: list[ItemId]) -> set[int]:
        """Record the ids; the indexes of those seen before (or earlier in the list).

        One statement for IDS_PER_CHECK ids: SQLite lets go of the GIL at every step,
        and each time another thread is computing, taking it back can cost the
        interpreter's switch interval, so per-id statements were slow under load.
        When the insert added every row, as it nearly always does, no id repeats;
        else the repeats are the ids whose stored `at` is another's (a twin later in
        the same list keeps the first one's).
        """
        repeated: set[int] = set()
        for start in range(0, len(item_ids), IDS_PER_CHECK):  # within SQLite's bound params
            chunk = item_ids[start : start + IDS_PER_CHECK]
            repeated.update(start + index for index in self._add_chunk(chunk))
        return repeated

    def _add_chunk(self, item_ids: list[ItemId]) -> set[int]:
        # The JSON form keeps 7 and "7" apart, as they are apart in the data.
        keys = [orjson.dumps(item_id) for item_id in item_ids]
        first = self._offered
        self._offered += len(keys)
        numbered = zip(keys, range(first, self._offered), strict=True)
        rows = [value for pair in numbered for value in pair]
        added = self._db.execute(self._insert_of(len(keys)), rows).rowcount
        if added == len(keys):
            return set()
        marks = ",".join("?" * len(keys))
        stored = dict(self._db.execute(f"SELECT key, at FROM ids WHERE key IN ({marks})", keys))
        return {index for index, key in enumerate(keys) if stored[key] != first + index}

    @staticmethod
    @functools.cache
    def _insert_of(count: int) -> str:
        return f"INSERT OR IGNORE INTO ids VALUES {','.join(['(?, ?)'] * count)}"

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()


def identify(records: Iterable[Record], id_field: str, seen: SeenIds) -> Iterator[Item]:
    """Turn records into items with ids; never drops one, marks the bad ones."""
    chunk: list[Item] = []
    for position, record in enumerate(records):
        chunk.append(_identified(position, record, id_field))
        if len(chunk) == IDS_PER_CHECK:
            yield from _mark_duplicates(chunk, seen)
            chunk = []
    yield from _mark_duplicates(chunk, seen)


def _identified(position: int, record: Record, id_field: str) -> Item:
    item = Item(position, record.source, record.line, record.row, position, record.raw)
    if record.without_id:  # a retried item that had no valid id stays without one
        item.id = None
        item.problem = record.problem or "the item has no valid id"
    elif record.id is not None:
        id_problem = _given_id(item, record.id)  # kept even when the item is invalid
        item.problem = record.problem or id_problem
    else:
        item.problem = record.problem or _assign_id(item, id_field)
    return item


def _mark_duplicates(items: list[Item], seen: SeenIds) -> list[Item]:
    valid = [(item, item.id) for item in items if item.problem is None and item.id is not None]
    if valid:
        for index in seen.add_many([item_id for _, item_id in valid]):
            item, item_id = valid[index]
            item.problem = f"duplicate id {item_id!r}: an earlier item has the same id"
    return items


def _assign_id(item: Item, id_field: str) -> str | None:
    row = item.row
    assert row is not None
    field = RAW_ID_FIELD if is_batch_line(row) else id_field
    if field not in row:
        return None  # the position stands in as the id
    return _given_id(item, row[field], field)


def _given_id(item: Item, value: object, field: str = "id") -> str | None:
    """Take the id given; a value that is no valid id leaves the item without one."""
    item.id = None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return f"id field {field!r} must be a string or an integer, not {type(value).__name__}"
    if value == "":
        return f"id field {field!r} is empty"
    item.id = value
    return None
