import os
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.config import Secret
from pipeline.core.errors import ErrorKind, OutputError
from pipeline.core.models import Failure, Item, Success, Usage
from pipeline.core.redact import Redactor
from pipeline.write.atomic import AtomicFile, user_file_mode
from pipeline.write.parquet import ParquetWriter
from pipeline.write.rows import quarantine_row, result_row
from pipeline.write.writers import JsonlWriter


def _partials(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".partial")]


def test_jsonl_appears_only_on_commit_and_abort_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("previous\n")
    writer = JsonlWriter(str(target))
    writer.write_rows([{"a": 1}])
    assert target.read_text() == "previous\n"
    writer.abort()
    assert target.read_text() == "previous\n" and _partials(tmp_path) == []

    writer = JsonlWriter(str(target))
    writer.write_rows([{"a": 1}, {"a": 2}])
    writer.commit()
    assert [orjson.loads(line) for line in target.read_bytes().splitlines()] == [{"a": 1}, {"a": 2}]
    assert _partials(tmp_path) == []
    # An output, unlike state and cache files, follows the user's umask.
    assert target.stat().st_mode & 0o777 == user_file_mode()


def test_parquet_schema_is_fixed_by_the_first_rows(tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    writer = ParquetWriter(str(target))
    writer.write_rows([{"id": "a", "note": None, "output": "x"}])
    writer.write_rows([{"id": "b", "note": "late text", "output": "y"}])
    writer.commit()
    table = pq.read_table(target)
    assert table.column("note").to_pylist() == [None, "late text"]


def test_parquet_row_that_does_not_fit_stops_instead_of_changing(tmp_path: Path) -> None:
    writer = ParquetWriter(str(tmp_path / "out.parquet"))
    writer.write_rows([{"id": 1, "output": "x"}] * 5000)
    with pytest.raises(OutputError, match="do not fit one Parquet schema"):
        writer.write_rows([{"id": "not-a-number", "output": "y"}] * 5000)
    writer.abort()
    assert os.listdir(tmp_path) == []


def test_parquet_rows_mixed_within_the_first_batch_stop_cleanly(tmp_path: Path) -> None:
    writer = ParquetWriter(str(tmp_path / "out.parquet"))
    with pytest.raises(OutputError, match="do not fit one Parquet schema"):
        writer.write_rows([{"id": 1}, {"id": "two"}] * 2500)
    writer.abort()
    assert os.listdir(tmp_path) == []


def test_an_output_that_is_a_directory_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="is a directory"):
        JsonlWriter(str(tmp_path))


def test_missing_output_directory_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot create"):
        JsonlWriter(str(tmp_path / "missing" / "out.jsonl"))


def test_rows_carry_the_item_its_id_and_the_error() -> None:
    item = Item(4, "in.jsonl", 5, {"text": "t"}, 4)
    assert result_row(Success(item, "ok", Usage(1, 2, 3)), "id") == {
        "text": "t",
        "id": 4,
        "output": "ok",
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        "cached": False,
    }
    bad = Item(5, "in.jsonl", 6, None, 5, raw="not json", problem="line is not valid JSON")
    row = quarantine_row(Failure(bad, ErrorKind.INVALID_INPUT, "line is not valid JSON"))
    assert row["item"] == "not json"
    assert row["error"] == {
        "kind": "invalid_input",
        "status": None,
        "message": "line is not valid JSON",
    }
    assert row["source"] == {"file": "in.jsonl", "line": 6}


def test_redactor_hides_the_key_and_key_shaped_tokens() -> None:
    redact = Redactor(Secret("sk-live-1234567890abcdef"))
    assert "1234567890" not in redact("bad key sk-live-1234567890abcdef here")
    assert (
        redact("Incorrect API key provided: sk-proj-abcdefghij")
        == "Incorrect API key provided: sk-***"
    )
    assert repr(Secret("sk-secret")) == "Secret('***')"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(rows=st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=5), max_size=20))
@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_jsonl_round_trips_any_rows(tmp_path: Path, rows: list[dict]) -> None:
    target = tmp_path / "round.jsonl"
    writer = JsonlWriter(str(target))
    writer.write_rows(rows)
    writer.commit()
    assert [orjson.loads(line) for line in target.read_bytes().splitlines()] == rows


def test_a_rename_never_replaces_a_device_or_a_pipe(tmp_path: Path) -> None:
    fifo = tmp_path / "parts.fifo"
    os.mkfifo(fifo)
    link = tmp_path / "fingerprint.json"
    link.symlink_to("/dev/null")
    for target in (fifo, link, Path("/dev/stdout")):
        with pytest.raises(OutputError, match="not a regular file"):
            AtomicFile(str(target))
    assert fifo.is_fifo() and link.is_symlink()
    assert _partials(tmp_path) == []
