"""Sharded runs (`--shard I/N`) and `sluice merge`, on real processes against the simulator.

The promise: N shards (one of them killed and resumed) and a merge give what one run
over the whole input gives, row for row, and `sluice verify` holds for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from pipeline.state.parts import committed_headers
from tests.conftest import read_jsonl, run_cli, write_jsonl

SHARDS = 3
CONCURRENCY = 4


def _items(count: int) -> list[dict[str, Any]]:
    return [{"id": f"item-{n:05d}", "text": f"distinct text {n}"} for n in range(count)]


def _run_args(source: str, out: Path, base_url: str, *extra: str) -> list[str]:
    return [
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
        *extra,
    ]


def _process(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": ""}


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _process(args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env()
    )


def _finish(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(_process(args), capture_output=True, env=_env(), timeout=120, check=False)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _committed(state: Path) -> int:
    parts = state / "parts"
    return sum(1 for _ in committed_headers(str(parts))) if parts.is_dir() else 0


def _paid_twice(sim: BackgroundSimulator) -> int:
    return sum(n - 1 for n in sim.stats().requests_by_digest.values() if n > 1)


def _without_cached(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "cached"} for row in rows]


def _shard_files(directory: Path, suffix: str = "jsonl") -> list[str]:
    args = []
    for shard in range(1, SHARDS + 1):
        args += ["-r", str(directory / f"part-{shard}.{suffix}")]
    return args


def test_three_shards_one_killed_and_resumed_merge_into_what_one_run_writes(
    tmp_path: Path,
) -> None:
    count, batch = 1000, 20
    source = write_jsonl(tmp_path / "in.jsonl", _items(count))
    shard_args = ["--batch-size", str(batch), "-c", str(CONCURRENCY), "-q"]
    with BackgroundSimulator(SimulatorConfig(latency=0.02, jitter=0.01, seed=7)) as sim:

        def shard(number: int, *extra: str) -> list[str]:
            out = tmp_path / f"part-{number}.jsonl"
            return _run_args(source, out, sim.base_url, *shard_args, *extra)

        first = _start(shard(1, "--shard", "1/3", "--summary", str(tmp_path / "s1.json")))
        third = _start(shard(3, "--shard", "3/3"))
        killed = _start(shard(2, "--shard", "2/3"))
        state = tmp_path / ".part-2.jsonl.sluice"
        _wait_for(lambda: _committed(state) >= 3, "shard 2's first commits")
        killed.kill()
        killed.wait(timeout=30)
        assert not (tmp_path / "part-2.jsonl").exists()
        committed = _committed(state)
        assert 3 <= committed < 17  # shard 2 has batches 1, 4, ..., 49: 17 of them
        status = run_cli(["status", str(state)])
        assert status.exit_code == 0, status.output
        assert "with model sim-chat, shard 2/3" in status.stdout
        assert f"in {committed} batches" in status.stdout and " of 340 (" in status.stdout

        # Its state is shard 2/3's: never resumed as another shard.
        refused = _finish(shard(2, "--shard", "3/3"))
        assert refused.returncode == 78
        assert "the shard (--shard) ('2/3' -> '3/3')" in refused.stderr.decode()
        assert _committed(state) == committed

        resumed = _finish(shard(2, "--shard", "2/3"))
        assert resumed.returncode == 0, resumed.stderr.decode()
        for process in (first, third):
            stderr = process.communicate(timeout=120)[1]
            assert process.returncode == 0, stderr.decode()
        assert not state.exists()
        # Each item was asked once, but for what was on the wire at the kill.
        seen = sim.stats().requests_by_digest
        assert len(seen) == count
        assert _paid_twice(sim) <= CONCURRENCY

        merged = tmp_path / "merged.jsonl"
        args = ["merge", source, *_shard_files(tmp_path), "-o", str(merged), "--batch-size", "20"]
        merge = _finish(args)
        assert merge.returncode == 0, merge.stdout.decode() + merge.stderr.decode()
        assert merge.stdout.decode().splitlines()[:2] == [
            f"merged 3 shards into {merged} and {tmp_path / 'merged.quarantine.jsonl'}",
            "ok: every input item is in exactly one output row, in input order",
        ]
        rows = read_jsonl(merged)
        assert [row["id"] for row in rows] == [item["id"] for item in _items(count)]
        quarantine = str(tmp_path / "merged.quarantine.jsonl")
        checked = run_cli(["verify", source, "-r", str(merged), "--quarantine", quarantine])
        assert checked.exit_code == 0, checked.output

        whole = tmp_path / "whole.jsonl"
        fresh = ["--batch-size", str(batch), "-c", "32", "--cache-dir", str(tmp_path / "fresh")]
        single = _finish(_run_args(source, whole, sim.base_url, *fresh, "-q"))
        assert single.returncode == 0, single.stderr.decode()
    assert _without_cached(rows) == _without_cached(read_jsonl(whole))
    assert read_jsonl(quarantine) == read_jsonl(tmp_path / "whole.quarantine.jsonl") == []
    summary = orjson.loads((tmp_path / "s1.json").read_bytes())
    assert summary["options"]["read"]["shard"] == "1/3"
    assert summary["items"] == 340  # 17 batches of 20


# 40 items in batches of 4: batch b (items 4b to 4b+3) is shard b % 3 + 1's.
def _awkward_items() -> list[bytes]:
    lines = [orjson.dumps({"id": f"r{n}", "text": f"text {n}"}) for n in range(40)]
    lines[5] = b"{not json"  # shard 2
    lines[9] = orjson.dumps({"id": "r9", "text": "refuse me [[sim:400]]"})  # shard 3
    lines[14] = orjson.dumps({"id": "r0", "text": "again"})  # r0 is shard 1's, as is this
    lines[22] = orjson.dumps({"id": "r1", "text": "again"})  # r1 is shard 1's; this, 3's
    lines[30] = orjson.dumps({"id": None, "text": "no id"})  # shard 2
    lines[33] = orjson.dumps({"text": "known by its position"})  # shard 3 (id 33)
    return lines


def _awkward_input(directory: Path) -> str:
    path = directory / "in.jsonl"
    path.write_bytes(b"\n".join(_awkward_items()) + b"\n")
    return str(path)


def _run_shards(sim: BackgroundSimulator, source: str, directory: Path, *extra: str) -> None:
    suffix = "parquet" if "--parquet" in extra else "jsonl"
    extra = tuple(arg for arg in extra if arg != "--parquet")
    for shard in range(1, SHARDS + 1):
        out = directory / f"part-{shard}.{suffix}"
        args = _run_args(source, out, sim.base_url, "--batch-size", "4", *extra)
        result = run_cli([*args, "--shard", f"{shard}/{SHARDS}", "--max-error-rate", "1"])
        assert result.exit_code == 0, result.output


def test_duplicates_and_invalid_lines_end_in_the_merged_quarantine_exactly_once(
    tmp_path: Path, sim: BackgroundSimulator
) -> None:
    source = _awkward_input(tmp_path)
    _run_shards(sim, source, tmp_path)
    merged = tmp_path / "merged.jsonl"
    result = run_cli(
        ["merge", source, *_shard_files(tmp_path), "-o", str(merged), "--batch-size", "4"]
    )
    assert result.exit_code == 0, result.output
    quarantined = read_jsonl(tmp_path / "merged.quarantine.jsonl")
    assert [row["source"]["line"] for row in quarantined] == [6, 10, 15, 23, 31]
    assert [row["id"] for row in quarantined] == [5, "r9", "r0", "r1", None]
    rows = read_jsonl(merged)
    assert len(rows) == 35 and rows[28]["id"] == 33  # five rows before it are quarantined
    whole = tmp_path / "whole.jsonl"
    single = run_cli(
        [*_run_args(source, whole, sim.base_url, "--batch-size", "4"), "--max-error-rate", "1"]
    )
    assert single.exit_code == 0, single.output
    assert _without_cached(rows) == _without_cached(read_jsonl(whole))
    assert quarantined == read_jsonl(tmp_path / "whole.quarantine.jsonl")


def test_parquet_shards_with_dropped_items_merge_into_one_runs_parquet(
    tmp_path: Path, sim: BackgroundSimulator
) -> None:
    items = [{"id": n, "rating": n % 5 + 1, "text": f"review {n}"} for n in range(45)]
    source = write_jsonl(tmp_path / "in.jsonl", items)
    where = ["--where", "rating >= 3"]
    _run_shards(sim, source, tmp_path, "--parquet", *where, "--drop-skipped")
    merged = tmp_path / "merged.parquet"
    files = _shard_files(tmp_path, "parquet")
    result = run_cli(["merge", source, *files, "-o", str(merged), "--batch-size", "4", *where])
    assert result.exit_code == 0, result.output
    assert "+ 18 left out by --where" in result.stdout
    whole = tmp_path / "whole.parquet"
    args = _run_args(source, whole, sim.base_url, "--batch-size", "4", *where, "--drop-skipped")
    assert run_cli(args).exit_code == 0
    ours, theirs = pq.read_table(merged), pq.read_table(whole)
    assert ours.schema == theirs.schema
    assert ours.drop_columns(["cached"]).equals(theirs.drop_columns(["cached"]))


def test_sharded_retries_merge_with_retried(tmp_path: Path, sim: BackgroundSimulator) -> None:
    source = _awkward_input(tmp_path)
    first = run_cli(
        [*_run_args(source, tmp_path / "out.jsonl", sim.base_url), "--max-error-rate", "1"]
    )
    assert first.exit_code == 0, first.output
    again = str(tmp_path / "out.quarantine.jsonl")
    for shard in (1, 2):
        args = _run_args(again, tmp_path / f"retry-{shard}.jsonl", sim.base_url)
        args[0] = "retry"
        retried = run_cli(
            [*args, "--batch-size", "2", "--shard", f"{shard}/2", "--max-error-rate", "1"]
        )
        assert retried.exit_code == 0, retried.output
    merged = tmp_path / "retried.jsonl"
    shards = ["-r", str(tmp_path / "retry-1.jsonl"), "-r", str(tmp_path / "retry-2.jsonl")]
    args = ["merge", again, *shards, "-o", str(merged), "--batch-size", "2", "--retried"]
    result = run_cli(args)
    assert result.exit_code == 0, result.output
    assert read_jsonl(tmp_path / "retried.quarantine.jsonl") == read_jsonl(again)


@pytest.fixture
def shards(tmp_path: Path, sim: BackgroundSimulator) -> list[str]:
    """A sharded job's files: the input, then -r for each shard in order."""
    source = _awkward_input(tmp_path)
    _run_shards(sim, source, tmp_path)
    return [source, *_shard_files(tmp_path)]


