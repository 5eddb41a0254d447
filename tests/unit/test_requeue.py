"""Quarantine rows read back as input for `sluice retry`."""

from __future__ import annotations

from pipeline.core.models import Record
from pipeline.read.requeue import requeued


def _row(item: object, kind: str = "transient", **extra: object) -> Record:
    row = {
        "id": "r-7",
        "item": item,
        "error": {"kind": kind, "status": 503, "message": "HTTP 503: busy"},
        "attempts": 6,
        "source": {"file": "reviews.jsonl", "line": 8},
        **extra,
    }
    return Record("out.quarantine.jsonl", 3, row)


def test_a_failed_item_is_sent_again_under_its_id_and_origin() -> None:
    record = requeued(_row({"id": "r-7", "text": "hello"}))
    assert record.row == {"id": "r-7", "text": "hello"}
    assert (record.id, record.problem) == ("r-7", None)
    assert (record.source, record.line) == ("reviews.jsonl", 8)


def test_an_item_that_was_never_sent_keeps_its_first_error() -> None:
    record = requeued(_row({"id": "r-7"}, kind="invalid_input"))
    assert record.row == {"id": "r-7"} and record.problem == "HTTP 503: busy"


def test_a_line_that_was_not_json_stays_text_with_its_error() -> None:
    record = requeued(_row("{not json", kind="invalid_input"))
    assert (record.row, record.raw, record.id) == (None, "{not json", "r-7")
    assert record.problem == "HTTP 503: busy"


def test_a_row_that_is_no_quarantine_row_is_kept_whole_and_never_sent() -> None:
    record = requeued(Record("items.jsonl", 2, {"id": "a", "text": "x"}))
    assert record.row == {"id": "a", "text": "x"}
    assert record.problem is not None and "not a sluice quarantine row" in record.problem


def test_a_quarantine_row_without_a_source_points_at_the_quarantine_file() -> None:
    record = requeued(_row({"text": "x"}, source=None))
    assert (record.source, record.line) == ("out.quarantine.jsonl", 3)


def test_an_item_that_had_no_valid_id_is_carried_over_without_one() -> None:
    row = _row({"id": None, "text": "x"}, kind="invalid_input", id=None)
    record = requeued(row)
    assert (record.id, record.without_id) == (None, True)
    assert record.problem == "HTTP 503: busy"
    assert (record.source, record.line) == ("reviews.jsonl", 8)
    # Even when the row says it failed otherwise: with no id, it can never be sent.
    record = requeued(_row({"id": 2.5}, kind="transient", id=None, error=None))
    assert record.without_id and record.problem == "the item has no valid id"
