"""The shape of result and quarantine rows (pure)."""

from __future__ import annotations

from typing import Any

from pipeline.core.config import RESULT_FIELDS, ResultFields
from pipeline.core.models import Failure, StepReports, Success
from pipeline.protocol.batch_lines import is_batch_line


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
