"""Traffic control against the simulator: limits kept, failures retried, poison not."""

from __future__ import annotations

from pathlib import Path

import orjson

from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import read_jsonl, run_cli, write_jsonl

PROMPT = "Review: {{ text }}"
# 100 requests a second, of which the server lets 100 go at once: a small burst,
# far below the 10 s worth sluice assumes for a configured limit, on purpose.
LIMITED = SimulatorConfig(rpm=6000, burst_seconds=1.0)


def _run(sim: BackgroundSimulator, rows: list[dict], tmp_path: Path, *extra: str):
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    args = ["run", source, "-o", str(tmp_path / "out.jsonl"), "-m", "sim-chat", "-p", PROMPT]
    summary = tmp_path / "summary.json"
    result = run_cli([*args, "--base-url", sim.base_url, "--summary", str(summary), *extra])
    return result, orjson.loads(summary.read_bytes()) if summary.exists() else {}


def _items(count: int, text: str = "review") -> list[dict]:
    return [{"id": n, "text": f"{text} {n}"} for n in range(count)]


def test_a_run_at_a_known_limit_sees_no_429(tmp_path: Path) -> None:
    with BackgroundSimulator(LIMITED) as limited:
        result, summary = _run(limited, _items(300), tmp_path, "--rpm", "6000", "-c", "32")
        stats = limited.stats()
    assert result.exit_code == 0, result.output
    assert stats.rate_limited == 0
    assert summary["succeeded"] == 300 and summary["requests"] == 300


def test_with_the_limit_given_the_first_burst_goes_at_once(tmp_path: Path) -> None:
    # Without a limit, one request goes alone until its answer tells the server's limits
    # (the test below); a given limit needs no such round trip: all 16 go together.
    with BackgroundSimulator(SimulatorConfig(latency=0.5)) as server:
        result, _ = _run(server, _items(16), tmp_path, "--rpm", "600", "-c", "16")
        stats = server.stats()
    assert result.exit_code == 0, result.output
    assert stats.max_in_flight == 16


def test_without_a_limit_the_first_request_goes_alone(tmp_path: Path) -> None:
    with BackgroundSimulator(SimulatorConfig(latency=0.5)) as server:
        result, _ = _run(server, _items(16), tmp_path, "-c", "16")
        stats = server.stats()
    assert result.exit_code == 0, result.output
    assert stats.max_in_flight == 15  # the first alone, then the other 15 together


def test_without_limits_the_run_learns_the_servers_limit(tmp_path: Path) -> None:
    with BackgroundSimulator(LIMITED) as limited:
        result, summary = _run(limited, _items(300), tmp_path, "-c", "32")
        stats = limited.stats()
    assert result.exit_code == 0, result.output
    assert summary["traffic"]["rpm"] == 6000
    assert stats.rate_limited <= 0.02 * stats.requests_total
    assert summary["succeeded"] == 300


def test_500s_and_dropped_connections_are_retried_until_every_item_lands(tmp_path: Path) -> None:
    flaky = SimulatorConfig(fail_rate=0.1, drop_rate=0.05, seed=7)
    with BackgroundSimulator(flaky) as server:
        result, summary = _run(server, _items(200), tmp_path, "--retry-backoff", "0.01")
        stats = server.stats()
    assert result.exit_code == 0, result.output
    assert [row["id"] for row in read_jsonl(tmp_path / "out.jsonl")] == list(range(200))
    assert stats.dropped > 0 and stats.responses_by_status[500] > 0
    assert summary["retries"] > 0
    assert summary["requests"] == 200 + summary["retries"] == stats.requests_total


def test_poison_items_are_quarantined_after_exactly_one_attempt(tmp_path: Path) -> None:
    rows = [{"id": n, "text": f"ok {n}"} for n in range(20)]
    for row in rows[::4]:
        row["text"] = f"bad {row['id']} [[sim:400]]"
    with BackgroundSimulator() as server:
        result, summary = _run(server, rows, tmp_path, "--max-error-rate", "1")
        stats = server.stats()
    assert result.exit_code == 0, result.output
    bad = read_jsonl(tmp_path / "out.quarantine.jsonl")
    assert [row["id"] for row in bad] == [0, 4, 8, 12, 16]
    assert all(row["attempts"] == 1 and row["error"]["status"] == 400 for row in bad)
    for row in bad:
        messages = [{"role": "user", "content": f"Review: {row['item']['text']}"}]
        assert stats.times_requested(messages) == 1
    assert summary["requests"] == 20


def test_a_429_does_not_use_up_the_items_attempts(tmp_path: Path) -> None:
    with BackgroundSimulator() as server:
        rows = [{"id": 1, "text": "busy [[sim:429x3]]"}]
        result, summary = _run(server, rows, tmp_path, "--max-retries", "0")
        stats = server.stats()
    assert result.exit_code == 0, result.output
    assert stats.rate_limited == 3
    assert summary["rate_limited_responses"] == 3 and summary["succeeded"] == 1
    assert summary["traffic"]["rate_limit_pauses"] >= 1


def test_a_hung_request_is_cut_at_the_timeout_and_retried(tmp_path: Path) -> None:
    with BackgroundSimulator() as server:
        rows = [{"id": 1, "text": "slow [[sim:hangx1]]"}, {"id": 2, "text": "quick"}]
        result, summary = _run(server, rows, tmp_path, "--timeout", "0.5", "--retry-backoff", "0")
    assert result.exit_code == 0, result.output
    assert summary["traffic"]["timeouts"] == 1
    assert [row["id"] for row in read_jsonl(tmp_path / "out.jsonl")] == [1, 2]


def test_the_same_refusal_for_every_item_is_a_configuration_error(tmp_path: Path) -> None:
    with BackgroundSimulator() as server:
        result, _ = _run(server, _items(30, "[[sim:400]]"), tmp_path)
        stats = server.stats()
    assert result.exit_code == 78, result.output
    assert "check --model" in result.stderr
    assert stats.requests_total < 30
