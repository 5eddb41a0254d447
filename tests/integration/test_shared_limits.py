"""Several sluice processes on one account, sharing its limits through --shared-limits,
against a rate-limited simulator: together they keep under the limit, and a process
killed in the middle leaves nothing that holds the others back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import read_jsonl, write_jsonl

RPM = 3000  # 50 requests a second
BURST_SECONDS = 1.0  # the simulator's bucket holds one second's worth


def _command(source: str, out: Path, base_url: str, limits: Path) -> list[str]:
    return [
        sys.executable, "-m", "cli", "run", source, "-o", str(out), "-m", "sim-chat",
        "-p", "Label: {{ text }}", "--base-url", base_url, "--shared-limits", str(limits),
        "-c", "16", "--no-cache", "-q",
    ]  # fmt: skip


def _inputs(tmp_path: Path, processes: int, items: int) -> list[str]:
    return [
        write_jsonl(
            tmp_path / f"in{p}.jsonl",
            [{"id": n, "text": f"process {p} item {n}"} for n in range(items)],
        )
        for p in range(processes)
    ]


def _run_together(tmp_path: Path, processes: int, items: int) -> tuple[float, int, int]:
    """Wall seconds for all, requests the simulator accepted, and its 429s."""
    limits = tmp_path / "limits.sqlite"
    env = {**os.environ, "OPENAI_API_KEY": ""}
    with BackgroundSimulator(
        SimulatorConfig(rpm=RPM, burst_seconds=BURST_SECONDS, latency=0.01)
    ) as sim:
        commands = [
            _command(source, tmp_path / f"out{p}.jsonl", sim.base_url, limits)
            for p, source in enumerate(_inputs(tmp_path, processes, items))
        ]
        started = time.monotonic()
        running = [subprocess.Popen(c, env=env, stderr=subprocess.PIPE) for c in commands]
        for process in running:
            _, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stderr.decode()
        wall = time.monotonic() - started
        stats = sim.stats()
    for p in range(processes):
        assert len(read_jsonl(tmp_path / f"out{p}.jsonl")) == items
    return wall, stats.requests_total - stats.rate_limited, stats.rate_limited


def test_two_processes_sharing_limits_stay_under_the_account_limit(tmp_path: Path) -> None:
    wall, answered, rate_limited = _run_together(tmp_path, processes=2, items=150)
    assert answered == 300
    assert rate_limited <= 3  # under 1%
    # Together they never ran faster than the account allows (its first burst aside),
    # which two processes each owning the limit would.
    rate = RPM / 60
    assert wall >= 0.9 * (300 - rate * BURST_SECONDS) / rate


def test_three_processes_sharing_limits_stay_under_the_account_limit(tmp_path: Path) -> None:
    _, answered, rate_limited = _run_together(tmp_path, processes=3, items=100)
    assert answered == 300
    assert rate_limited <= 3


def test_a_process_killed_while_waiting_holds_back_no_one(tmp_path: Path) -> None:
    limits = tmp_path / "limits.sqlite"
    env = {**os.environ, "OPENAI_API_KEY": ""}
    first, second = _inputs(tmp_path, 2, 120)
    with BackgroundSimulator(
        SimulatorConfig(rpm=RPM, burst_seconds=BURST_SECONDS, latency=0.01)
    ) as sim:
        doomed = subprocess.Popen(
            _command(first, tmp_path / "doomed.jsonl", sim.base_url, limits),
            env=env,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while sim.stats().requests_total < 30:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        doomed.kill()
        doomed.wait(timeout=30)
        survivor = subprocess.run(
            _command(second, tmp_path / "survivor.jsonl", sim.base_url, limits),
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert survivor.returncode == 0, survivor.stderr.decode()
    assert len(read_jsonl(tmp_path / "survivor.jsonl")) == 120
