"""Damaged committed state on real processes: found before any request, redone, never output.

A run is stopped (SIGTERM) once it has committed two part files; the state is
then damaged the way a disk, a stray editor or a careless `cp` would, and the
same command is run again without the cache, so the simulator's counts show
exactly which items were sent again: those of the damaged part and after it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.run.verify import verify
from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import read_jsonl, write_jsonl

COUNT, BATCH = 60, 2
PROMPT = "Summarise: {{ text }}"


def _items() -> list[dict]:
    return [{"id": f"item-{n:03d}", "text": f"distinct text {n}"} for n in range(COUNT)]


def _command(source: str, out: Path, base_url: str, *extra: str) -> list[str]:
    return [
        *(sys.executable, "-m", "cli", "run", source, "-o", str(out), "-m", "sim-chat"),
        *("-p", PROMPT, "--base-url", base_url, "--batch-size", str(BATCH), *extra),
    ]


def _run(command: list[str]) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "OPENAI_API_KEY": ""}
    return subprocess.run(command, capture_output=True, env=env, timeout=120, check=False)


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _part_files(state: Path) -> list[Path]:
    parts = state / "parts"
    return sorted(parts.glob("*.part")) if parts.is_dir() else []


def _stop_after_two_parts(command: list[str], state: Path) -> None:
    env = {**os.environ, "OPENAI_API_KEY": ""}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    _wait_for(lambda: len(_part_files(state)) >= 2 or process.poll() is not None, "two commits")
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=60)[1].decode()
    assert process.returncode == 143, stderr


def _flip_a_byte(part: Path) -> None:
    content = bytearray(part.read_bytes())
    content[len(content) // 2] ^= 0x01  # same length, one bit different
    part.write_bytes(bytes(content))


def _cut_short(part: Path) -> None:
    part.write_bytes(part.read_bytes()[:-3])


def _first_batch(part: Path) -> int:
    return int(part.name.removesuffix(".part"))


def _damage(kind: str, state: Path) -> int:
    """Damage the state; the first batch that must be redone."""
    second = _part_files(state)[1]
    if kind == "flipped byte":
        _flip_a_byte(second)
    elif kind == "cut short":
        _cut_short(second)
    else:
        for part in _part_files(state):
            part.unlink()
        (state / "parts").rmdir()
        (state / "parts").write_text("not a directory\n")
        return 0
    return _first_batch(second)


def _requested(sim: BackgroundSimulator) -> dict[str, int]:
    """How many times each item's text was asked for, by item id."""
    stats = sim.stats()
    return {
        item["id"]: stats.times_requested(
            [{"role": "user", "content": PROMPT.replace("{{ text }}", item["text"])}]
        )
        for item in _items()
    }


def _without_cached(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "cached"} for row in rows]


@pytest.mark.parametrize("kind", ["flipped byte", "cut short", "parts is a file"])
def test_damaged_state_is_redone_before_any_request_and_never_output(
    tmp_path: Path, kind: str
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _items())
    out, state = tmp_path / "out.jsonl", tmp_path / ".out.jsonl.sluice"
    with BackgroundSimulator(SimulatorConfig(latency=0.2)) as sim:
        _stop_after_two_parts(_command(source, out, sim.base_url, "-c", "2"), state)
        redo_from = _damage(kind, state)
        before = _requested(sim)

        again = _run(_command(source, out, sim.base_url, "-c", "16", "--no-cache"))
        assert again.returncode == 0, again.stderr.decode()
        assert "is damaged" in again.stderr.decode()
        sent_again = {
            item_id for item_id, times in _requested(sim).items() if times > before[item_id]
        }
        # Only the damaged part's batches and those after it went out again.
        assert sent_again == {item["id"] for item in _items()[redo_from * BATCH :]}

        clean = _run(_command(source, tmp_path / "clean.jsonl", sim.base_url, "--no-state"))
        assert clean.returncode == 0, clean.stderr.decode()

    report = verify([source], [str(out)], [str(tmp_path / "out.quarantine.jsonl")])
    assert report.ok, "\n".join(report.lines())
    assert _without_cached(read_jsonl(out)) == _without_cached(read_jsonl(tmp_path / "clean.jsonl"))
    assert not state.exists()
