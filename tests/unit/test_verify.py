"""verify: the partition check, on outputs written by hand and by the run's own row code."""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.errors import ErrorKind, InputMissing, InputUnreadable, UsageError
from pipeline.core.models import Failure, Record, Success, Usage
from pipeline.read.ids import SeenIds, identify
from pipeline.run.verify import Misplaced, VerifyReport, verify
from pipeline.write.rows import quarantine_row, result_row
from tests.conftest import write_jsonl


def _ids(*ids: Any) -> list[dict]:
    return [{"id": i, "text": f"text {i}"} for i in ids]


def _bad(*ids: Any) -> list[dict]:
    return [{"id": i, "item": {"id": i}, "error": {"kind": "permanent"}} for i in ids]


def _check(
    tmp_path: Path, inputs: list[dict], results: list[dict], quarantine: list[dict], **kw: Any
) -> VerifyReport:
    source = write_jsonl(tmp_path / "in.jsonl", inputs)
    out = write_jsonl(tmp_path / "out.jsonl", results)
    bad = write_jsonl(tmp_path / "out.quarantine.jsonl", quarantine)
    return verify([source], [out], [bad], **kw)


def _faults(report: VerifyReport) -> dict[str, Any]:
    return {
        name: list(value)
        for name, value in report.as_dict().items()
        if name in ("missing", "duplicated", "unexpected", "out_of_order") and value
    }


def test_a_partition_in_input_order_is_ok(tmp_path: Path) -> None:
    report = _check(tmp_path, _ids("a", "b", "c", "d"), _ids("a", "c"), _bad("b", "d"))
    assert report.ok, report.lines()
    assert (report.input_items, report.result_rows, report.quarantine_rows) == (4, 2, 2)
    assert report.lines()[0].startswith("ok:")


def test_an_item_in_no_output_is_missing(tmp_path: Path) -> None:
    report = _check(tmp_path, _ids("a", "b", "c"), _ids("a"), _bad("c"))
    assert not report.ok
    assert (report.missing, report.missing_count) == (("b",), 1)
    assert _faults(report) == {"missing": ["b"]}
    assert 'missing (no output row): 1 id: "b"' in report.lines()


@pytest.mark.parametrize(
    ("results", "quarantine"),
    [(_ids("a", "b", "b"), _bad("c")), (_ids("a", "b"), _bad("b", "c"))],
    ids=["twice in results", "in results and quarantine"],
)
def test_an_item_in_two_output_rows_is_duplicated(
    tmp_path: Path, results: list[dict], quarantine: list[dict]
) -> None:
    report = _check(tmp_path, _ids("a", "b", "c"), results, quarantine)
    assert not report.ok
    # The extra row is a duplicate, and only that: not also out of order.
    assert _faults(report) == {"duplicated": ["b"]}
    assert report.duplicated_count == 1


def test_an_output_id_no_input_has_is_unexpected(tmp_path: Path) -> None:
    report = _check(tmp_path, _ids("a", "b"), _ids("a", "zz", "b"), [])
    assert _faults(report) == {"unexpected": ["zz"]}
    assert report.result_rows == 3 and not report.ok


def test_results_out_of_order_are_reported_with_where_they_are(tmp_path: Path) -> None:
    report = _check(tmp_path, _ids("a", "b", "c", "d"), _ids("a", "c", "b"), _bad("d"))
    assert not report.ok
    assert report.out_of_order == (Misplaced(str(tmp_path / "out.jsonl"), 3, "b", 1, 2),)
    assert report.out_of_order_count == 1
    assert report.missing_count == report.duplicated_count == report.unexpected_count == 0
    assert any('line 3: id "b" is input item 1, after item 2' in line for line in report.lines())


def test_quarantine_order_is_checked_apart_from_results(tmp_path: Path) -> None:
    # Interleaved with each other the rows go a, b, c, d: each file on its own must be in order.
    report = _check(tmp_path, _ids("a", "b", "c", "d"), _ids("b", "c"), _bad("d", "a"))
    assert [(m.file.rsplit("/", 1)[1], m.id) for m in report.out_of_order] == [
        ("out.quarantine.jsonl", "a")
    ]


def test_ids_by_position_when_the_input_has_no_id_field(tmp_path: Path) -> None:
    inputs = [{"text": "zero"}, {"text": "one"}, {"text": "two"}]
    results = [{"text": "zero", "id": 0}, {"text": "two", "id": 2}]
    assert _check(tmp_path, inputs, results, _bad(1)).ok
    assert _faults(_check(tmp_path, inputs, results, _bad("1"))) == {
        "missing": [1],
        "unexpected": ["1"],
    }


def test_batch_lines_are_known_by_custom_id(tmp_path: Path) -> None:
    lines = [
        {"custom_id": f"req-{n}", "method": "POST", "url": "/v1/chat/completions", "body": {}}
        for n in range(3)
    ]
    results = [{**lines[0], "output": "x"}, {**lines[2], "output": "y"}]
    bad = [{"id": "req-1", "item": lines[1], "error": {}}]
    assert _check(tmp_path, lines, results, bad).ok


