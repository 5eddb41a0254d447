"""--stream against the simulator: answers put back together from server-sent events,
time to first token in the summary, and a stalled stream cut by --idle-timeout."""

from __future__ import annotations

from pathlib import Path

import orjson

from pipeline.simulator.answers import chat_content
from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import read_jsonl, run_cli, write_jsonl


def _run(sim: BackgroundSimulator, source: str, out: Path, *extra: str):
    args = ["run", source, "-o", str(out), "-m", "sim-chat", "-p", "{{ text }}", "--stream"]
    return run_cli([*args, "--base-url", sim.base_url, "--no-cache", *extra])


def test_a_streamed_answer_is_the_same_answer_with_its_usage(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": n, "text": f"t{n}"} for n in range(12)])
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    with BackgroundSimulator(SimulatorConfig(latency=0.02)) as sim:
        result = _run(sim, source, out, "--summary", str(summary))
        assert sim.stats().streamed == 12
    assert result.exit_code == 0, result.output
    for row in read_jsonl(out):
        assert row["output"] == chat_content([{"role": "user", "content": row["text"]}])
        assert row["usage"]["completion_tokens"] > 0
    first_token = orjson.loads(summary.read_bytes())["latency_ms_by_stage"]["first_token"]
    assert first_token["p50"] is not None and first_token["p50"] >= 20


def test_a_stalled_stream_is_cut_by_the_idle_timeout_and_asked_again(tmp_path: Path) -> None:
    rows = [{"id": 1, "text": "fine"}, {"id": 2, "text": "stuck once [[sim:stallx1]]"}]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    # The stall would hold the answer for ten minutes; --timeout alone would wait 60 s.
    with BackgroundSimulator(SimulatorConfig(hang_seconds=600)) as sim:
        result = _run(sim, source, out, "--idle-timeout", "0.3", "--retry-backoff", "0")
        stats = sim.stats()
    assert result.exit_code == 0, result.output
    assert stats.stalled == 1
    assert [row["id"] for row in read_jsonl(out)] == [1, 2]


def test_a_stream_that_always_stalls_ends_in_the_quarantine(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "stuck [[sim:stall]]"}])
    out = tmp_path / "out.jsonl"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(
            sim, source, out, "--idle-timeout", "0.2", "--max-retries", "1", "--retry-backoff", "0"
        )
    assert result.exit_code == 1
    (bad,) = read_jsonl(tmp_path / "out.quarantine.jsonl")
    assert bad["error"]["kind"] == "transient"
    assert "--idle-timeout" in bad["error"]["message"]


def test_streaming_and_a_schema_together(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": n, "text": f"t{n}"} for n in range(5)])
    out = tmp_path / "out.jsonl"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, out, "--schema", "label: positive|negative|neutral, n: int")
    assert result.exit_code == 0, result.output
    for row in read_jsonl(out):
        assert row["output"]["label"] in ("positive", "negative", "neutral")
        assert isinstance(row["output"]["n"], int)


def test_each_streamed_attempt_records_its_time_to_first_token_in_the_trace(
    tmp_path: Path,
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": n, "text": f"t{n}"} for n in range(3)])
    trace = tmp_path / "trace.jsonl"
    with BackgroundSimulator(SimulatorConfig(latency=0.01)) as sim:
        result = _run(sim, source, tmp_path / "out.jsonl", "--trace-file", str(trace))
    assert result.exit_code == 0, result.output
    spans = [orjson.loads(line) for line in trace.read_bytes().splitlines()]
    firsts = [s["attributes"]["sluice.first_token_ms"] for s in spans if s["kind"] == "CLIENT"]
    assert len(firsts) == 3
    assert all(first >= 10 for first in firsts)
