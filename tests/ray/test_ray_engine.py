"""`--engine ray` on a local Ray instance of 2 CPUs, bound to 127.0.0.1, against the
simulator: every item exactly once, with outputs the local engine would write; a
worker killed mid-run is replaced; a driver killed mid-run is resumed by a re-run;
a rate-limited account sees no 429 storm; and no Ray process outlives a run.

Each sluice runs in a session of its own, so that what Ray starts for it can be
found (and, after a SIGKILL of the driver, cleared) by that session."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import read_jsonl, write_jsonl

pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

ITEMS = 2_000
BATCH = 50
PER_WORKER = 8  # --concurrency: requests in flight for each worker
HELD_BY_A_WORKER = 4 * BATCH  # batches a worker holds at once (BATCHES_PER_WORKER)


def _inputs(tmp_path: Path, items: int = ITEMS) -> str:
    rows = [{"id": n, "text": f"review number {n}"} for n in range(items)]
    return write_jsonl(tmp_path / "in.jsonl", rows)


def _command(source: str, out: Path, base_url: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "cli", "run", source, "-o", str(out), "-m", "sim-chat",
        "-p", "Label: {{ text }}", "--base-url", base_url, "-c", str(PER_WORKER),
        "--batch-size", str(BATCH), "-q", *extra,
    ]  # fmt: skip


def _ray_command(source: str, out: Path, base_url: str, *extra: str) -> list[str]:
    return _command(source, out, base_url, "--engine", "ray", "--ray-workers", "2", *extra)


def _environment() -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": ""}  # the test's own cache (conftest.py)


def _in_session(session: int) -> list[int]:
    """Processes of a session (Ray's workers leave the driver's process group, not its
    session)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[3]) == session:
            found.append(int(entry))
    return found


def _gone(session: int, within: float = 30.0) -> bool:
    """Whether every process of the session ends within `within` seconds."""
    deadline = time.monotonic() + within
    while _in_session(session):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@contextlib.contextmanager
def _sluice(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        yield process
    finally:
        for pid in _in_session(process.pid):  # only what a killed driver left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.communicate()


def _finish(process: subprocess.Popen[bytes], timeout: float = 240) -> str:
    _, stderr = process.communicate(timeout=timeout)
    return stderr.decode()


def _wait_for(condition: Callable[[], bool], what: str, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.05)


def _workers(session: int) -> list[int]:
    named = []
    for pid in _in_session(session):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::SluiceWorker"):
                named.append(pid)
    return named


def _verify(source: str, out: Path) -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "cli", "verify", source, "-r", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_item_once_with_the_outputs_of_the_local_engine(tmp_path: Path) -> None:
    source, env = _inputs(tmp_path), _environment()
    with BackgroundSimulator(SimulatorConfig(latency=0.01)) as sim:
        out = tmp_path / "ray.jsonl"
        with _sluice(_ray_command(source, out, sim.base_url, "--no-cache"), env) as process:
            stderr = _finish(process)
            assert process.returncode == 0, stderr
            assert _gone(process.pid), "a Ray process outlived the run"
        assert sim.stats().requests_total == ITEMS
        local = tmp_path / "local.jsonl"
        with _sluice(_command(source, local, sim.base_url, "--no-cache"), env) as process:
            stderr = _finish(process)
            assert process.returncode == 0, stderr
    _verify(source, out)
    by_ray, by_local = read_jsonl(out), read_jsonl(local)
    assert [(r["id"], r["output"]) for r in by_ray] == [(r["id"], r["output"]) for r in by_local]


def test_a_worker_killed_mid_run_is_replaced_and_nothing_is_lost(tmp_path: Path) -> None:
    source, env = _inputs(tmp_path), _environment()
    with BackgroundSimulator(SimulatorConfig(latency=0.05)) as sim:
        out = tmp_path / "out.jsonl"
        with _sluice(_ray_command(source, out, sim.base_url), env) as process:
            _wait_for(lambda: sim.stats().requests_total >= 300, "300 requests")
            workers = _workers(process.pid)
            assert len(workers) == 2
            os.kill(workers[0], signal.SIGKILL)
            stderr = _finish(process)
            assert process.returncode == 0, stderr
            assert _gone(process.pid), "a Ray process outlived the run"
        sent = sim.stats().requests_total
    _verify(source, out)
    # The dead worker's batches were sent again: at most what it held is paid twice.
    assert ITEMS <= sent <= ITEMS + HELD_BY_A_WORKER


def test_a_driver_killed_mid_run_resumes_on_the_next_run(tmp_path: Path) -> None:
    source, env = _inputs(tmp_path), _environment()
    out = tmp_path / "out.jsonl"
    state = tmp_path / ".out.jsonl.sluice"
    with BackgroundSimulator(SimulatorConfig(latency=0.05)) as sim:
        command = _ray_command(source, out, sim.base_url)
        with _sluice(command, env) as process:
            parts = state / "parts"
            _wait_for(lambda: parts.is_dir() and len(list(parts.iterdir())) >= 4, "4 parts")
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        # What the killed driver's Ray left behind was cleared with its session.
        assert _gone(process.pid, within=10)
        first = sim.stats().requests_total
        assert first < ITEMS
        with _sluice(command, env) as process:
            stderr = _finish(process)
            assert process.returncode == 0, stderr
            assert _gone(process.pid), "a Ray process outlived the run"
        sent = sim.stats().requests_total
    _verify(source, out)
    # Answers that had landed come from the cache; at most what was on the wire and
    # not yet stored is paid twice.
    assert sent <= ITEMS + 2 * HELD_BY_A_WORKER


def _files_holding(directory: Path, secret: bytes) -> list[Path]:
    return [
        path
        for path in directory.rglob("*")
        if path.is_file() and not path.is_symlink() and secret in path.read_bytes()
    ]


def test_a_rate_limited_account_sees_no_429_storm(tmp_path: Path) -> None:
    items, rpm = 600, 3000
    source = _inputs(tmp_path, items)
    key = "sk-canary-0b7c1e9d"  # the simulator asks for none; it must appear nowhere
    env = {**_environment(), "OPENAI_API_KEY": key}
    limits = SimulatorConfig(rpm=rpm, burst_seconds=1.0, latency=0.01)
    with BackgroundSimulator(limits) as sim:
        out = tmp_path / "out.jsonl"
        command = _ray_command(source, out, sim.base_url, "--no-cache", "-c", "16")
        with _sluice(command, env) as process:
            stderr = _finish(process)
            assert process.returncode == 0, stderr
        stats = sim.stats()
    _verify(source, out)
    assert stats.requests_total - stats.rate_limited == items
    assert stats.rate_limited <= items // 100  # under 1%
    # Workers read the key from their environment: it never went through Ray.
    assert _files_holding(Path("/tmp/ray/session_latest"), key.encode()) == []
    assert _files_holding(tmp_path, key.encode()) == []