def test_a_custom_id_outside_a_batch_line_is_just_a_field(tmp_path: Path) -> None:
    rows = [{"id": "a", "custom_id": "ignored"}, {"id": "b", "custom_id": "ignored"}]
    assert _check(tmp_path, rows, rows, []).ok


def test_seven_and_the_string_seven_are_different_ids(tmp_path: Path) -> None:
    report = _check(tmp_path, _ids("7", 8), _ids(7, 8), [])
    assert _faults(report) == {"missing": ["7"], "unexpected": [7]}
    text = "\n".join(report.lines())
    assert 'missing (no output row): 1 id: "7"' in text
    assert "unexpected (not in the input): 1 id: 7" in text


def test_a_repeated_input_id_quarantined_as_a_duplicate_is_ok(tmp_path: Path) -> None:
    # The repeat is quarantined after "x", though its id was first seen before it.
    inputs = _ids("a", "x", "a", "y")
    assert _check(tmp_path, inputs, _ids("a", "y"), _bad("x", "a")).ok
    assert _faults(_check(tmp_path, inputs, _ids("a", "y"), _bad("x"))) == {"missing": ["a"]}
    report = _check(tmp_path, inputs, _ids("a", "y"), _bad("x", "a", "a"))
    assert _faults(report) == {"duplicated": ["a"]}


def test_an_extra_row_that_takes_another_rows_place_is_only_a_duplicate(tmp_path: Path) -> None:
    # Read in order, the second 2 looks like input item 2 and 1 like a row out of place;
    # once the last 2 shows the id has a row to spare, only that is reported.
    report = _check(tmp_path, _ids(2, 1, 2), [], _bad(2, 2, 1, 2))
    assert _faults(report) == {"duplicated": [2]}
    assert report.out_of_order_count == 0
    # Rows out of place among other ids are still found on that second reading.
    report = _check(tmp_path, _ids("a", "b", "c"), _ids("c", "b", "a", "a"), [])
    assert _faults(report)["duplicated"] == ["a"]
    assert [m.id for m in report.out_of_order] == ["b"]


def test_unparseable_input_lines_are_quarantined_under_their_position(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id": "a"}\nnot json\n\n[1, 2]\n{"id": "b"}\n')
    out = write_jsonl(tmp_path / "out.jsonl", _ids("a", "b"))
    bad = write_jsonl(tmp_path / "q.jsonl", [{"id": 1, "item": "not json"}, {"id": 2}])
    assert verify([str(source)], [out], [bad]).ok


def test_gzip_and_parquet_results(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _ids(1, 2, 3))
    gz = tmp_path / "out.jsonl.gz"
    gz.write_bytes(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in _ids(1, 3))))
    parquet = tmp_path / "out.parquet"
    pq.write_table(pa.Table.from_pylist(_ids(1, 3)), parquet)
    bad = write_jsonl(tmp_path / "q.jsonl", _bad(2))
    assert verify([source], [str(gz)], [bad]).ok
    assert verify([source], [str(parquet)], [bad]).ok
    pq.write_table(pa.Table.from_pylist([{"id": 1}, {"id": None}, {"id": 3}]), parquet)
    report = verify([source], [str(parquet)], [bad])
    assert report.rows_without_id == 1 and not report.ok


def test_rows_without_an_id_break_the_guarantee(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _ids("a", "b"))
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"id": "a"}\n{"text": "no id"}\nnot json\n')
    report = verify([source], [str(out)], [])
    assert report.rows_without_id == 2 and report.missing == ("b",)
    assert "output rows without an id: 2" in report.lines()


def test_a_retry_leaves_two_results_files_each_in_input_order(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _ids("a", "b", "c", "d"))
    first = write_jsonl(tmp_path / "out.jsonl", _ids("b", "d"))
    retried = write_jsonl(tmp_path / "retried.jsonl", _ids("a"))
    still_bad = write_jsonl(tmp_path / "retried.quarantine.jsonl", _bad("c"))
    assert verify([source], [first, retried], [still_bad]).ok


def test_the_id_field_option_is_the_runs(tmp_path: Path) -> None:
    rows = [{"key": "a"}, {"key": "b"}]
    assert _check(tmp_path, rows, rows[:1], _bad("b"), id_field="key").ok


def test_show_limits_the_examples_not_the_counts(tmp_path: Path) -> None:
    report = _check(tmp_path, _ids(*range(10)), [], _bad(9, 0, 1, 2), show=3)
    assert report.missing == (3, 4, 5) and report.missing_count == 6
    assert report.out_of_order_count == 1
    assert "missing (no output row): 6 ids: 3, 4, 5 and 3 more" in (report.lines())


def test_as_dict_is_json(tmp_path: Path) -> None:
    report = _check(tmp_path, _ids("a", "b"), _ids("b", "a"), [])
    data = orjson.loads(orjson.dumps(report.as_dict()))
    assert data["ok"] is False and data["out_of_order_count"] == 1
    assert data["out_of_order"][0]["id"] == "a"


