"""Durable runs on real processes: killed, stopped, locked out and resumed.

Each test drives `python -m cli run` as a subprocess against the simulator on
127.0.0.1, and checks the outputs with the same code as `sluice verify`.
"""

from __future__ import annotations

import gzip
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from pipeline.run.verify import verify
from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from pipeline.state.parts import committed_headers
from tests.conftest import read_jsonl, write_jsonl

STATE = ".out.jsonl.sluice"


def _items(count: int) -> list[dict]:
    return [{"id": f"item-{n:05d}", "text": f"distinct text {n}"} for n in range(count)]


def _command(source: str, out: Path, base_url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cli",
        "run",
        source,
        "-o",
        str(out),
        "-m",
        "sim-chat",
        "-p",
        "Summarise: {{ text }}",
        "--base-url",
        base_url,
        "--retry-backoff",
        "0",
        "-q",
        *extra,
    ]


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPENAI_API_KEY": ""}
    return subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)


def _finish(command: list[str]) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "OPENAI_API_KEY": ""}
    return subprocess.run(command, capture_output=True, env=env, timeout=120, check=False)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _wait_until_sent(
    sim: BackgroundSimulator, process: subprocess.Popen[bytes], total: int
) -> None:
    """Until the simulator has seen `total` requests, or the run ended by itself."""
    _wait_for(lambda: sim.stats().requests_total >= total or process.poll() is not None, "requests")


def _committed_batches(directory: Path) -> int:
    parts = directory / STATE / "parts"
    return sum(1 for _ in committed_headers(str(parts))) if parts.is_dir() else 0


def _assert_partition(source: str, directory: Path, count: int) -> list[dict]:
    report = verify(
        [source], [str(directory / "out.jsonl")], [str(directory / "out.quarantine.jsonl")]
    )
    assert report.ok, "\n".join(report.lines())
    rows = read_jsonl(directory / "out.jsonl")
    assert [row["id"] for row in rows] == [f"item-{n:05d}" for n in range(count)]
    return rows


def _paid_twice(simulator: BackgroundSimulator) -> int:
    return sum(n - 1 for n in simulator.stats().requests_by_digest.values() if n > 1)


def test_sigkill_at_random_moments_then_resume_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    count, concurrency, kills = 600, 8, 6
    source = write_jsonl(tmp_path / "in.jsonl", _items(count))
    rng = random.Random(2026)
    with BackgroundSimulator(SimulatorConfig(latency=0.01, jitter=0.01, seed=5)) as sim:
        command = _command(
            source,
            tmp_path / "out.jsonl",
            sim.base_url,
            "-c",
            str(concurrency),
            "--batch-size",
            "9",
        )
        for _ in range(kills):
            before = sim.stats().requests_total
            process = _start(command)
            # Kill once this process has sent a random number of requests: anywhere from
            # before its first commit to well into the run.
            target = before + rng.randint(1, 70)
            _wait_until_sent(sim, process, target)
            process.kill()
            process.wait(timeout=30)
            assert not (tmp_path / "out.jsonl").exists()
        result = _finish(command)
        assert result.returncode == 0, result.stderr.decode()
        rows = _assert_partition(source, tmp_path, count)
        # Every answer is cached on arrival, so only requests on the wire at a kill are paid again.
        assert _paid_twice(sim) <= kills * concurrency
        assert sum(sim.stats().requests_by_digest.values()) >= count
    assert all(row["output"] for row in rows)
    assert not (tmp_path / STATE).exists()
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".partial")]


def test_sigterm_lets_requests_in_flight_finish_commits_and_resumes_without_paying_twice(
    tmp_path: Path,
) -> None:
    count = 120
    source = write_jsonl(tmp_path / "in.jsonl", _items(count))
    with BackgroundSimulator(SimulatorConfig(latency=0.3)) as sim:
        command = _command(
            source, tmp_path / "out.jsonl", sim.base_url, "-c", "8", "--batch-size", "4"
        )
        process = _start(command)
        _wait_for(lambda: _committed_batches(tmp_path) >= 2, "a first commit")
        process.send_signal(signal.SIGTERM)
        stderr = process.communicate(timeout=30)[1].decode()
        assert process.returncode == 143, stderr
        assert "run the same command again to resume" in stderr
        seen = sim.stats()
        # Nothing was cut off: every request that went out got its answer.
        assert seen.responses_by_status[200] == seen.requests_total
        assert _committed_batches(tmp_path) >= 2
        result = _finish(command)
        assert result.returncode == 0, result.stderr.decode()
        _assert_partition(source, tmp_path, count)
        # The answers that landed during the grace period came from the cache.
        assert _paid_twice(sim) == 0
        assert sim.stats().requests_total == count


