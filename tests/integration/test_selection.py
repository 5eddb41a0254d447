"""--where, --drop-skipped, --truncate and --max-input-tokens in real runs against the
simulator: what is sent, what the rows say, and that `sluice verify` still holds."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.parquet as pq

from pipeline.simulator.answers import chat_content
from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import read_jsonl, run_cli, write_jsonl

ROWS = [
    {"id": n, "rating": n % 5 + 1, "lang": "en" if n % 3 else "de", "text": f"review {n} " * 6}
    for n in range(30)
]


def _run(sim: BackgroundSimulator, source: str, out: Path, *extra: str):
    args = ["run", source, "-o", str(out), "-m", "sim-chat", "-p", "Label: {{ text }}"]
    return run_cli([*args, "--base-url", sim.base_url, "--batch-size", "4", *extra])


def test_items_where_leaves_out_are_not_sent_and_say_skipped(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    where = 'rating <= 2 and lang == "en"'
    chosen = [r["id"] for r in ROWS if r["rating"] <= 2 and r["lang"] == "en"]
    summary = tmp_path / "summary.json"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, out, "--where", where, "--summary", str(summary))
        assert sim.stats().requests_total == len(chosen)
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    assert [row["id"] for row in rows] == [r["id"] for r in ROWS]  # every item accounted for
    for row in rows:
        sent = row["id"] in chosen
        assert row["skipped"] is not sent
        assert (row["output"] is None) is not sent
    facts = orjson.loads(summary.read_bytes())
    assert facts["skipped_by_where"] == len(ROWS) - len(chosen)
    assert facts["succeeded"] == len(chosen)
    verified = run_cli(["verify", source, "-r", str(out)])
    assert verified.exit_code == 0, verified.output


def test_drop_skipped_leaves_them_out_and_verify_accepts_it_given_the_same_where(
    tmp_path: Path,
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "out.parquet"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, out, "--where", "rating >= 4", "--drop-skipped")
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == [r["id"] for r in ROWS if r["rating"] >= 4]
    assert not any(table.column("skipped").to_pylist())
    strict = run_cli(["verify", source, "-r", str(out)])
    assert strict.exit_code == 1  # without the expression, the left-out items are missing
    relaxed = run_cli(["verify", source, "-r", str(out), "--where", "rating >= 4"])
    assert relaxed.exit_code == 0, relaxed.output
    other = run_cli(["verify", source, "-r", str(out), "--where", "rating >= 3"])
    assert other.exit_code == 1  # rating 3 items should be there and are not


def test_an_item_the_expression_cannot_evaluate_is_quarantined_naming_the_column(
    tmp_path: Path,
) -> None:
    rows = [{"id": 1, "rating": 2, "text": "a"}, {"id": 2, "rating": "two", "text": "b"}]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, out, "--where", "rating <= 2")
    assert result.exit_code == 1
    (bad,) = read_jsonl(tmp_path / "out.quarantine.jsonl")
    assert bad["id"] == 2
    assert bad["error"]["kind"] == "invalid_input"
    assert "--where, column" in bad["error"]["message"]


def test_a_malformed_expression_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ROWS)
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, tmp_path / "out.jsonl", "--where", "rating <= ")
        refused = _run(sim, source, tmp_path / "out.jsonl", "--where", "text.__class__")
        assert sim.stats().requests_total == 0
    assert result.exit_code == 2
    assert "--where, column" in result.output
    assert refused.exit_code == 2
    assert not (tmp_path / "out.jsonl").exists()


def test_truncate_cuts_what_is_sent_and_keeps_the_row_whole(tmp_path: Path) -> None:
    rows = [{"id": 1, "text": "x" * 50}]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, out, "--truncate", "text:10")
    assert result.exit_code == 0, result.output
    (row,) = read_jsonl(out)
    assert row["text"] == "x" * 50
    sent = [{"role": "user", "content": "Label: " + "x" * 10}]
    assert row["output"] == chat_content(sent)


def test_max_input_tokens_quarantines_long_prompts_without_sending_them(tmp_path: Path) -> None:
    rows = [{"id": 1, "text": "short"}, {"id": 2, "text": "long " * 200}]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, out, "--max-input-tokens", "100")
        assert sim.stats().requests_total == 1
    assert result.exit_code == 1
    assert [row["id"] for row in read_jsonl(out)] == [1]
    (bad,) = read_jsonl(tmp_path / "out.quarantine.jsonl")
    assert bad["error"]["kind"] == "invalid_input"
    assert "over --max-input-tokens 100" in bad["error"]["message"]


def test_selection_flags_that_make_no_sense_are_usage_errors(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ROWS)
    with BackgroundSimulator(SimulatorConfig()) as sim:
        dropped = _run(sim, source, tmp_path / "o.jsonl", "--drop-skipped")
        cut = _run(sim, source, tmp_path / "o.jsonl", "--truncate", "text")
    assert dropped.exit_code == 2
    assert "--drop-skipped" in dropped.output
    assert cut.exit_code == 2
    assert "FIELD:N" in cut.output
