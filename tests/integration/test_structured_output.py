"""--schema and --json against the simulator: typed Parquet read back with pyarrow and
DuckDB, unusable answers retried then quarantined with their text, and cached answers
checked again before they are reused."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.cache.keys import cache_key
from pipeline.cache.store import ResponseCache
from pipeline.core.config import Endpoint, RequestConfig
from pipeline.core.models import Item
from pipeline.prepare.request_builder import RequestBuilder
from pipeline.prepare.schema_inline import inline_schema
from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import read_jsonl, run_cli, write_jsonl

INLINE = "label: positive|negative|neutral, score: int, confidence: float, tags: list[str]"
LABELS = ("positive", "negative", "neutral")


def _run(sim: BackgroundSimulator, source: str, out: Path, *extra: str):
    args = ["run", source, "-o", str(out), "-m", "sim-chat", "-p", "Review: {{ text }}"]
    return run_cli([*args, "--base-url", sim.base_url, "--retry-backoff", "0", *extra])


def _reviews(count: int) -> list[dict[str, object]]:
    return [{"id": n, "text": f"review number {n}"} for n in range(count)]


def test_a_schema_becomes_typed_parquet_columns_duckdb_can_group_by(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _reviews(40))
    out = tmp_path / "labelled.parquet"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, out, "--schema", INLINE)
    assert result.exit_code == 0, result.output
    output_type = pq.read_schema(out).field("output").type
    assert output_type == pa.struct(
        [
            ("label", pa.string()),
            ("score", pa.int64()),
            ("confidence", pa.float64()),
            ("tags", pa.list_(pa.string())),
        ]
    )
    rows = pq.read_table(out).to_pylist()
    assert [row["id"] for row in rows] == list(range(40))
    assert all(row["output"]["label"] in LABELS for row in rows)
    counts = duckdb.sql(
        f"SELECT output.label, count(*) FROM '{out}' GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert sum(count for _, count in counts) == 40
    assert {label for label, _ in counts} <= set(LABELS)


def test_a_schema_file_in_jsonl_gives_parsed_objects(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"topic": {"type": "string"}, "urgent": {"type": "boolean"}},
        "required": ["topic", "urgent"],
        "additionalProperties": False,
    }
    schema_file = tmp_path / "triage.json"
    schema_file.write_bytes(orjson.dumps(schema))
    source = write_jsonl(tmp_path / "in.jsonl", _reviews(5))
    out = tmp_path / "out.jsonl"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, out, "--schema", str(schema_file))
    assert result.exit_code == 0, result.output
    for row in read_jsonl(out):
        assert set(row["output"]) == {"topic", "urgent"}
        assert isinstance(row["output"]["urgent"], bool)


def test_invalid_json_is_asked_again_then_quarantined_with_the_raw_answer(tmp_path: Path) -> None:
    rows = [
        {"id": 1, "text": "fine"},
        {"id": 2, "text": "broken once [[sim:invalid_jsonx1]]"},
        {"id": 3, "text": "always broken [[sim:invalid_json]]"},
        {"id": 4, "text": "always off-schema [[sim:schema_violation]]"},
    ]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, out, "--schema", INLINE, "--schema-retries", "2", "--no-cache")
        stats = sim.stats()
    assert result.exit_code == 1
    assert [row["id"] for row in read_jsonl(out)] == [1, 2]
    broken, off_schema = read_jsonl(tmp_path / "out.quarantine.jsonl")
    assert broken["id"] == 3
    assert broken["error"]["kind"] == "invalid_output"
    assert broken["attempts"] == 3  # the first, and --schema-retries 2
    assert "not JSON" in broken["error"]["message"]
    assert broken["error"]["answer"]  # what the model said, to see what went wrong
    assert off_schema["id"] == 4
    assert "does not match the schema at $" in off_schema["error"]["message"]
    assert orjson.loads(off_schema["error"]["answer"])  # JSON, just not the schema's
    assert stats.requests_total == 1 + 2 + 3 + 3


def test_json_mode_asks_for_an_object_and_keeps_it_parsed(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _reviews(3))
    out = tmp_path / "out.jsonl"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, out, "--json")
    assert result.exit_code == 0, result.output
    assert all(isinstance(row["output"], dict) for row in read_jsonl(out))


def test_a_cached_answer_the_schema_refuses_is_asked_again(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "kept"}])
    out = tmp_path / "out.jsonl"
    cache_dir = tmp_path / "cache"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        first = _run(sim, source, out, "--schema", INLINE, "--cache-dir", str(cache_dir))
        assert first.exit_code == 0, first.output
        # Replace the stored answer with one the schema refuses, under the same key.
        config = RequestConfig(
            Endpoint.CHAT, "sim-chat", "Review: {{ text }}", schema=inline_schema(INLINE)
        )
        item = Item(0, "in.jsonl", 1, {"id": 1, "text": "kept"}, 1)
        request = RequestBuilder(config).build(item)
        key = cache_key(sim.base_url, request.path, request.body)
        bad = {
            "choices": [{"message": {"content": '{"label": "great"}'}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        cache = ResponseCache(str(cache_dir), None, None)
        try:
            assert cache.get_many([key])  # the first run stored it there
            cache.put_many([(key, orjson.dumps(bad))])
        finally:
            cache.close()
        second = _run(sim, source, out, "--schema", INLINE, "--cache-dir", str(cache_dir))
        assert sim.stats().requests_total == 2  # the refused entry was a miss
    assert second.exit_code == 0, second.output
    (row,) = read_jsonl(out)
    assert row["cached"] is False
    assert row["output"]["label"] in LABELS


def test_schema_mistakes_are_refused_before_anything_is_sent(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _reviews(2))
    bad_schema = tmp_path / "bad.json"
    bad_schema.write_text('{"type": "object", "properties": {"a": {"type": "strin"}}}')
    with BackgroundSimulator(SimulatorConfig()) as sim:
        missing = _run(sim, source, tmp_path / "o.jsonl", "--schema", "nofile.json")
        inline = _run(sim, source, tmp_path / "o.jsonl", "--schema", "label: ")
        invalid = _run(sim, source, tmp_path / "o.jsonl", "--schema", str(bad_schema))
        both = _run(sim, source, tmp_path / "o.jsonl", "--json", "-O", "response_format={}")
        assert sim.stats().requests_total == 0
    assert missing.exit_code == 66
    assert inline.exit_code == 2
    assert invalid.exit_code == 78
    assert "$.properties.a" in invalid.output
    assert both.exit_code == 2
