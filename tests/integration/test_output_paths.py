"""Outputs on real processes: distinct files however spelled, special files, umask, refusals.

Each test runs `python -m cli run` against the simulator on 127.0.0.1 and looks
at the files it left, as a careful operator would.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import read_jsonl, write_jsonl


def _sluice(base_url: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cli",
        "run",
        *args,
        "-m",
        "sim-chat",
        "-p",
        "{{ text }}",
        "--base-url",
        base_url,
        "--retry-backoff",
        "0",
    ]


def _run(
    command: list[str], cwd: Path, umask: int | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "OPENAI_API_KEY": "", "XDG_CACHE_HOME": str(cwd / ".cache")}
    preexec: Callable[[], object] | None = None
    if umask is not None:
        mask = umask
        preexec = lambda: os.umask(mask)  # noqa: E731 - runs in the child before exec
    return subprocess.run(
        command, cwd=cwd, capture_output=True, env=env, timeout=120, preexec_fn=preexec
    )


def _items(count: int) -> list[dict]:
    return [{"id": f"i{n}", "text": f"text {n}"} for n in range(count)]


def _refused(result: subprocess.CompletedProcess[bytes], *words: str) -> None:
    message = result.stderr.decode()
    assert result.returncode == 2, message
    assert "Traceback" not in message and len(message.strip().splitlines()) == 1
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["-o", "out.jsonl", "--summary", "out.jsonl"], ["--output", "--summary"]),
        (["-o", "out.jsonl", "--quarantine", "./out.jsonl"], ["--output", "--quarantine"]),
        (["-o", "out.jsonl", "--quarantine", "sub/../out.jsonl"], ["--output", "--quarantine"]),
        (["-o", "out.jsonl", "--summary", "link.jsonl"], ["--output", "--summary"]),
        (["-o", "out.jsonl", "--state-dir", "out.jsonl"], ["--output", "--state-dir"]),
    ],
)
def test_two_outputs_naming_one_file_are_refused_naming_both_flags(
    sim, tmp_path: Path, flags: list[str], named: list[str]
) -> None:
    write_jsonl(tmp_path / "in.jsonl", _items(3))
    (tmp_path / "sub").mkdir()
    (tmp_path / "out.jsonl").write_text("earlier results\n")
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "out.jsonl")
    result = _run(_sluice(sim.base_url, "in.jsonl", *flags), tmp_path)
    _refused(result, *named)
    assert (tmp_path / "out.jsonl").read_text() == "earlier results\n"


@pytest.mark.parametrize("spelling", ["./in.jsonl", "ABSOLUTE", "symlink.jsonl", "hardlink.jsonl"])
@pytest.mark.parametrize("flag", ["-o", "--quarantine", "--summary"])
def test_an_output_that_is_an_input_however_spelled_is_refused(
    sim, tmp_path: Path, spelling: str, flag: str
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _items(3))
    original = Path(source).read_bytes()
    (tmp_path / "symlink.jsonl").symlink_to(source)
    os.link(source, tmp_path / "hardlink.jsonl")
    target = source if spelling == "ABSOLUTE" else spelling
    others = {"-o": "out.jsonl", "--quarantine": "q.jsonl", "--summary": "s.json"}
    others[flag] = target
    args = [arg for pair in others.items() for arg in pair]
    result = _run(_sluice(sim.base_url, "in.jsonl", *args), tmp_path)
    _refused(result, "also an input")
    assert Path(source).read_bytes() == original


def test_both_rows_and_failures_to_standard_output_is_refused(sim, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", _items(2))
    result = _run(
        _sluice(sim.base_url, "in.jsonl", "-o", "-", "--quarantine", "/dev/stdout"), tmp_path
    )
    _refused(result, "--output", "--quarantine")


def test_results_on_stdout_need_a_quarantine_named_instead_of_one_in_the_working_directory(
    sim, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "in.jsonl", _items(2))
    result = _run(_sluice(sim.base_url, "in.jsonl", "-o", "-"), tmp_path)
    _refused(result, "--quarantine")
    assert not (tmp_path / "sluice.quarantine.jsonl").exists()


def test_a_summary_to_dash_or_dev_stdout_goes_to_standard_output(sim, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", _items(4))
    was_link = os.path.islink("/dev/stdout")
    for spelling in ("-", "/dev/stdout"):
        result = _run(
            _sluice(sim.base_url, "in.jsonl", "-o", "out.jsonl", "--summary", spelling, "-q"),
            tmp_path,
        )
        assert result.returncode == 0, result.stderr.decode()
        assert orjson.loads(result.stdout)["succeeded"] == 4
        assert not (tmp_path / "-").exists()
        assert os.path.islink("/dev/stdout") == was_link
        assert not list(tmp_path.glob(".*.partial"))


def test_results_to_dev_stdout_are_jsonl_on_standard_output(sim, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", _items(3))
    flags = ["-o", "/dev/stdout", "--quarantine", "q.jsonl", "-q"]
    result = _run(_sluice(sim.base_url, "in.jsonl", *flags), tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    rows = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [row["id"] for row in rows] == ["i0", "i1", "i2"]
    assert os.path.islink("/dev/stdout") and not list(Path("/dev").glob(".stdout*"))


def test_a_quarantine_fifo_is_written_to_not_replaced(sim, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "x"}, {"id": "b", "other": 1}])
    fifo = tmp_path / "failures.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = _run(
        _sluice(sim.base_url, "in.jsonl", "-o", "out.jsonl", "--quarantine", str(fifo)),
        tmp_path,
    )
    reader.join(timeout=60)
    assert result.returncode == 1, result.stderr.decode()
    assert fifo.is_fifo()
    rows = [orjson.loads(line) for line in received[0].splitlines()]
    assert [row["id"] for row in rows] == ["b"]
    assert [row["id"] for row in read_jsonl(tmp_path / "out.jsonl")] == ["a"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_follow_the_umask_and_state_stays_private(
    sim, tmp_path: Path, umask: int, mode: int
) -> None:
    write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}, {"other": "b"}])
    flags = ["-o", "out.jsonl", "--summary", "s.json", "--max-error-rate", "1"]
    result = _run(_sluice(sim.base_url, "in.jsonl", *flags), tmp_path, umask=umask)
    assert result.returncode == 0, result.stderr.decode()
    for name in ("out.jsonl", "out.quarantine.jsonl", "s.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


def test_a_parquet_commit_that_fails_leaves_both_earlier_files_untouched(
    sim, tmp_path: Path
) -> None:
    # The first rows fix `n` as an integer; a later string does not fit the schema.
    rows = [{"n": i, "text": f"t{i}"} for i in range(60)] + [{"n": "sixty", "text": "t"}]
    write_jsonl(tmp_path / "in.jsonl", [*rows, {"n": 0}])  # the last one is quarantined
    (tmp_path / "out.parquet").write_bytes(b"earlier results")
    (tmp_path / "out.quarantine.jsonl").write_bytes(b"earlier quarantine\n")
    for state in ("--no-state", "--state"):
        result = _run(_sluice(sim.base_url, "in.jsonl", "-o", "out.parquet", state), tmp_path)
        message = result.stderr.decode()
        assert result.returncode == 73, message
        assert "Parquet schema" in message and "Traceback" not in message
        assert "run the same command again" not in message
        assert "not written" in message
        assert (tmp_path / "out.parquet").read_bytes() == b"earlier results"
        assert (tmp_path / "out.quarantine.jsonl").read_bytes() == b"earlier quarantine\n"
        assert not list(tmp_path.glob(".out.*.partial"))


def test_a_run_turned_away_by_the_lock_touches_not_even_the_summary(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", _items(200))
    summary = tmp_path / "s.json"
    summary.write_text("the first run's summary\n")
    with BackgroundSimulator(SimulatorConfig(latency=0.2)) as slow:
        command = _sluice(slow.base_url, "in.jsonl", "-o", "out.jsonl", "-c", "2")
        env = {**os.environ, "OPENAI_API_KEY": "", "XDG_CACHE_HOME": str(tmp_path / ".c")}
        first = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while slow.stats().requests_total < 2:
                assert time.monotonic() < deadline and first.poll() is None
                time.sleep(0.01)
            second = _run([*command, "--summary", "s.json"], tmp_path)
            assert second.returncode == 75, second.stderr.decode()
            assert summary.read_text() == "the first run's summary\n"
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)


def test_an_unwritable_summary_is_found_before_any_request(sim, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", _items(3))
    (tmp_path / "adir").mkdir()
    before = sim.stats().requests_total
    for summary in ("missing/s.json", "adir"):
        result = _run(
            _sluice(sim.base_url, "in.jsonl", "-o", "out.jsonl", "--summary", summary), tmp_path
        )
        assert result.returncode == 73, result.stderr.decode()
        assert "summary" in result.stderr.decode() or summary in result.stderr.decode()
    assert sim.stats().requests_total == before
    assert not (tmp_path / "out.jsonl").exists()
    assert not (tmp_path / ".out.jsonl.sluice").exists()


def test_temp_files_of_killed_runs_are_swept_and_a_live_writers_kept(sim, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", _items(3))
    abandoned = [tmp_path / ".out.jsonl.k3j_x9q2.partial", tmp_path / ".s.json.aaaaaaaa.partial"]
    for path in abandoned:
        path.write_bytes(b"x" * 10_000)
    live = tmp_path / ".out.jsonl.live1234.partial"
    live.write_bytes(b"being written")
    unrelated = tmp_path / ".other.jsonl.aaaaaaaa.partial"
    unrelated.write_bytes(b"someone else's")
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = _run(
            _sluice(sim.base_url, "in.jsonl", "-o", "out.jsonl", "--summary", "s.json"),
            tmp_path,
        )
    assert result.returncode == 0, result.stderr.decode()
    assert not any(path.exists() for path in abandoned)
    assert live.exists() and unrelated.exists()


def test_item_fields_named_like_result_fields_are_never_dropped(sim, tmp_path: Path) -> None:
    alpaca = [{"id": n, "text": f"q{n}", "output": f"gold {n}"} for n in range(3)]
    write_jsonl(tmp_path / "in.jsonl", alpaca)
    before = sim.stats().requests_total
    refused = _run(_sluice(sim.base_url, "in.jsonl", "-o", "out.jsonl"), tmp_path)
    assert refused.returncode == 78, refused.stderr.decode()
    assert "--result-prefix" in refused.stderr.decode()
    assert sim.stats().requests_total == before

    prefixed = _run(
        _sluice(sim.base_url, "in.jsonl", "-o", "out.jsonl", "--result-prefix", "sluice_"),
        tmp_path,
    )
    assert prefixed.returncode == 0, prefixed.stderr.decode()
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [row["output"] for row in rows] == ["gold 0", "gold 1", "gold 2"]
    assert all(isinstance(row["sluice_output"], str) and "sluice_usage" in row for row in rows)


def test_a_later_item_with_a_result_field_is_quarantined_whole(sim, tmp_path: Path) -> None:
    items = [*_items(3), {"id": "late", "text": "t", "cached": "mine"}]
    write_jsonl(tmp_path / "in.jsonl", items)
    result = _run(_sluice(sim.base_url, "in.jsonl", "-o", "out.jsonl"), tmp_path)
    assert result.returncode == 1, result.stderr.decode()
    (failed,) = read_jsonl(tmp_path / "out.quarantine.jsonl")
    assert failed["item"] == items[-1] and failed["error"]["kind"] == "invalid_input"
    assert "--result-prefix" in failed["error"]["message"]


def test_a_resumed_runs_summary_counts_this_attempt_and_the_job_apart(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", _items(300))
    with BackgroundSimulator(SimulatorConfig(latency=0.02)) as slow:
        command = _sluice(
            slow.base_url, "in.jsonl", "-o", "out.jsonl", "--batch-size", "10", "-c", "4"
        )
        env = {**os.environ, "OPENAI_API_KEY": "", "XDG_CACHE_HOME": str(tmp_path / ".c")}
        first = subprocess.Popen(
            [*command, "--summary", "first.json"], cwd=tmp_path, env=env, stderr=subprocess.PIPE
        )
        parts = tmp_path / ".out.jsonl.sluice" / "parts"
        deadline = time.monotonic() + 60
        while not (parts.is_dir() and len(list(parts.glob("*.part"))) >= 2):
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.01)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 143
        second = _run([*command, "--summary", "second.json"], tmp_path)
    assert second.returncode == 0, second.stderr.decode()
    one, two = (orjson.loads((tmp_path / f"{n}.json").read_bytes()) for n in ("first", "second"))
    assert two["resumed"] > 0 and two["whole_job"]["items"] == 300 == two["items"]
    assert two["this_attempt"]["items"] == 300 - two["resumed"]
    paid = [row["usage"] for row in read_jsonl(tmp_path / "out.jsonl") if not row["cached"]]
    for side in ("prompt", "completion"):
        job_total = sum(usage[f"{side}_tokens"] for usage in paid)
        # Adding the attempts' summaries counts each paid token once.
        assert one["tokens"][side] + two["tokens"][side] == job_total
        assert two["whole_job"]["tokens"][side] == job_total
        assert two["tokens"][side] == two["this_attempt"]["tokens"][side]
        assert two["tokens"][side] < job_total


def test_a_state_directory_shared_with_other_files_is_refused_untouched(
    sim, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "in.jsonl", _items(3))
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "mine.txt").write_text("the user's own parts")
    (tmp_path / "lock").write_text("the user's own lock")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = _run(
        _sluice(sim.base_url, "in.jsonl", "-o", "out.jsonl", "--state-dir", "."), tmp_path
    )
    assert result.returncode == 2, result.stderr.decode()
    assert "a directory of its own" in result.stderr.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "parts" / "mine.txt").read_text() == "the user's own parts"
    assert (tmp_path / "lock").read_text() == "the user's own lock"