def test_merge_given_another_batch_size_or_order_says_so_and_exits_1(
    tmp_path: Path, shards: list[str]
) -> None:
    out = str(tmp_path / "merged.jsonl")
    wrong_size = run_cli(["merge", *shards, "-o", out, "--batch-size", "5"])
    assert wrong_size.exit_code == 1
    assert "NOT OK" in wrong_size.stdout
    assert "not where their batches put them" in wrong_size.stdout
    assert "--batch-size (5)" in wrong_size.stdout
    source, *files = shards
    swapped = [*files[2:4], *files[0:2], *files[4:]]
    wrong_order = run_cli(["merge", source, *swapped, "-o", out, "--batch-size", "4"])
    assert wrong_order.exit_code == 1
    # What it merged holds every row still, for verify to name what is wrong.
    rows = read_jsonl(out) + read_jsonl(tmp_path / "merged.quarantine.jsonl")
    assert len(rows) == 40


def test_merge_refusals_are_one_line_with_their_exit_codes(
    tmp_path: Path, shards: list[str]
) -> None:
    source, *files = shards
    out = str(tmp_path / "merged.jsonl")
    cases: list[tuple[list[str], int, str]] = [
        ([source, "-r", str(tmp_path / "nope.jsonl"), "-o", out], 66, "does not exist"),
        ([*shards, "-o", source], 2, "is also an input"),
        ([*shards, "-o", files[1]], 2, "is also an input"),
        ([*shards, "-o", "-"], 2, "--output names a file"),
        (
            [*shards, "--quarantine", str(tmp_path / "part-1.quarantine.jsonl"), "-o", out],
            2,
            "one --quarantine for each of the 3 --results",
        ),
        ([*shards, "-o", str(tmp_path / "merged.csv")], 2, "cannot tell the format"),
    ]
    (tmp_path / "garbled.jsonl").write_bytes(b"[1, 2]\n")
    garbled = ["-r", str(tmp_path / "garbled.jsonl"), "--quarantine", str(tmp_path / "in.jsonl")]
    cases.append(([source, *garbled, "-o", out], 65, "garbled.jsonl line 1 is not a row"))
    for args, code, message in cases:
        result = run_cli(["merge", *args, "--batch-size", "4"])
        assert result.exit_code == code, (args, result.output)
        assert message in result.stderr, result.stderr
        assert len(result.stderr.splitlines()) == 1
        assert not Path(out).exists()


