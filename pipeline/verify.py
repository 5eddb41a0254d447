"""Check a finished run's promise: every input item in exactly one output row, in input order.

As multisets, ids(input) = ids(results) + ids(quarantine), and each output file
lists its rows in increasing input position. Input ids are assigned by the very
code the run uses (`identify`), so positional ids and batch lines' custom_id
agree with the run's. Counts live in a throwaway SQLite file, as in `SeenIds`:
ten million ids cost disk pages, not memory, and every file is read once.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from pipeline.config import STDIO
from pipeline.errors import InputMissing, UsageError
from pipeline.identity import RAW_ID_FIELD, SeenIds, identify, is_batch_line
from pipeline.sources import check_inputs, input_format, read_records

# Filters on the id table: (condition, order for the examples).
_MISSING = ("inputs > outputs", "first")
_DUPLICATED = ("outputs > inputs AND inputs > 0", "first")
_UNEXPECTED = ("inputs = 0", "seen")


@dataclass(frozen=True, slots=True)
class Misplaced:
    """An output row that comes before an input item listed above it in the same file."""

    file: str
    line: int
    id: Any
    position: int  # the row's input position (0-based)
    after: int  # the input position of the row above it


@dataclass(frozen=True, slots=True)
class VerifyReport:
    input_items: int
    result_rows: int
    quarantine_rows: int
    missing: tuple[Any, ...]  # ids in the input more often than in the outputs, input order
    missing_count: int
    duplicated: tuple[Any, ...]  # ids in the outputs more often than in the input
    duplicated_count: int
    unexpected: tuple[Any, ...]  # ids in the outputs that no input item has
    unexpected_count: int
    out_of_order: tuple[Misplaced, ...]
    out_of_order_count: int
    rows_without_id: int  # output rows with no id (or that are not JSON objects)

    @property
    def ok(self) -> bool:
        faults = self.missing_count + self.duplicated_count + self.unexpected_count
        balanced = self.input_items == self.result_rows + self.quarantine_rows
        return balanced and faults + self.out_of_order_count + self.rows_without_id == 0

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}

    def lines(self) -> list[str]:
        """The report for people: a verdict, the totals, then each kind of fault found."""
        lines = [
            "ok: every input item is in exactly one output row, in input order"
            if self.ok
            else "NOT OK: the outputs do not match the input one to one",
            f"{self.input_items:,} input items; {self.result_rows:,} result rows + "
            f"{self.quarantine_rows:,} quarantine rows = "
            f"{self.result_rows + self.quarantine_rows:,}",
        ]
        for what, ids, count in (
            ("missing (no output row)", self.missing, self.missing_count),
            ("duplicated (output rows to spare)", self.duplicated, self.duplicated_count),
            ("unexpected (not in the input)", self.unexpected, self.unexpected_count),
        ):
            if count:
                noun = "id" if count == 1 else "ids"
                more = f" and {count - len(ids):,} more" if count > len(ids) else ""
                lines.append(f"{what}: {count:,} {noun}: {', '.join(map(_shown, ids))}{more}")
        if self.out_of_order_count:
            lines.append(f"out of input order: {self.out_of_order_count:,} rows, e.g.")
            lines += [
                f"  {m.file} line {m.line}: id {_shown(m.id)} is input item {m.position}, "
                f"after item {m.after}"
                for m in self.out_of_order
            ]
        if self.rows_without_id:
            lines.append(f"output rows without an id: {self.rows_without_id:,}")
        return lines


def _shown(item_id: Any) -> str:
    return orjson.dumps(item_id).decode()  # JSON, so 7 and "7" look different


def verify(
    inputs: Sequence[str],
    results: Sequence[str],
    quarantines: Sequence[str],
    id_field: str = "id",
    show: int = 20,
) -> VerifyReport:
    """Read the inputs and a run's outputs, streaming, and report how they differ."""
    check_inputs(inputs)
    _check_outputs(results, "results")
    _check_outputs(quarantines, "quarantine")
    tally = _Tally()
    try:
        input_items = _read_inputs(tally, inputs, id_field)
        outputs = (
            (results, lambda row: _result_id(row, id_field)),
            (quarantines, lambda row: row.get("id")),
        )
        found = _Outputs(show, tally.add_output)
        result_rows, quarantine_rows = (found.read(paths, id_of) for paths, id_of in outputs)
        duplicated = tally.ids(*_DUPLICATED, show)
        if found.out_of_order and duplicated[1]:
            # A row found to be an extra only later may have taken another's place;
            # check the order again (once more reading the outputs) without those ids.
            found = _Outputs(show, tally.place)
            for paths, id_of in outputs:
                found.read(paths, id_of)
        return VerifyReport(
            input_items,
            result_rows,
            quarantine_rows,
            *tally.ids(*_MISSING, show),
            *duplicated,
            *tally.ids(*_UNEXPECTED, show),
            tuple(found.misplaced),
            found.out_of_order,
            found.without_id,
        )
    finally:
        tally.close()


