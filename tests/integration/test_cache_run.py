"""The response cache in real runs: identical requests sent once, hits skip the wire."""

from __future__ import annotations

from pathlib import Path

from pipeline.cache.keys import cache_key
from pipeline.cache.store import ResponseCache
from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import read_jsonl, run_cli, write_jsonl


def _run(sim: BackgroundSimulator, source: str, out: Path, *extra: str):
    args = ["run", source, "-o", str(out), "-m", "sim-chat", "-p", "Say: {{ text }}"]
    return run_cli([*args, "--base-url", sim.base_url, *extra])


def test_identical_items_are_sent_once_and_share_the_answer(tmp_path: Path) -> None:
    rows = [{"id": n, "text": "the same words"} for n in range(20)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    with BackgroundSimulator(SimulatorConfig(latency=0.05)) as sim:
        result = _run(sim, source, tmp_path / "out.jsonl", "-c", "8", "--batch-size", "3")
        assert sim.stats().requests_total == 1
    assert result.exit_code == 0, result.output
    out = read_jsonl(tmp_path / "out.jsonl")
    assert [row["id"] for row in out] == list(range(20))
    assert len({row["output"] for row in out}) == 1
    assert sum(not row["cached"] for row in out) == 1


def test_without_the_cache_every_item_is_sent(tmp_path: Path) -> None:
    rows = [{"id": n, "text": "the same words"} for n in range(6)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    with BackgroundSimulator(SimulatorConfig()) as sim:
        assert _run(sim, source, tmp_path / "out.jsonl", "--no-cache").exit_code == 0
        assert _run(sim, source, tmp_path / "out.jsonl", "--no-cache").exit_code == 0
        assert sim.stats().requests_total == 12
    assert not any(row["cached"] for row in read_jsonl(tmp_path / "out.jsonl"))


def test_refresh_asks_again_and_a_changed_option_never_hits(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": n, "text": f"t{n}"} for n in range(5)])
    out = tmp_path / "out.jsonl"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        assert _run(sim, source, out).exit_code == 0
        assert _run(sim, source, out).exit_code == 0
        assert sim.stats().requests_total == 5  # the second run came from the cache
        assert _run(sim, source, out, "--refresh-cache").exit_code == 0
        assert sim.stats().requests_total == 10
        assert _run(sim, source, out, "-O", "seed=7").exit_code == 0
        assert sim.stats().requests_total == 15  # another body, another key
    assert not any(row["cached"] for row in read_jsonl(out))


def test_an_unusable_cache_directory_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache should be")
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "a"}])
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, tmp_path / "out.jsonl", "--cache-dir", str(blocked))
    assert result.exit_code == 0, result.output
    assert "warning: cannot open the response cache" in result.stderr
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 1


def test_an_item_whose_stored_answer_is_damaged_is_sent_again_and_answered(
    tmp_path: Path,
) -> None:
    # A hit's request body is built only if its stored answer cannot be reused: the body
    # then built must be the one the answer was stored under, or it would miss forever.
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": n, "text": f"t{n}"} for n in range(6)])
    out, cache_dir = tmp_path / "out.jsonl", tmp_path / "cache"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        assert _run(sim, source, out, "--cache-dir", str(cache_dir)).exit_code == 0
        first = read_jsonl(out)
        with ResponseCache(str(cache_dir), None, None) as cache:
            for n in (1, 4):
                body = {
                    "model": "sim-chat",
                    "messages": [{"role": "user", "content": f"Say: t{n}"}],
                }
                key = cache_key(sim.base_url, "/chat/completions", body)
                assert cache.get(key) is not None  # the answer the first run stored
                assert cache.put(key, b'{"choices": "damaged"')
        result = _run(sim, source, out, "--cache-dir", str(cache_dir))
        assert result.exit_code == 0, result.output
        assert sim.stats().requests_total == 8
        resent = [not row["cached"] for row in read_jsonl(out)]
        assert resent == [False, True, False, False, True, False]
        third = _run(sim, source, out, "--cache-dir", str(cache_dir))
        assert third.exit_code == 0 and sim.stats().requests_total == 8  # stored anew
    again = read_jsonl(out)
    assert [row["output"] for row in again] == [row["output"] for row in first]
    assert all(row["cached"] for row in again)