def test_a_shards_plan_counts_only_its_own_items(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _items(50))
    plan = run_cli(
        ["plan", source, "-m", "sim-chat", "--batch-size", "4", "--shard", "2/3", "--json"]
    )
    assert plan.exit_code == 0, plan.output
    facts = orjson.loads(plan.stdout)
    assert facts["items"] == facts["requests"] == 16  # batches 1, 4, 7, 10: 4 items each


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_a_shard_with_no_batch_writes_empty_files_that_merge_takes(
    tmp_path: Path, sim: BackgroundSimulator, suffix: str
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _items(6))  # batches 0 and 1 of 4: no 3/3
    extra = ("--parquet",) if suffix == "parquet" else ()
    _run_shards(sim, source, tmp_path, *extra)
    assert (tmp_path / f"part-3.{suffix}").exists()
    merged = tmp_path / f"merged.{suffix}"
    files = _shard_files(tmp_path, suffix)
    result = run_cli(["merge", source, *files, "-o", str(merged), "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    if suffix == "parquet":
        ids = pq.read_table(merged).column("id").to_pylist()
        assert pq.read_table(merged).column_names[:2] == ["id", "text"]
    else:
        ids = [row["id"] for row in read_jsonl(merged)]
    assert ids == [item["id"] for item in _items(6)]


def test_a_stopped_shard_counts_what_it_left_undone_of_its_own_share(
    tmp_path: Path, sim: BackgroundSimulator
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", _items(50))
    summary = tmp_path / "summary.json"
    args = _run_args(source, tmp_path / "part-2.jsonl", sim.base_url, "--batch-size", "4")
    extra = ["--shard", "2/3", "--max-requests", "4", "-c", "1", "--summary", str(summary)]
    result = run_cli([*args, *extra])
    assert result.exit_code == 3, result.output
    facts = orjson.loads(summary.read_bytes())
    assert facts["items"] + facts["skipped"] == 16  # shard 2/3's share, not the input's 50
