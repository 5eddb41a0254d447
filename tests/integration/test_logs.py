"""What a run says on stderr when it is not a terminal: quiet on success, progress
lines that keep coming, JSON lines with the trace id, and an honest resume line."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import run_cli, write_jsonl

PROGRESS = re.compile(r"^sluice: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ [\d,]+/[\d,]+ items")


def _args(tmp_path: Path, sim: BackgroundSimulator, items: int = 40, *extra: str) -> list[str]:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": n, "text": f"t{n}"} for n in range(items)])
    return [
        "run", source, "-o", str(tmp_path / "out.jsonl"), "-m", "sim-chat", "-p", "{{ text }}",
        "--base-url", sim.base_url, "--batch-size", "10", "--retry-backoff", "0", *extra,
    ]  # fmt: skip


def test_quiet_leaves_stderr_empty_on_success(tmp_path: Path) -> None:
    with BackgroundSimulator(SimulatorConfig()) as sim:
        done = run_cli([*_args(tmp_path, sim), "-q"])
    assert done.exit_code == 0
    assert done.stderr == ""


def test_progress_lines_keep_coming_while_the_breaker_is_open(tmp_path: Path) -> None:
    with BackgroundSimulator(SimulatorConfig(fail_rate=1.0)) as sim:
        done = run_cli(
            [*_args(tmp_path, sim), "--log-every", "0.5", "--breaker-timeout", "4", "-c", "2"]
        )
    assert done.exit_code == 69
    lines = [line for line in done.stderr.splitlines() if PROGRESS.match(line)]
    assert all("0/40 items" in line for line in lines)  # nothing ever finished
    assert all("concurrency" in line and "429s" in line for line in lines)
    # Once the breaker opens, every line says why nothing moves, for the 4 s it stays open.
    open_lines = [line for line in lines if "waiting for the endpoint to recover" in line]
    assert len(open_lines) >= 3, done.stderr
    assert all("last error: HTTP 50" in line for line in open_lines)


def test_json_logs_are_one_object_a_line_with_the_runs_trace_id(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    with BackgroundSimulator(SimulatorConfig(latency=0.05)) as sim:
        args = [*_args(tmp_path, sim, 60), "--log-format", "json", "--log-every", "0.2", "-v"]
        done = run_cli([*args, "-c", "2", "--summary", str(summary)])
    assert done.exit_code == 0, done.stderr
    records = [orjson.loads(line) for line in done.stderr.splitlines()]
    trace_id = orjson.loads(summary.read_bytes())["trace_id"]
    assert {record["trace_id"] for record in records} == {trace_id}
    events = [record.get("event") for record in records]
    assert "progress" in events and events[-1] == "summary"
    assert events.count("committed") == 6  # -v: one per batch
    progress = next(record for record in records if record.get("event") == "progress")
    assert {"done", "total", "items_per_second", "eta_seconds", "retries", "concurrency"} <= set(
        progress
    )
    assert all(record["time"].endswith("Z") for record in records)


def test_a_resumed_run_says_how_much_was_done_before(tmp_path: Path) -> None:
    with BackgroundSimulator(SimulatorConfig()) as sim:
        first = run_cli([*_args(tmp_path, sim), "--max-requests", "20", "-q"])
        assert first.exit_code == 3
        again = run_cli(_args(tmp_path, sim))
    assert again.exit_code == 0
    assert "sluice: resuming: 20 of 40 items already done" in again.stderr.splitlines()
