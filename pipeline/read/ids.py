"""Item ids: taken from the id field, or the item's position; duplicates are invalid input.

An id field that holds no valid id (null, a float, a boolean, an empty string)
leaves the item without any id (None) rather than with its position: the
position may be the real id of another item, and the two would then be one.
Such an item is quarantined and known by its source and line alone.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator

import orjson

from pipeline.core.models import Item, ItemId, Record
from pipeline.protocol.batch_lines import RAW_ID_FIELD, is_batch_line

IDS_PER_CHECK = 256  # ids checked against those seen in one go (at most SQLite's bound params)


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
        self._db.execute("CREATE TABLE ids (key BLOB PRIMARY KEY) WITHOUT ROWID")
        self._db.execute("BEGIN")

    def add_many(self, item_ids: list[ItemId]) -> set[int]:
        """Record the ids; the indexes of those seen before (or earlier in the list).

        One statement for the whole list: SQLite lets go of the GIL at every step,
        and each time another thread is computing, taking it back can cost the
        interpreter's switch interval, so per-id statements were slow under load.
        An id is new when the insert reports it back (RETURNING leaves out the rows
        it ignored); a twin later in the same list is reported once, for the first.
        """
        # The JSON form keeps 7 and "7" apart, as they are apart in the data.
        keys = [orjson.dumps(item_id) for item_id in item_ids]
        if not keys:
            return set()
        rows = ",".join(["(?)"] * len(keys))
        statement = f"INSERT OR IGNORE INTO ids VALUES {rows} RETURNING key"
        inserted = self._db.execute(statement, keys).fetchall()
        if len(inserted) == len(keys):
            return set()  # the common case: every id new, none twice in the list
        new = {row[0] for row in inserted}
        repeated: set[int] = set()
        for index, key in enumerate(keys):
            if key in new:
                new.discard(key)  # its first place in the list; any later one repeats it
            else:
                repeated.add(index)
        return repeated

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
