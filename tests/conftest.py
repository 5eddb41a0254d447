"""Shared fixtures: the project's own simulator on 127.0.0.1, and a CLI runner."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, settings
from typer.testing import CliRunner, Result

from cli.app import app
from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig

# Property tests check properties, not speed: a busy machine (CI, other tests in
# parallel) must not turn slow example generation into a failure.
settings.register_profile("sluice", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("sluice")

# Variables a developer's shell may hold that would change what a test run does.
_CLEAN_ENV = {"OPENAI_API_KEY": None, "OPENAI_BASE_URL": None, "NO_COLOR": "1"}


@pytest.fixture(autouse=True)
def isolated_from_the_developer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No sluice.toml or SLUICE_* variable of the developer's may change what a test does."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("SLUICE_")]:
        monkeypatch.delenv(name)
    # Each test gets its own response cache, never the developer's.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path.with_name(tmp_path.name + "-cache")))
    # ... and its own run history, so one test's runs are never another's baseline.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path.with_name(tmp_path.name + "-state")))


@pytest.fixture(scope="session")
def sim() -> Iterator[BackgroundSimulator]:
    """A fast, faultless simulator shared by tests that only read its answers."""
    with BackgroundSimulator(SimulatorConfig()) as simulator:
        yield simulator


def run_cli(
    args: Sequence[str], env: dict[str, str | None] | None = None, stdin: bytes | None = None
) -> Result:
    runner = CliRunner()
    return runner.invoke(app, list(args), env={**_CLEAN_ENV, **(env or {})}, input=stdin)


def write_jsonl(path: Path, rows: Sequence[object]) -> str:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return str(path)


def read_jsonl(path: Path | str) -> list[dict]:
    return [orjson.loads(line) for line in Path(path).read_bytes().splitlines() if line.strip()]