def test_missing_and_unreadable_files_raise_sluices_errors(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _ids("a"))
    out = write_jsonl(tmp_path / "out.jsonl", _ids("a"))
    with pytest.raises(InputMissing, match=r"nope\.jsonl"):
        verify([str(tmp_path / "nope.jsonl")], [out], [])
    with pytest.raises(InputMissing, match=r"results file .*gone\.jsonl"):
        verify([source], [str(tmp_path / "gone.jsonl")], [])
    with pytest.raises(InputMissing, match=r"quarantine file .*gone\.jsonl"):
        verify([source], [out], [str(tmp_path / "gone.jsonl")])
    with pytest.raises(UsageError, match="stdin"):
        verify([source], ["-"], [])
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress(b'{"id": "a"}\n')[:-6])
    with pytest.raises(InputUnreadable):
        verify([source], [str(broken)], [])


# Ids as a run meets them: strings, integers, none (the position stands in), repeats,
# and values that are no valid id (null, a float, a boolean).
NULL = "<null>"
INVALID = [NULL, 1.5, True]
id_values = st.one_of(
    st.none(), st.integers(0, 6), st.sampled_from(["a", "b", "7", "0"]), st.sampled_from(INVALID)
)


def _row(value: Any) -> dict:
    if value is None:
        return {"text": "x"}
    return {"id": None if value == NULL else value}


def _run_outputs(
    rows: list[dict], succeeds: list[bool], source: str
) -> tuple[list[Any], list[Any]]:
    """Results and quarantine rows as the run writes them, by the run's own code."""
    records = [Record(source, n + 1, row) for n, row in enumerate(rows)]
    seen = SeenIds()
    try:
        items = list(identify(records, "id", seen))
    finally:
        seen.close()
    results, quarantine = [], []
    for item, success in zip(items, succeeds, strict=True):
        if success and item.problem is None:
            results.append(result_row(Success(item, "answer", Usage()), "id"))
        else:  # invalid items (repeated ids) are never sent
            kind = ErrorKind.INVALID_INPUT if item.problem else ErrorKind.PERMANENT
            quarantine.append(quarantine_row(Failure(item, kind, item.problem or "400")))
    return results, quarantine


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(id_values, st.booleans()), max_size=25),
    st.integers(0, 10**6),
    st.booleans(),
)
def test_a_runs_outputs_pass_and_one_row_lost_or_doubled_is_named(
    drawn: list[tuple[Any, bool]], pick: int, lose: bool
) -> None:
    rows = [_row(value) for value, _ in drawn]
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        source = str(folder / "in.jsonl")
        results, quarantine = _run_outputs(rows, [succeeds for _, succeeds in drawn], source)
        assert _check(folder, rows, results, quarantine).ok
        if not rows:
            return
        outputs = results if (pick % 2 and results) or not quarantine else quarantine
        at = pick % len(outputs)
        changed_id = orjson.loads(orjson.dumps(outputs[at]["id"]))
        if changed_id is None:  # an item without a valid id is known by where it was read
            changed_id = {"file": os.path.realpath(source), "line": outputs[at]["source"]["line"]}
        if lose:
            del outputs[at]
        else:
            outputs.insert(at, outputs[at])
        report = _check(folder, rows, results, quarantine)
    assert not report.ok
    expected = {"missing": [changed_id]} if lose else {"duplicated": [changed_id]}
    assert _faults(report) == expected


def _no_id(file: str, line: int) -> dict:
    return {
        "id": None,
        "item": {"id": None},
        "error": {"kind": "invalid_input"},
        "source": {"file": file, "line": line},
    }


def test_items_without_a_valid_id_are_known_by_file_and_line(tmp_path: Path) -> None:
    # Items 0 and 1 have no valid id; their positions are the real ids of items 2 and 3.
    inputs = [{"id": None}, {"id": 1.5}, {"id": 0}, {"id": 1}]
    source = str(tmp_path / "in.jsonl")
    report = _check(tmp_path, inputs, _ids(0, 1), [_no_id(source, 1), _no_id(source, 2)])
    assert report.ok, report.lines()
    # The rows of the run before invalid ids had none: under positions, they collide.
    assert not _check(tmp_path, inputs, _ids(0, 1), _bad(0, 1)).ok
    # A row for the wrong line is both missing and unexpected, and says where.
    report = _check(tmp_path, inputs, _ids(0, 1), [_no_id(source, 1), _no_id(source, 3)])
    where = os.path.realpath(source)
    assert _faults(report) == {
        "missing": [{"file": where, "line": 2}],
        "unexpected": [{"file": where, "line": 3}],
    }
    assert f"(no valid id: {where} line 2)" in "\n".join(report.lines())


def test_a_null_id_without_a_source_is_a_row_without_an_id(tmp_path: Path) -> None:
    report = _check(tmp_path, [{"id": None}], [], [{"id": None, "item": {"id": None}}])
    assert report.rows_without_id == 1 and not report.ok
