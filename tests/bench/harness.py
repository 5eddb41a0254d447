"""Shared pieces of the benchmarks: the simulator in its own process, inputs, measuring."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

BIN = Path(sys.executable).parent
LISTENING = re.compile(r"serving an OpenAI-compatible API at (\S+)")
START_TIMEOUT_SECONDS = 15.0
PROMPT = "Review: {{ text }}"


@contextlib.contextmanager
def simulator(*flags: str) -> Iterator[str]:
    """`sluice sim` in its own process (so its CPU is not the client's); yields the base URL."""
    process = subprocess.Popen(
        [str(BIN / "sluice"), "sim", "--port", "0", *flags],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield _announced_url(process)
    finally:
        process.terminate()
        process.wait(timeout=10)


def simulator_stats(base_url: str) -> Any:
    """What the simulator at `base_url` has seen (`GET /sim/stats`)."""
    root = base_url.removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/sim/stats", timeout=10) as answer:  # loopback only
        return orjson.loads(answer.read())


def _announced_url(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline and (line := process.stderr.readline()):
        if match := LISTENING.search(line):
            return match.group(1)
    process.kill()
    raise RuntimeError("sluice sim did not announce its address")


def write_reviews(path: Path, count: int) -> Path:
    """Review-sized items, written in chunks so making the input costs no memory either."""
    with path.open("wb") as handle:
        for start in range(0, count, 10_000):
            handle.write(
                b"".join(
                    orjson.dumps(
                        {"id": f"r-{n:08d}", "text": f"Review {n}: arrived late, works fine."}
                    )
                    + b"\n"
                    for n in range(start, min(count, start + 10_000))
                )
            )
    return path


@dataclass(frozen=True)
class Measured:
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    exit_code: int


def measure(command: list[str]) -> Measured:
    """Wall time, CPU time and peak RSS of one child process (and only that child)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise RuntimeError(f"{command[:3]} exited {process.returncode}: {stderr[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(wall, cpu, usage.ru_maxrss / 1024, process.returncode)


def sluice_run(base_url: str, source: Path, output: Path, concurrency: int) -> list[str]:
    """Default settings (checkpoints and cache on), with an empty cache of its own:
    never the user's, and never answers a previous measurement stored."""
    cache = tempfile.mkdtemp(prefix="cache-", dir=output.parent)
    return [
        str(BIN / "sluice"), "run", str(source), "-o", str(output), "-m", "sim-chat",
        "-p", PROMPT, "-c", str(concurrency), "--base-url", base_url, "-q",
        "--cache-dir", cache,
    ]  # fmt: skip
