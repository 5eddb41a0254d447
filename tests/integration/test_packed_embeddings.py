"""Packed embeddings against the simulator: many inputs a request, answers matched back by
index, the cache per input, and a bad input found by halving instead of failing its pack."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.simulator.answers import embedding
from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import read_jsonl, run_cli, write_jsonl

POISON = "this one is refused [[sim:400]]"


def _items(count: int, poison_at: int | None = None) -> list[dict[str, object]]:
    return [
        {"id": n, "text": POISON if n == poison_at else f"text number {n}"} for n in range(count)
    ]


def _run(sim: BackgroundSimulator, source: str, out: Path, *extra: str):
    args = ["run", source, "-o", str(out), "-m", "sim-embed", "--endpoint", "embeddings"]
    return run_cli([*args, "--base-url", sim.base_url, *extra])


def test_inputs_share_requests_and_each_item_gets_its_own_vector(tmp_path: Path) -> None:
    items = _items(300)
    source = write_jsonl(tmp_path / "in.jsonl", items)
    out = tmp_path / "out.parquet"
    summary = tmp_path / "summary.json"
    with BackgroundSimulator(SimulatorConfig(embedding_dimensions=16)) as sim:
        result = _run(sim, source, out, "--summary", str(summary), "--inputs-per-request", "64")
        assert sim.stats().requests_total == 5  # 64 + 64 + 64 + 64 + 44
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.schema.field("output").type == pa.list_(pa.float32(), 16)
    assert table.column("id").to_pylist() == list(range(300))
    for row in table.to_pylist():
        expected = pa.array(embedding(f"text number {row['id']}", 16), pa.float32())
        assert row["output"] == expected.to_pylist()
    facts = orjson.loads(summary.read_bytes())
    assert facts["requests"] == 5
    assert sum(r["usage"]["prompt_tokens"] for r in table.to_pylist()) == facts["tokens"]["prompt"]


def test_one_poison_input_is_quarantined_and_every_other_vector_arrives(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _items(64, poison_at=37))
    out = tmp_path / "out.jsonl"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, out)
        sent = sim.stats().requests_total
    assert result.exit_code == 1
    rows = read_jsonl(out)
    assert [row["id"] for row in rows] == [n for n in range(64) if n != 37]
    assert all(row["output"] == embedding(row["text"]) for row in rows)
    (bad,) = read_jsonl(tmp_path / "out.quarantine.jsonl")
    assert bad["id"] == 37
    assert bad["error"]["kind"] == "permanent"
    assert bad["error"]["status"] == 400
    assert sent <= 1 + 2 * 6  # the pack, then two halves at each of log2(64) levels


def test_a_partly_cached_pack_sends_only_the_missing_inputs(tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "first.jsonl", _items(40))
    both = write_jsonl(tmp_path / "both.jsonl", _items(60))
    with BackgroundSimulator(SimulatorConfig()) as sim:
        assert _run(sim, first, tmp_path / "a.jsonl").exit_code == 0
        assert sim.stats().requests_total == 1
        result = _run(sim, both, tmp_path / "b.jsonl")
        stats = sim.stats()
    assert result.exit_code == 0, result.output
    assert stats.requests_total == 2  # one more request, for the 20 new inputs
    assert all(stats.times_embedded(f"text number {n}") == 1 for n in range(60))
    rows = read_jsonl(tmp_path / "b.jsonl")
    assert [row["cached"] for row in rows] == [True] * 40 + [False] * 20
    assert all(row["output"] == embedding(row["text"]) for row in rows)


def test_one_input_per_request_sends_each_alone(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _items(10))
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, tmp_path / "out.jsonl", "--inputs-per-request", "1")
        assert sim.stats().requests_total == 10
    assert result.exit_code == 0, result.output


def test_the_plan_counts_packed_requests(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _items(130))
    args = ["plan", source, "-m", "sim-embed", "--endpoint", "embeddings", "--json", "--no-cache"]
    result = run_cli(args)
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["requests"] == 3
