"""`sluice status STATE_DIR` on the state a stopped run left."""

from __future__ import annotations

from pathlib import Path

import orjson

from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import run_cli, write_jsonl


def _stopped_run(tmp_path: Path) -> Path:
    """A run the quota stops after 12 requests: 2 batches of 5 committed, resumable."""
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": n, "text": f"t{n}"} for n in range(30)])
    with BackgroundSimulator(SimulatorConfig(quota_requests=12)) as sim:
        args = ["run", source, "-o", str(tmp_path / "out.jsonl"), "-m", "sim-chat", "-c", "1"]
        result = run_cli([*args, "--batch-size", "5", "--base-url", sim.base_url])
    assert result.exit_code == 75, result.output
    return tmp_path / ".out.jsonl.sluice"


def test_status_shows_what_a_stopped_run_committed(tmp_path: Path) -> None:
    state = _stopped_run(tmp_path)
    result = run_cli(["status", str(state)])
    assert result.exit_code == 0, result.output
    assert "stopped; run the same command again to resume" in result.stdout
    assert "10 items of 30 (33%) in 2 batches" in result.stdout
    assert "10 ok" in result.stdout


def test_status_as_json(tmp_path: Path) -> None:
    state = _stopped_run(tmp_path)
    report = orjson.loads(run_cli(["status", str(state), "--json"]).stdout)
    assert report["running"] is False and report["pid"] is None
    assert (report["batches"], report["items"], report["input_items"]) == (2, 10, 30)
    assert report["model"] == "sim-chat" and report["last_commit"] is not None


def test_status_of_a_directory_without_state_is_exit_66(tmp_path: Path) -> None:
    result = run_cli(["status", str(tmp_path)])
    assert result.exit_code == 66
    assert "not a sluice state directory" in result.stderr


def test_status_reports_a_damaged_part_and_what_the_next_run_redoes(tmp_path: Path) -> None:
    state = _stopped_run(tmp_path)
    second = state / "parts" / "000000001.part"
    second.write_bytes(second.read_bytes()[:-3])
    text = run_cli(["status", str(state)])
    assert text.exit_code == 0, text.output
    assert "5 items of 30 (17%) in 1 batch" in text.stdout
    assert f"damaged:     {second} (it is cut short)" in text.stdout
    assert "the next run redoes the batches from 1 on" in text.stdout
    report = orjson.loads(run_cli(["status", str(state), "--json"]).stdout)
    assert report["damaged"] == {
        "path": str(second),
        "reason": "it is cut short",
        "redo_from_batch": 1,
    }


def test_status_of_parts_that_are_not_a_directory_is_no_crash(tmp_path: Path) -> None:
    state = _stopped_run(tmp_path)
    for part in (state / "parts").iterdir():
        part.unlink()
    (state / "parts").rmdir()
    (state / "parts").write_text("a file")
    report = orjson.loads(run_cli(["status", str(state), "--json"]).stdout)
    assert report["batches"] == 0
    assert report["damaged"]["reason"] == "it is not a directory"