def _check_outputs(paths: Sequence[str], what: str) -> None:
    for path in paths:
        if path == STDIO:
            raise UsageError(f"{what} files cannot be read from stdin (-); name the file")
        input_format(path)
        if not os.path.isfile(path):
            raise InputMissing(f"{what} file {path!r} does not exist")


def _read_inputs(tally: _Tally, inputs: Sequence[str], id_field: str) -> int:
    seen = SeenIds()  # identify needs one; its verdicts do not change the ids
    try:
        count = 0
        for item in identify(read_records(inputs), id_field, seen):
            tally.add_input(orjson.dumps(item.id), item.position)
            count += 1
        return count
    finally:
        seen.close()


def _result_id(row: dict[str, Any], id_field: str) -> Any:
    # The same choice as the run's: batch lines keep custom_id, other rows the id field.
    return row.get(RAW_ID_FIELD) if is_batch_line(row) else row.get(id_field)


@dataclass(slots=True)
class _Outputs:
    """Reads output rows, each into `place`, and checks each file's order as it goes."""

    show: int
    place: Callable[[bytes, int, int], int | None]
    rows: int = 0
    without_id: int = 0
    out_of_order: int = 0
    misplaced: list[Misplaced] = field(default_factory=list)

    def read(self, paths: Sequence[str], id_of: Callable[[dict[str, Any]], Any]) -> int:
        before = self.rows
        for path in paths:
            last = -1  # order is per file: a retry's files each follow input order
            for record in read_records([path]):
                self.rows += 1
                item_id = None if record.row is None else id_of(record.row)
                if item_id is None:  # a Parquet column holds null where a row has no id
                    self.without_id += 1
                    continue
                position = self.place(orjson.dumps(item_id), self.rows, last)
                if position is None:
                    continue
                if position <= last:
                    self.out_of_order += 1
                    if len(self.misplaced) < self.show:
                        self.misplaced.append(Misplaced(path, record.line, item_id, position, last))
                last = position
        return self.rows - before


class _Tally:
    """Per id (its JSON bytes): input and output counts, first input position."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="sluice-verify-")
        path = os.path.join(self._dir.name, "ids.sqlite")
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        # seen: the output row that first named an id no input has, to list those in order.
        self._db.execute(
            "CREATE TABLE ids (key BLOB PRIMARY KEY, inputs INTEGER NOT NULL, "
            "outputs INTEGER NOT NULL, first INTEGER, seen INTEGER) WITHOUT ROWID"
        )
        # The later positions of ids the input repeats (duplicates the run quarantined).
        self._db.execute(
            "CREATE TABLE repeats (key BLOB, position INTEGER, PRIMARY KEY (key, position)) "
            "WITHOUT ROWID"
        )
        self._db.execute("BEGIN")

    def add_input(self, key: bytes, position: int) -> None:
        added = self._db.execute(
            "INSERT OR IGNORE INTO ids VALUES (?, 1, 0, ?, NULL)", (key, position)
        )
        if added.rowcount == 0:
            self._db.execute("UPDATE ids SET inputs = inputs + 1 WHERE key = ?", (key,))
            self._db.execute("INSERT INTO repeats VALUES (?, ?)", (key, position))

    def add_output(self, key: bytes, row: int, last: int) -> int | None:
        """Count one output row; then as `place`, from the counts so far."""
        counts = self._db.execute(
            "INSERT INTO ids VALUES (?, 0, 1, NULL, ?) ON CONFLICT (key) "
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

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()
