"""Item ids: taken from the id field, or the item's position; duplicates are invalid input."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Container, Iterable, Iterator

import orjson

from pipeline.models import Item, ItemId
from pipeline.sources import Record

RAW_ID_FIELD = "custom_id"
BATCH_LINE_FIELDS = frozenset({RAW_ID_FIELD, "url", "body"})


class SeenIds:
    """An exact set of ids on disk, so ten million ids cost no memory.

    A Python set of 10M strings takes about a gigabyte; a throwaway SQLite file
    with journaling off costs ~3 microseconds an insert and a few MB of page cache.
    """

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="sluice-ids-")
        path = os.path.join(self._dir.name, "ids.sqlite")
        # Filled by the reader thread, closed by the main one; never both at once.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE ids (key BLOB PRIMARY KEY) WITHOUT ROWID")
        self._db.execute("BEGIN")

    def add(self, item_id: ItemId) -> bool:
        """Record the id; False when it was already there."""
        # The JSON form keeps 7 and "7" apart, as they are apart in the data.
        cursor = self._db.execute("INSERT OR IGNORE INTO ids VALUES (?)", (orjson.dumps(item_id),))
        return cursor.rowcount == 1

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()


def identify(records: Iterable[Record], id_field: str, seen: SeenIds) -> Iterator[Item]:
    """Turn records into items with ids; never drops one, marks the bad ones."""
    for position, record in enumerate(records):
        item = Item(position, record.source, record.line, record.row, position, record.raw)
        if record.id is not None:
            id_problem = _given_id(item, record.id)  # kept even when the item is invalid
            item.problem = record.problem or id_problem
        else:
            item.problem = record.problem or _assign_id(item, id_field)
        if item.problem is None and not seen.add(item.id):
            item.problem = f"duplicate id {item.id!r}: an earlier item has the same id"
        yield item


def _assign_id(item: Item, id_field: str) -> str | None:
    row = item.row
    assert row is not None
    field = RAW_ID_FIELD if is_batch_line(row) else id_field
    if field not in row:
        return None  # the position stands in as the id
    return _given_id(item, row[field], field)


def _given_id(item: Item, value: object, field: str = "id") -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return f"id field {field!r} must be a string or an integer, not {type(value).__name__}"
    if value == "":
        return f"id field {field!r} is empty"
    item.id = value
    return None


def is_batch_line(fields: Container[str]) -> bool:
    """True for a line (or a schema's columns) in OpenAI batch form: custom_id, url, body."""
    # Membership tests, not a set of the row's keys: this runs for every item.
    return all(name in fields for name in BATCH_LINE_FIELDS)
