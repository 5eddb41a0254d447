"""--shard I/N: which batches a shard does, how the flag is read, and what makes a shard's
job its own (pure parts; real sharded runs and merges are in tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli.option_values import parse_shard
from pipeline.core.config import OutputConfig, ReadConfig, RequestConfig, RunConfig
from pipeline.core.errors import UsageError
from pipeline.core.models import Item
from pipeline.prepare.batching import batched, shard_batches, shard_of, shard_share
from pipeline.state.fingerprint import differences, run_fingerprint
from tests.conftest import run_cli, write_jsonl


def _items(count: int) -> list[Item]:
    return [Item(i, "in.jsonl", i + 1, {"n": i}, i) for i in range(count)]


@given(batch=st.integers(0, 10_000), shards=st.integers(1, 64))
def test_every_batch_belongs_to_exactly_one_shard(batch: int, shards: int) -> None:
    owners = [i for i in range(1, shards + 1) if shard_of(batch, shards) == i]
    assert len(owners) == 1
    # Dealt in turn: the next N batches go to N different shards.
    assert {shard_of(b, shards) for b in range(batch, batch + shards)} == set(range(1, shards + 1))


@given(count=st.integers(0, 400), size=st.integers(1, 30), shards=st.integers(1, 9))
def test_the_shards_of_an_input_partition_it_each_in_input_order(
    count: int, size: int, shards: int
) -> None:
    items = _items(count)
    taken: list[int] = []
    for shard in range(1, shards + 1):
        own = list(shard_batches(batched(items, size), (shard, shards)))
        # Numbered 0, 1, 2, ... as any run's batches: its checkpoint knows no gaps.
        assert [batch.index for batch in own] == list(range(len(own)))
        positions = [item.position for batch in own for item in batch.items]
        assert positions == sorted(positions)
        assert all(shard_of(p // size, shards) == shard for p in positions)
        taken += positions
    assert sorted(taken) == list(range(count))  # each item in exactly one shard


@given(count=st.integers(0, 400), size=st.integers(1, 30), shards=st.integers(1, 9))
def test_a_shards_share_of_the_items_is_what_it_does(count: int, size: int, shards: int) -> None:
    shares = []
    for shard in range(1, shards + 1):
        own = shard_batches(batched(_items(count), size), (shard, shards))
        shares.append(shard_share(count, size, (shard, shards)))
        assert shares[-1] == sum(len(batch.items) for batch in own)
    assert sum(shares) == count == shard_share(count, size, None)


@given(count=st.integers(0, 200), size=st.integers(1, 30))
def test_without_a_shard_every_batch_is_kept_as_it_was(count: int, size: int) -> None:
    whole = [(b.index, b.items) for b in batched(_items(count), size)]
    kept = [(b.index, b.items) for b in shard_batches(batched(_items(count), size), None)]
    assert kept == whole


@given(shards=st.integers(1, 10_000), data=st.data())
def test_a_shard_in_range_reads_as_written(shards: int, data: st.DataObject) -> None:
    shard = data.draw(st.integers(1, shards))
    assert parse_shard(f"{shard}/{shards}") == (shard, shards)
    assert parse_shard(f" {shard} / {shards} ") == (shard, shards)


@given(shards=st.integers(1, 1000), beyond=st.integers(1, 1000))
def test_a_shard_past_the_last_is_refused(shards: int, beyond: int) -> None:
    with pytest.raises(UsageError, match=f"the shards are 1/{shards} to {shards}/{shards}"):
        parse_shard(f"{shards + beyond}/{shards}")


def test_a_zero_based_shard_is_refused_with_the_fix() -> None:
    with pytest.raises(UsageError, match=r"counts shards from 1.*\$\(\(INDEX\+1\)\)/3"):
        parse_shard("0/3")


@pytest.mark.parametrize("value", ["3", "1/", "/3", "a/b", "-1/3", "1/3/5", "1.0/3", "²/3", ""])
def test_what_is_not_i_of_n_is_refused(value: str) -> None:
    with pytest.raises(UsageError, match="--shard expects I/N"):
        parse_shard(value)


def test_zero_shards_is_refused() -> None:
    with pytest.raises(UsageError, match="at least 1"):
        parse_shard("0/0")


def _fingerprint(shard: tuple[int, int] | None) -> dict:
    config = RunConfig(
        read=ReadConfig(("in.jsonl",), shard=shard),
        request=RequestConfig(endpoint=None, model="m"),
        output=OutputConfig("out.jsonl", "out.quarantine.jsonl"),
    )
    return run_fingerprint(config, [{"path": "in.jsonl"}])


def test_the_shard_is_part_of_the_jobs_fingerprint() -> None:
    first, second = _fingerprint((1, 3)), _fingerprint((2, 3))
    assert first != second
    assert differences(first, second) == ["the shard (--shard) ('1/3' -> '2/3')"]
    # A job run whole keeps the fingerprint it always had.
    assert "shard" not in _fingerprint(None)


@pytest.mark.parametrize(
    ("shard", "message"),
    [("0/3", "counts shards from 1"), ("4/3", "there is no shard 4 of 3"), ("2-3", "I/N")],
)
@pytest.mark.parametrize("command", ["run", "plan", "retry"])
def test_the_commands_refuse_a_bad_shard_with_exit_2_and_one_line(
    tmp_path: Path, command: str, shard: str, message: str
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "a"}])
    base = ["--base-url", "http://127.0.0.1:9/v1", "-m", "m"]
    result = run_cli([command, source, "-o", str(tmp_path / "out.jsonl"), *base, "--shard", shard])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "out.jsonl").exists()
