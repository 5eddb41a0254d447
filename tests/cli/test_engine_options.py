"""`--engine`, `--ray-address` and `--ray-workers` refused when they cannot hold, before
anything is read or sent: one line and the documented exit code. (The Ray engine at
work is in tests/ray/.)"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.engines.ray_engine import cluster_endpoint
from pipeline.simulator.background import BackgroundSimulator
from tests.conftest import run_cli, write_jsonl


def _run(source: str, out: Path, base_url: str, *extra: str) -> list[str]:
    return [
        "run", source, "-o", str(out), "-m", "sim-chat", "-p", "{{ text }}",
        "--base-url", base_url, *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--engine", "spark"], "--engine is asyncio or ray"),
        (["--ray-workers", "2"], "--ray-workers goes with --engine ray"),
        (["--engine", "ray", "--max-cost", "1"], "--max-cost and --max-requests"),
        (["--engine", "ray", "--max-requests", "10"], "--max-cost and --max-requests"),
    ],
)
def test_an_engine_option_that_cannot_hold_is_a_usage_error(
    sim: BackgroundSimulator, tmp_path: Path, flags: list[str], said: str
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "a"}])
    sent_before = sim.stats().requests_total
    result = run_cli(_run(source, tmp_path / "out.jsonl", sim.base_url, *flags))
    assert result.exit_code == 2, result.output
    assert said in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert sim.stats().requests_total == sent_before
    assert not (tmp_path / "out.jsonl").exists()


def test_the_ray_engine_without_ray_installed_says_how_to_get_it(
    sim: BackgroundSimulator, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "a"}])
    # A Python in which `import ray` finds nothing, whether or not the extra is installed.
    without_ray = (
        "import sys; sys.modules['ray'] = None; sys.argv[0] = 'sluice'; "
        "from cli.app import main; main()"
    )
    args = _run(source, tmp_path / "out.jsonl", sim.base_url, "--engine", "ray")
    finished = subprocess.run(
        [sys.executable, "-c", without_ray, *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "", "HOME": str(tmp_path)},
        check=False,
    )
    assert finished.returncode == 78, finished.stderr
    assert "pip install 'sluice[ray]'" in finished.stderr
    assert "Traceback" not in finished.stderr
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize(
    ("address", "endpoint"),
    [
        ("10.0.0.5:6379", ("10.0.0.5", 6379)),
        ("ray://head.example:10001", ("head.example", 10001)),
        ("[::1]:6379", ("::1", 6379)),
        ("auto", None),
        ("local", None),
        ("head-without-port", None),
    ],
)
def test_the_cluster_address_names_what_is_checked_before_ray_is_asked(
    address: str, endpoint: tuple[str, int] | None
) -> None:
    assert cluster_endpoint(address) == endpoint


def test_a_ray_address_where_nothing_answers_fails_at_once_in_one_line(
    sim: BackgroundSimulator, tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    with socket.socket() as closed:  # a port of this machine that nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "a"}])
    flags = ["--engine", "ray", "--ray-address", f"127.0.0.1:{port}"]
    result = run_cli(_run(source, tmp_path / "out.jsonl", sim.base_url, *flags))
    assert result.exit_code == 69, result.output
    assert "nothing answers at --ray-address" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.jsonl").exists()
