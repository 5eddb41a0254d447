"""Quarantine files read back as input, for `sluice retry`.

Each quarantine row carries the original item and its id, so the items are
sent again under the ids they had, and a retry's outputs join the first run's.
Items that were never sent because the input itself was wrong (bad JSON, a bad
or duplicate id, a missing template field) are carried over with their first
error: sending them again cannot help, and a duplicate resent would break the
one-row-per-id guarantee. An item whose id was not valid (its row's id is null)
stays without an id, and so is never sent either.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pipeline.core.errors import ErrorKind
from pipeline.core.models import Record
from pipeline.read.sources import read_records

NOT_SENT = str(ErrorKind.INVALID_INPUT)


def read_quarantine(paths: Iterable[str]) -> Iterator[Record]:
    for record in read_records(paths):
        yield requeued(record)


def requeued(record: Record) -> Record:
    """The original item of one quarantine row, with its id and first error when not sent."""
    row = record.row
    if row is None or "item" not in row or "id" not in row:
        problem = record.problem or "not a sluice quarantine row (no 'item' and 'id' fields)"
        return Record(record.source, record.line, row, record.raw, problem)
    item, error = row["item"], row.get("error")
    source, line = _origin(row, record)
    kind, message = _error(error)
    # Not a position in its place: the position may be another item's real id.
    without_id = row["id"] is None
    if not isinstance(item, dict):
        raw = item if isinstance(item, str) else repr(item)
        problem = message or "the item is not a JSON object"
        return Record(source, line, None, raw, problem, row["id"], without_id)
    kept_problem = None
    if kind == NOT_SENT or without_id:
        kept_problem = message or ("the item has no valid id" if without_id else "invalid input")
    return Record(source, line, item, None, kept_problem, row["id"], without_id)


def _origin(row: dict[str, Any], record: Record) -> tuple[str, int]:
    """Where the item first came from, so messages point at the original input."""
    source = row.get("source")
    if isinstance(source, dict):
        file, line = source.get("file"), source.get("line")
        if isinstance(file, str) and isinstance(line, int):
            return file, line
    return record.source, record.line


def _error(error: Any) -> tuple[str | None, str | None]:
    if not isinstance(error, dict):
        return None, None
    kind, message = error.get("kind"), error.get("message")
    return (kind if isinstance(kind, str) else None, message if isinstance(message, str) else None)
