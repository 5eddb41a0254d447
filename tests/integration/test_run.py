"""`sluice run` end to end against the simulator on 127.0.0.1."""

from __future__ import annotations

import datetime
import decimal
import gzip
import os
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.simulator.answers import chat_content, embedding
from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import read_jsonl, run_cli, write_jsonl

PROMPT = "Review: {{ text }}"


def _reviews(count: int) -> list[dict]:
    return [{"id": f"r-{n:04d}", "text": f"review number {n}"} for n in range(count)]


def _expected(text: str) -> str:
    return chat_content([{"role": "user", "content": f"Review: {text}"}])


def _run(sim: BackgroundSimulator, inputs: list[str], out: Path, *extra: str, **kw):
    args = ["run", *inputs, "-o", str(out), "-m", "sim-chat", "-p", PROMPT]
    return run_cli([*args, "--base-url", sim.base_url, "--retry-backoff", "0", *extra], **kw)


def test_jsonl_happy_path_every_item_its_own_answer_in_order(sim, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _reviews(230))
    result = _run(sim, [source], tmp_path / "out.jsonl", "-c", "8", "--batch-size", "20")
    assert result.exit_code == 0, result.output
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in rows] == [f"r-{n:04d}" for n in range(230)]
    assert all(r["output"] == _expected(r["text"]) for r in rows)
    assert all(r["usage"]["total_tokens"] > 0 and r["cached"] is False for r in rows)
    assert read_jsonl(tmp_path / "out.quarantine.jsonl") == []


def test_output_order_holds_when_answers_arrive_out_of_order(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _reviews(120))
    with BackgroundSimulator(SimulatorConfig(latency=0.02, jitter=0.02, seed=3)) as jittery:
        result = _run(jittery, [source], tmp_path / "out.jsonl", "-c", "32", "--batch-size", "7")
    assert result.exit_code == 0, result.output
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in rows] == [f"r-{n:04d}" for n in range(120)]
    assert all(r["output"] == _expected(r["text"]) for r in rows)


def test_parquet_in_and_out_keeps_the_input_schema(sim, tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    table = pa.table(
        {"id": list(range(60)), "text": [f"t{n}" for n in range(60)], "score": [0.5] * 60}
    )
    pq.write_table(table, source, row_group_size=25)
    result = _run(sim, [str(source)], tmp_path / "out.parquet")
    assert result.exit_code == 0, result.output
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.schema.names == ["id", "text", "score", "output", "usage", "cached"]
    assert out.column("id").to_pylist() == list(range(60))
    assert out.column("output").to_pylist() == [_expected(f"t{n}") for n in range(60)]


def test_gzip_in_and_out(sim, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl.gz"
    source.write_bytes(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in _reviews(30))))
    result = _run(sim, [str(source)], tmp_path / "out.jsonl.gz")
    assert result.exit_code == 0, result.output
    rows = [
        orjson.loads(line)
        for line in gzip.decompress((tmp_path / "out.jsonl.gz").read_bytes()).splitlines()
    ]
    assert [r["id"] for r in rows] == [f"r-{n:04d}" for n in range(30)]
    assert (tmp_path / "out.quarantine.jsonl").exists()


