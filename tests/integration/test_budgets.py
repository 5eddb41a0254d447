"""Budgets: each stops the job at its limit with exit 3, keeps what it spent in the
state, and the same command with a larger budget finishes the job exactly once."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import read_jsonl, run_cli, write_jsonl

ITEMS = 120


def _job(tmp_path: Path, sim: BackgroundSimulator, *extra: str) -> list[str]:
    source = write_jsonl(
        tmp_path / "in.jsonl", [{"id": n, "text": f"item {n}"} for n in range(ITEMS)]
    )
    return [
        "run", source, "-o", str(tmp_path / "out.jsonl"), "-m", "gpt-4o-mini",
        "-p", "Label: {{ text }}", "--base-url", sim.base_url, "--batch-size", "10",
        "-c", "4", "--summary", str(tmp_path / "summary.json"), *extra,
    ]  # fmt: skip


def _summary(tmp_path: Path) -> dict:
    return orjson.loads((tmp_path / "summary.json").read_bytes())


@pytest.mark.parametrize("limit", [1, 25, 64])
def test_max_requests_stops_at_the_limit_and_a_larger_one_finishes_exactly_once(
    tmp_path: Path, limit: int
) -> None:
    with BackgroundSimulator(SimulatorConfig()) as sim:
        stopped = run_cli([*_job(tmp_path, sim), "--max-requests", str(limit)])
        assert stopped.exit_code == 3, stopped.output
        assert "--max-requests" in stopped.stderr
        assert sim.stats().requests_total == limit  # never one more
        assert not (tmp_path / "out.jsonl").exists()
        assert _summary(tmp_path)["stopped_by"] == "max_requests"
        status = run_cli(["status", str(tmp_path / ".out.jsonl.sluice"), "--json"])
        assert orjson.loads(status.stdout)["spent"]["requests"] == limit
        again = run_cli([*_job(tmp_path, sim), "--max-requests", str(limit)])
        assert again.exit_code == 3  # the job spent it all: the same budget sends nothing
        assert sim.stats().requests_total == limit
        finished = run_cli([*_job(tmp_path, sim), "--max-requests", str(ITEMS)])
        assert finished.exit_code == 0, finished.output
        assert sim.stats().requests_total == ITEMS  # every item sent exactly once
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [row["id"] for row in rows] == list(range(ITEMS))
    assert _summary(tmp_path)["whole_job"]["requests"] == ITEMS


def test_max_cost_stops_before_passing_it_and_counts_the_whole_job(tmp_path: Path) -> None:
    # 1 USD per million tokens both ways: each request costs about 12 micro-dollars.
    prices = ["--price-in", "1", "--price-out", "1"]
    with BackgroundSimulator(SimulatorConfig()) as sim:
        stopped = run_cli([*_job(tmp_path, sim, *prices), "--max-cost", "0.0005"])
        assert stopped.exit_code == 3, stopped.output
        assert "--max-cost" in stopped.stderr
        first = _summary(tmp_path)
        assert first["stopped_by"] == "max_cost"
        assert 0 < first["cost"]["whole_job"] <= 0.0005
        assert sim.stats().requests_total == first["requests"]
        finished = run_cli([*_job(tmp_path, sim, *prices), "--max-cost", "1"])
        assert finished.exit_code == 0, finished.output
        assert sim.stats().requests_total == ITEMS
    job = _summary(tmp_path)
    stats_tokens = sim.stats()
    assert job["cost"]["whole_job"] == pytest.approx(
        (stats_tokens.prompt_tokens + stats_tokens.completion_tokens) / 1e6, rel=1e-6
    )


def test_max_cost_needs_a_price(tmp_path: Path) -> None:
    with BackgroundSimulator(SimulatorConfig()) as sim:
        args = _job(tmp_path, sim, "--max-cost", "1")
        args[args.index("gpt-4o-mini")] = "house-model"
        refused = run_cli(args)
        assert refused.exit_code == 78
        assert "--price-in" in refused.stderr
        assert sim.stats().requests_total == 0


def test_a_deadline_stops_sending_commits_what_landed_and_resumes(tmp_path: Path) -> None:
    with BackgroundSimulator(SimulatorConfig(latency=0.05)) as sim:
        stopped = run_cli([*_job(tmp_path, sim), "-c", "1", "--deadline", "1s"])
        assert stopped.exit_code == 3, stopped.output
        assert "--deadline" in stopped.stderr
        sent = sim.stats().requests_total
        assert 0 < sent < ITEMS
        summary = _summary(tmp_path)
        assert summary["stopped_by"] == "deadline"
        # Everything that landed in a complete batch is committed, nothing lost:
        assert summary["items"] == summary["succeeded"]
        finished = run_cli([*_job(tmp_path, sim), "--deadline", "10m"])
        assert finished.exit_code == 0, finished.output
        assert _summary(tmp_path)["resumed"] == summary["items"]
    assert [row["id"] for row in read_jsonl(tmp_path / "out.jsonl")] == list(range(ITEMS))
