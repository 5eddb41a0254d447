"""Check a finished run's promise: every input item in exactly one output row, in input order.

As multisets, ids(input) = ids(results) + ids(quarantine), and each output file
lists its rows in increasing input position. Input ids are assigned by the very
code the run uses (`identify`), so positional ids and batch lines' custom_id
agree with the run's. An item whose id is not valid has none; it and its
quarantine row ("id": null) are both keyed by source file and line instead, a
key no real id can equal. Counts live on disk (`IdTally`), and every file is
read once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from pipeline.core.config import STDIO
from pipeline.core.errors import InputMissing, UsageError
from pipeline.core.models import Item, Record
from pipeline.core.words import counted
from pipeline.prepare.where import Where, WhereEvalError
from pipeline.read.id_tally import IdTally
from pipeline.read.ids import SeenIds, identify
from pipeline.read.requeue import read_quarantine
from pipeline.read.sources import check_inputs, input_format, read_records
from pipeline.write.rows import item_key, quarantine_row_key, result_row_key

# Filters on the id table: (condition, order for the examples). Items --where left out
# (`optional`) may be missing: --drop-skipped writes no row for them.
_MISSING = ("inputs > outputs + optional", "first")
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
    left_out: int = 0  # items the run's --where skipped that have no row (--drop-skipped)

    @property
    def ok(self) -> bool:
        faults = self.missing_count + self.duplicated_count + self.unexpected_count
        rows = self.result_rows + self.quarantine_rows + self.left_out
        balanced = self.input_items == rows
        return balanced and faults + self.out_of_order_count + self.rows_without_id == 0

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}

    def lines(self) -> list[str]:
        """The report for people: a verdict, the totals, then each kind of fault found."""
        lines = [
            "ok: every input item is in exactly one output row, in input order"
            if self.ok
            else "NOT OK: the outputs do not match the input one to one",
            f"{counted(self.input_items, 'input item')}; "
            f"{counted(self.result_rows, 'result row')} + "
            f"{counted(self.quarantine_rows, 'quarantine row')}"
            + (f" + {self.left_out:,} left out by --where" if self.left_out else "")
            + f" = {self.result_rows + self.quarantine_rows + self.left_out:,}",
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
            lines.append(f"out of input order: {counted(self.out_of_order_count, 'row')}, e.g.")
            lines += [
                f"  {m.file} line {m.line}: id {_shown(m.id)} is input item {m.position}, "
                f"after item {m.after}"
                for m in self.out_of_order
            ]
        if self.rows_without_id:
            lines.append(f"output rows without an id: {self.rows_without_id:,}")
        return lines


def _shown(item_id: Any) -> str:
    if isinstance(item_id, dict):  # an item without a valid id, known by where it was read
        return f"(no valid id: {item_id.get('file')} line {item_id.get('line')})"
    return orjson.dumps(item_id).decode()  # JSON, so 7 and "7" look different


def verify(
    inputs: Sequence[str],
    results: Sequence[str],
    quarantines: Sequence[str],
    id_field: str = "id",
    show: int = 20,
    where: Where | None = None,
    *,
    requeue: bool = False,
) -> VerifyReport:
    """Read the inputs and a run's outputs, streaming, and report how they differ. With
    the run's `where`, the items it leaves out may be absent (--drop-skipped). With
    `requeue`, the inputs are quarantine files read as `sluice retry` reads them."""
    check_inputs(inputs)
    _check_outputs(results, "results")
    _check_outputs(quarantines, "quarantine")
    tally = IdTally()
    try:
        records = read_quarantine(inputs) if requeue else read_records(inputs)
        input_items = _read_inputs(tally, records, id_field, where)
        outputs = (
            (results, lambda row: result_row_key(row, id_field)),
            (quarantines, quarantine_row_key),
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
            tally.left_out(),
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


def _read_inputs(
    tally: IdTally, records: Iterable[Record], id_field: str, where: Where | None
) -> int:
    seen = SeenIds()  # identify needs one; its verdicts do not change the ids
    try:
        count = 0
        for item in identify(records, id_field, seen):
            optional = where is not None and _left_out(item, where)
            tally.add_input(orjson.dumps(item_key(item)), item.position, optional)
            count += 1
        return count
    finally:
        seen.close()


def _left_out(item: Item, where: Where) -> bool:
    """Whether the run, given `where`, skipped the item (a valid one it did not match)."""
    if item.problem is not None or item.row is None:
        return False
    try:
        return not where.matches(item.row)
    except WhereEvalError:
        return False  # the run quarantined it


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
