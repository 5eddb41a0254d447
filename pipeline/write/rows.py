"""The shape of result and quarantine rows, and, reading them back, the item each is for."""

from __future__ import annotations

import os
from typing import Any

from pipeline.core.config import RESULT_FIELDS, ResultFields
from pipeline.core.models import Failure, Item, StepReports, Success
from pipeline.protocol.batch_lines import RAW_ID_FIELD, is_batch_line
from pipeline.read.sources import STDIN_SOURCE


def result_row(
    success: Success, id_field: str, fields: ResultFields = RESULT_FIELDS
) -> dict[str, Any]:
    """The item's fields, plus its id when it had none, plus the answer."""
    item = success.item
    row = dict(item.row or {})
    # A batch line's id is its custom_id; any other item's goes under id_field.
    if id_field not in row and not is_batch_line(row):
        row[id_field] = item.id
    row[fields.output] = success.output
    row[fields.usage] = success.usage.as_dict()
    row[fields.cached] = success.cached
    if fields.skipped is not None:
        row[fields.skipped] = success.skipped
    if fields.model is not None:
        row[fields.model] = success.model
    if fields.steps is not None:
        row[fields.steps] = _step_reports(success.steps)
    return row


def _step_reports(steps: StepReports | None) -> dict[str, Any] | None:
    if steps is None:
        return None
    return {name: report.as_dict() for name, report in steps.items()}


def quarantine_row(failure: Failure) -> dict[str, Any]:
    """Enough to see what went wrong, and the original row so the file can be fed back.

    An item without a valid id has "id": null; its source file and line tell it apart.
    """
    item = failure.item
    error: dict[str, Any] = {
        "kind": str(failure.kind),
        "status": failure.status,
        "message": failure.message,
    }
    if failure.answer is not None:
        error["answer"] = failure.answer
    row = {
        "id": item.id,
        "item": item.original,
        "error": error,
        "attempts": failure.attempts,
        "source": {"file": item.source, "line": item.line},
    }
    if failure.steps is not None:  # a workflow's item: which step, and what the others gave
        error["step"] = failure.step
        row["output"] = failure.outputs
        row["steps"] = _step_reports(failure.steps)
    return row


# Reading rows back: which input item a row is for. The same keys for `sluice verify`
# and `sluice merge`, so what one writes the other checks alike.


def item_key(item: Item) -> Any:
    """The item's id; for one without a valid id, where it was read."""
    return item.id if item.id is not None else read_at(item.source, item.line)


def result_row_key(row: dict[str, Any], id_field: str) -> Any:
    """The id of a result row: a batch line's custom_id, any other row's id field."""
    return row.get(RAW_ID_FIELD) if is_batch_line(row) else row.get(id_field)


def quarantine_row_key(row: dict[str, Any]) -> Any:
    """The row's id; for an item that had no valid id ("id": null), where it was read."""
    if row.get("id") is not None or "id" not in row:
        return row.get("id")
    source = row.get("source")
    if not isinstance(source, dict):
        return None
    file, line = source.get("file"), source.get("line")
    if not isinstance(file, str) or isinstance(line, bool) or not isinstance(line, int):
        return None
    return read_at(file, line)


def read_at(file: str, line: int) -> dict[str, Any]:
    # A JSON object: never equal to an id, which is a string or an integer.
    return {"file": _resolved(file), "line": line}


def _resolved(file: str) -> str:
    """The run's and a later reader's spellings of one input (./in.jsonl, in.jsonl) agree.

    Only items without a valid id get here, so a system call each is cheap enough.
    """
    return file if file == STDIN_SOURCE else os.path.realpath(file)
