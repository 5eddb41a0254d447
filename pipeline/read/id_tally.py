"""The counts behind `sluice verify`: per id, how often inputs and outputs name it.

Kept in a throwaway SQLite file, as in `SeenIds`: ten million ids cost disk
pages, not memory. Ids are keyed by their JSON bytes, so 7 and "7" stay apart.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from typing import Any

import orjson


class IdTally:
    """Per id (its JSON bytes): input and output counts, first input position, and how
    many of its input items may be absent from the outputs (left out by --where)."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="sluice-verify-")
        path = os.path.join(self._dir.name, "ids.sqlite")
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        # seen: the output row that first named an id no input has, to list those in order.
        self._db.execute(
            "CREATE TABLE ids (key BLOB PRIMARY KEY, inputs INTEGER NOT NULL, "
            "outputs INTEGER NOT NULL, first INTEGER, seen INTEGER, "
            "optional INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID"
        )
        # The later positions of ids the input repeats (duplicates the run quarantined).
        self._db.execute(
            "CREATE TABLE repeats (key BLOB, position INTEGER, PRIMARY KEY (key, position)) "
            "WITHOUT ROWID"
        )
        self._db.execute("BEGIN")

    def add_input(self, key: bytes, position: int, optional: bool = False) -> None:
        added = self._db.execute(
            "INSERT OR IGNORE INTO ids VALUES (?, 1, 0, ?, NULL, ?)", (key, position, optional)
        )
        if added.rowcount == 0:
            self._db.execute(
                "UPDATE ids SET inputs = inputs + 1, optional = optional + ? WHERE key = ?",
                (optional, key),
            )
            self._db.execute("INSERT INTO repeats VALUES (?, ?)", (key, position))

    def add_output(self, key: bytes, row: int, last: int) -> int | None:
        """Count one output row; then as `place`, from the counts so far."""
        counts = self._db.execute(
            "INSERT INTO ids VALUES (?, 0, 1, NULL, ?, 0) ON CONFLICT (key) "
            "DO UPDATE SET outputs = outputs + 1 RETURNING first, inputs, outputs",
            (key, row),
        ).fetchone()
        return self._after(key, counts, last)

    def place(self, key: bytes, _row: int, last: int) -> int | None:
        """The input position an output row stands for: None when no input item is
        left for it (it is reported as unexpected or duplicated, not as misplaced)."""
        counts = self._db.execute(
            "SELECT first, inputs, outputs FROM ids WHERE key = ?", (key,)
        ).fetchone()
        return self._after(key, counts, last)

    def _after(self, key: bytes, counts: tuple[int | None, int, int], last: int) -> int | None:
        # The id's first input position after `last` (that of the row above in the file),
        # so a repeated id quarantined after later items is in order; else its first.
        first, inputs, outputs = counts
        if first is None or outputs > inputs:
            return None
        if first > last or inputs == 1:
            return first
        (later,) = self._db.execute(
            "SELECT MIN(position) FROM repeats WHERE key = ? AND position > ?", (key, last)
        ).fetchone()
        return first if later is None else int(later)

    def ids(self, where: str, order: str, show: int) -> tuple[tuple[Any, ...], int]:
        """The first `show` ids that meet the condition, and how many do."""
        (count,) = self._db.execute(f"SELECT COUNT(*) FROM ids WHERE {where}").fetchone()
        keys = self._db.execute(
            f"SELECT key FROM ids WHERE {where} ORDER BY {order} LIMIT ?", (show,)
        ).fetchall()
        return tuple(orjson.loads(key) for (key,) in keys), count

    def left_out(self) -> int:
        """Input items that --where left out and that no output row names."""
        (count,) = self._db.execute(
            "SELECT COALESCE(SUM(MIN(optional, inputs - outputs)), 0) FROM ids "
            "WHERE optional > 0 AND inputs > outputs"
        ).fetchone()
        return int(count)

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()