def test_several_inputs_form_one_run_in_order(sim, tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", _reviews(3))
    second = write_jsonl(tmp_path / "b.jsonl", [{"id": "z", "text": "last"}])
    result = _run(sim, [first, second], tmp_path / "out.jsonl")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == [
        "r-0000",
        "r-0001",
        "r-0002",
        "z",
    ]


def test_stdin_to_stdout(sim, tmp_path: Path) -> None:
    lines = b"".join(orjson.dumps(r) + b"\n" for r in _reviews(5))
    quarantine = tmp_path / "q.jsonl"
    result = _run(sim, ["-"], Path("-"), "--quarantine", str(quarantine), "-q", stdin=lines)
    assert result.exit_code == 0, result.output
    rows = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [r["output"] for r in rows] == [_expected(f"review number {n}") for n in range(5)]
    assert result.stderr == ""


def test_every_invalid_input_kind_is_quarantined_and_the_rest_goes_on(sim, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        b'{"id": "a", "text": "fine"}\n'
        b"not json\n"
        b"[1, 2]\n"
        b'{"id": "b", "text": "caf\xff"}\n'
        b'{"id": "a", "text": "duplicate id"}\n'
        b'{"id": "c", "body": "no text field"}\n'
        b"\n"
        b'{"id": {"nested": 1}, "text": "bad id type"}\n'
        b'{"id": "d", "text": "also fine"}\n'
    )
    result = _run(sim, [str(source)], tmp_path / "out.jsonl")
    assert result.exit_code == 1  # quarantined items exceed the default --max-error-rate of 0
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["a", "d"]
    bad = read_jsonl(tmp_path / "out.quarantine.jsonl")
    assert [(r["source"]["line"], r["error"]["kind"]) for r in bad] == [
        (2, "invalid_input"),
        (3, "invalid_input"),
        (4, "invalid_input"),
        (5, "invalid_input"),
        (6, "invalid_input"),
        (8, "invalid_input"),
    ]
    messages = [r["error"]["message"] for r in bad]
    assert "not valid JSON" in messages[0]
    assert "not an object" in messages[1]
    assert "UTF-8" in messages[2]
    assert "duplicate id 'a'" in messages[3]
    assert "'text' is undefined" in messages[4]
    assert "must be a string or an integer" in messages[5]
    assert bad[3]["item"] == {"id": "a", "text": "duplicate id"}
    assert all(r["attempts"] == 0 for r in bad)


def test_a_400_is_quarantined_with_its_message_after_one_attempt(tmp_path: Path) -> None:
    rows = [{"id": "ok", "text": "fine"}, {"id": "poison", "text": "[[sim:context_length]]"}]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    with BackgroundSimulator() as fresh:
        result = _run(fresh, [source], tmp_path / "out.jsonl", "--max-error-rate", "0.5")
        stats = fresh.stats()
    assert result.exit_code == 0, result.output
    (bad,) = read_jsonl(tmp_path / "out.quarantine.jsonl")
    assert bad["id"] == "poison" and bad["attempts"] == 1
    assert bad["error"]["kind"] == "permanent" and bad["error"]["status"] == 400
    assert "maximum context length" in bad["error"]["message"]
    poison_messages = [{"role": "user", "content": "Review: [[sim:context_length]]"}]
    assert stats.times_requested(poison_messages) == 1


def test_a_500_is_retried_and_then_succeeds(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "flaky [[sim:500x2]]"}])
    with BackgroundSimulator() as fresh:
        result = _run(
            fresh, [source], tmp_path / "out.jsonl", "--summary", str(tmp_path / "s.json")
        )
        stats = fresh.stats()
    assert result.exit_code == 0, result.output
    (row,) = read_jsonl(tmp_path / "out.jsonl")
    assert row["output"] == _expected("flaky [[sim:500x2]]")
    assert stats.responses_by_status[500] == 2 and stats.responses_by_status[200] == 1
    summary = orjson.loads((tmp_path / "s.json").read_bytes())
    assert summary["requests"] == 3 and summary["retries"] == 2 and summary["exit_code"] == 0


def test_dropped_connections_and_malformed_bodies_are_retried(tmp_path: Path) -> None:
    rows = [{"id": 1, "text": "[[sim:dropx1]]"}, {"id": 2, "text": "[[sim:malformedx1]]"}]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    with BackgroundSimulator() as fresh:
        result = _run(fresh, [source], tmp_path / "out.jsonl")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == [1, 2]


def test_embeddings(sim, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"doc": "alpha"}, {"doc": "beta"}])
    args = ["run", source, "-o", str(tmp_path / "out.jsonl"), "--endpoint", "embeddings"]
    args += ["-m", "sim-embed", "--input-field", "doc", "--base-url", sim.base_url]
    result = run_cli(args)
    assert result.exit_code == 0, result.output
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [r["output"] for r in rows] == [embedding("alpha"), embedding("beta")]
    assert [r["id"] for r in rows] == [0, 1]


def test_batch_lines_are_sent_as_they_are(sim, tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "hello"}]
    line = {
        "custom_id": "req-1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "sim-chat", "messages": messages},
    }
    source = write_jsonl(tmp_path / "in.jsonl", [line])
    result = run_cli(["run", source, "-o", str(tmp_path / "out.jsonl"), "--base-url", sim.base_url])
    assert result.exit_code == 0, result.output
    (row,) = read_jsonl(tmp_path / "out.jsonl")
    assert row["custom_id"] == "req-1" and row["output"] == chat_content(messages)