def test_a_second_signal_stops_at_once_and_still_leaves_a_resumable_state(tmp_path: Path) -> None:
    count = 48
    source = write_jsonl(tmp_path / "in.jsonl", _items(count))
    with BackgroundSimulator(SimulatorConfig(latency=0.5)) as sim:
        command = _command(
            source, tmp_path / "out.jsonl", sim.base_url, "-c", "8", "--batch-size", "4"
        )
        process = _start(command)
        _wait_for(lambda: sim.stats().requests_total >= 16, "requests in flight")
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGINT)
        stderr = process.communicate(timeout=30)[1].decode()
        assert process.returncode == 130, stderr
        assert "Traceback" not in stderr
        assert not (tmp_path / "out.jsonl").exists()
        result = _finish(command)
    assert result.returncode == 0, result.stderr.decode()
    _assert_partition(source, tmp_path, count)


def test_a_second_run_on_the_same_state_is_turned_away_with_the_holders_pid(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _items(200))
    with BackgroundSimulator(SimulatorConfig(latency=0.2)) as sim:
        command = _command(source, tmp_path / "out.jsonl", sim.base_url, "-c", "4")
        first = _start(command)
        try:
            _wait_for(lambda: sim.stats().requests_total >= 4, "the first run to start")
            lock = tmp_path / STATE / "lock"
            holder_before = lock.read_bytes()
            second = _finish(command)
            assert second.returncode == 75
            message = second.stderr.decode()
            assert f"pid {first.pid}" in message and "started" in message
            assert lock.read_bytes() == holder_before
            assert orjson.loads(holder_before)["pid"] == first.pid
        finally:
            first.kill()
            first.wait(timeout=30)


def _stop_after_a_commit(command: list[str], directory: Path, batches: int = 1) -> None:
    process = _start(command)
    _wait_for(lambda: _committed_batches(directory) >= batches, "commits")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 143


def test_a_changed_template_is_refused_until_fresh(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _items(100))
    with BackgroundSimulator(SimulatorConfig(latency=0.2)) as sim:
        command = _command(
            source, tmp_path / "out.jsonl", sim.base_url, "-c", "4", "--batch-size", "4"
        )
        _stop_after_a_commit(command, tmp_path)
        changed = list(command)
        changed[changed.index("-p") + 1] = "Translate: {{ text }}"
        refused = _finish(changed)
        assert refused.returncode == 78
        assert "prompt template" in refused.stderr.decode()
        assert "--fresh" in refused.stderr.decode()
        assert _committed_batches(tmp_path) >= 1
        fresh = _finish([*changed, "--fresh"])
    assert fresh.returncode == 0, fresh.stderr.decode()
    rows = _assert_partition(source, tmp_path, 100)
    assert all(row["output"] for row in rows)


def test_an_input_changed_in_the_middle_is_refused_on_resume(tmp_path: Path) -> None:
    # Large enough that the change lies outside the sampled first and last 64 KiB.
    items = [{**item, "padding": "x" * 2000} for item in _items(100)]
    source = write_jsonl(tmp_path / "in.jsonl", items)
    with BackgroundSimulator(SimulatorConfig(latency=0.2)) as sim:
        command = _command(
            source, tmp_path / "out.jsonl", sim.base_url, "-c", "4", "--batch-size", "4"
        )
        _stop_after_a_commit(command, tmp_path, batches=13)
        # Same size, same first and last bytes: only the committed batches' digests can tell.
        items[50]["text"] = items[50]["text"].replace("5", "X")
        write_jsonl(tmp_path / "in.jsonl", items)
        refused = _finish(command)
    assert refused.returncode == 78, refused.stderr.decode()
    assert "input changed" in refused.stderr.decode()
    assert "batch 12" in refused.stderr.decode()


def test_rerunning_a_finished_job_makes_no_request(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _items(50))
    with BackgroundSimulator(SimulatorConfig()) as sim:
        command = _command(source, tmp_path / "out.jsonl", sim.base_url, "--batch-size", "8")
        assert _finish(command).returncode == 0
        first = read_jsonl(tmp_path / "out.jsonl")
        requests = sim.stats().requests_total
        again = _finish(command)
        assert again.returncode == 0, again.stderr.decode()
        assert sim.stats().requests_total == requests == 50
    second = read_jsonl(tmp_path / "out.jsonl")
    assert [row["output"] for row in second] == [row["output"] for row in first]
    assert all(row["cached"] for row in second) and not any(row["cached"] for row in first)


@pytest.mark.parametrize("suffix", ["parquet", "jsonl.gz"])
def test_a_stopped_run_resumes_into_parquet_and_gzip(tmp_path: Path, suffix: str) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _items(60))
    out = tmp_path / f"out.{suffix}"
    with BackgroundSimulator(SimulatorConfig(latency=0.2)) as sim:
        command = _command(source, out, sim.base_url, "-c", "4", "--batch-size", "4")
        process = _start(command)
        _wait_for(
            lambda: (tmp_path / f".out.{suffix}.sluice" / "parts" / "000000000.part").exists(),
            "a commit",
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 143
        assert _finish(command).returncode == 0
    if suffix == "parquet":
        ids = pq.read_table(out).column("id").to_pylist()
    else:
        ids = [orjson.loads(line)["id"] for line in gzip.decompress(out.read_bytes()).splitlines()]
    assert ids == [f"item-{n:05d}" for n in range(60)]