def test_api_key_never_appears_in_any_output(tmp_path: Path) -> None:
    key = "sk-test-DO-NOT-LEAK-0123456789abcdef"
    rows = [
        {"id": 1, "text": "ok"},
        {"id": 2, "text": "[[sim:400]]"},
        {"id": 3, "text": "[[sim:500x9]]"},
    ]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    summary = tmp_path / "summary.json"
    with BackgroundSimulator(SimulatorConfig(require_key=key)) as keyed:
        result = _run(
            keyed,
            [source],
            tmp_path / "out.jsonl",
            "--max-retries",
            "1",
            "--summary",
            str(summary),
            env={"OPENAI_API_KEY": key},
        )
    assert result.exit_code == 1
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 1
    assert key not in result.output + result.stderr
    for name in os.listdir(tmp_path):
        assert key.encode() not in (tmp_path / name).read_bytes(), name


def test_api_key_is_not_in_the_state_directory_or_the_cache(tmp_path: Path) -> None:
    key = "sk-test-DO-NOT-LEAK-fedcba9876543210"
    source = write_jsonl(tmp_path / "in.jsonl", _reviews(40))
    config = SimulatorConfig(require_key=key, quota_requests=25)
    with BackgroundSimulator(config) as keyed:
        # The quota runs out midway: exit 75 with committed batches kept for a resume.
        result = _run(keyed, [source], tmp_path / "out.jsonl", "--batch-size", "5", "-c", "1",
                      env={"OPENAI_API_KEY": key})  # fmt: skip
    assert result.exit_code == 75, result.output
    state = tmp_path / ".out.jsonl.sluice"
    cache = tmp_path.with_name(tmp_path.name + "-cache")
    written = [p for root in (state, cache) for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".part" for p in written) and any(p.name == "cache.db" for p in written)
    for path in written:
        assert key.encode() not in path.read_bytes(), path
    assert key not in result.output + result.stderr


def _typed_table() -> pa.Table:
    return pa.table(
        {
            "id": [1, 2],
            "text": ["alpha", None],
            "price": pa.array([decimal.Decimal("1.10"), None], pa.decimal128(5, 2)),
            "blob": pa.array([b"\x00\xff", b"plain"], pa.binary()),
            "seen": pa.array([datetime.datetime(2026, 1, 2, 3, 4, 5), None], pa.timestamp("s")),
            "day": pa.array([datetime.date(2026, 1, 2), None], pa.date32()),
            "wait": pa.array([datetime.timedelta(seconds=90), None], pa.duration("s")),
            "tags": [["a", "b"], []],
            "meta": [{"k": 1, "v": "x"}, None],
            "empty": pa.array([None, None], pa.null()),
        }
    )


def test_parquet_with_every_column_type_reaches_jsonl_and_parquet(sim, tmp_path: Path) -> None:
    source = tmp_path / "typed.parquet"
    pq.write_table(_typed_table(), source)
    args = ["-p", "{{ text or 'none' }} costs {{ price }}"]
    as_jsonl = run_cli(
        ["run", str(source), "-o", str(tmp_path / "out.jsonl"), "-m", "sim-chat", *args,
         "--base-url", sim.base_url]
    )  # fmt: skip
    assert as_jsonl.exit_code == 0, as_jsonl.output
    first, second = read_jsonl(tmp_path / "out.jsonl")
    assert first["price"] == "1.10" and first["blob"] == "base64:AP8="
    assert first["seen"] == "2026-01-02T03:04:05" and first["wait"] == 90.0
    assert first["meta"] == {"k": 1, "v": "x"} and second["blob"] == "plain"
    assert first["output"] == chat_content([{"role": "user", "content": "alpha costs 1.10"}])

    as_parquet = run_cli(
        ["run", str(source), "-o", str(tmp_path / "out.parquet"), "-m", "sim-chat", *args,
         "--base-url", sim.base_url]
    )  # fmt: skip
    assert as_parquet.exit_code == 0, as_parquet.output
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.schema.field("price").type == pa.decimal128(5, 2)
    assert out.column("tags").to_pylist() == [["a", "b"], []]
