"""Skipping the committed prefix, noticing a changed input (pipeline/state/resume.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.errors import ConfigError
from pipeline.core.models import Batch, Item
from pipeline.state.resume import (
    InputChanged,
    ResumePoint,
    batch_digest,
    skip_committed,
    with_digests,
)


def _item(n: int, text: str = "hello", item_id: Any = None, source: str = "in.jsonl") -> Item:
    return Item(n, source, n + 1, {"text": text}, n if item_id is None else item_id)


def _batches(sizes: list[int], source: str = "in.jsonl") -> list[Batch]:
    batches, position = [], 0
    for index, size in enumerate(sizes):
        items = [_item(position + i, f"text {position + i}", source=source) for i in range(size)]
        batches.append(Batch(index, items))
        position += size
    return batches


def _point(batches: list[Batch]) -> ResumePoint:
    point = ResumePoint()
    for batch in batches:
        point.add(batch_digest(batch.items))
    return point


def _indexes(batches: Iterator[Batch]) -> list[int]:
    return [batch.index for batch in batches]


def test_equal_items_give_equal_digests() -> None:
    assert batch_digest([_item(0), _item(1)]) == batch_digest([_item(0), _item(1)])
    assert len(batch_digest([_item(0)])) == 16


@pytest.mark.parametrize(
    "changed",
    [
        [_item(0, text="HELLO"), _item(1)],  # content
        [_item(0, item_id="0"), _item(1)],  # id 0 became "0"
        [_item(0, item_id=7), _item(1)],  # id
        [_item(1), _item(0)],  # order
        [_item(0)],  # an item fewer
        [_item(0), _item(1), _item(2)],  # an item more
    ],
    ids=["content", "id-type", "id", "order", "fewer", "more"],
)
def test_any_change_in_the_items_changes_the_digest(changed: list[Item]) -> None:
    assert batch_digest(changed) != batch_digest([_item(0), _item(1)])


def test_an_unparsable_line_is_digested_by_its_raw_text() -> None:
    def bad(raw: str) -> Item:
        return Item(0, "in.jsonl", 1, None, 0, raw=raw, problem="not JSON")

    assert batch_digest([bad("{oops")]) == batch_digest([bad("{oops")])
    assert batch_digest([bad("{oops")]) != batch_digest([bad("{oops!")])


def test_with_digests_stamps_each_batch() -> None:
    batches = list(with_digests(iter(_batches([2, 3]))))
    assert [b.digest for b in batches] == [batch_digest(b.items) for b in batches]


def test_only_the_batches_past_the_committed_prefix_are_done() -> None:
    batches = _batches([2, 2, 2, 1])
    point = _point(batches[:2])
    assert _indexes(skip_committed(with_digests(iter(_batches([2, 2, 2, 1]))), point)) == [2, 3]


def test_nothing_committed_does_everything() -> None:
    assert _indexes(skip_committed(with_digests(iter(_batches([1, 1]))), ResumePoint())) == [0, 1]


def test_a_changed_committed_batch_stops_the_run_naming_it() -> None:
    point = _point(_batches([2, 2, 2], source="data.jsonl"))
    now = _batches([2, 2, 2], source="data.jsonl")
    now[1].items[1].row = {"text": "edited"}

    with pytest.raises(InputChanged) as changed:
        list(skip_committed(with_digests(iter(now)), point))

    assert isinstance(changed.value, ConfigError) and changed.value.exit_code == 78
    message = changed.value.message
    assert "batch 1" in message and "data.jsonl line 3" in message and "--fresh" in message


def test_no_batch_is_yielded_before_a_changed_one_is_seen() -> None:
    point = _point(_batches([1, 1]))
    now = _batches([1, 1, 1])
    now[0].items[0].id = "another"
    done: list[int] = []
    with pytest.raises(InputChanged, match="batch 0"):
        done.extend(_indexes(skip_committed(with_digests(iter(now)), point)))
    assert done == []


def test_an_input_ending_inside_the_committed_prefix_stops_the_run() -> None:
    point = _point(_batches([2, 2, 2]))
    with pytest.raises(InputChanged) as changed:
        list(skip_committed(with_digests(iter(_batches([2, 2]))), point))
    assert changed.value.exit_code == 78
    assert "3 batches were already committed" in changed.value.message
    assert "--fresh" in changed.value.message


def test_an_empty_input_under_a_committed_prefix_stops_the_run() -> None:
    with pytest.raises(InputChanged, match="within batch 0"):
        list(skip_committed(iter([]), _point(_batches([1]))))


small_items = st.builds(
    lambda text, item_id: Item(0, "in.jsonl", 1, {"text": text}, item_id),
    st.sampled_from(["a", "b"]),
    st.sampled_from([0, 1, "0"]),
)


@given(contents=st.lists(st.lists(small_items, min_size=1, max_size=3), max_size=8), data=st.data())
def test_resuming_after_k_batches_yields_exactly_the_rest(
    contents: list[list[Item]], data: st.DataObject
) -> None:
    k = data.draw(st.integers(0, len(contents)))

    def batches() -> Iterator[Batch]:
        return (Batch(index, list(items)) for index, items in enumerate(contents))

    point = ResumePoint()
    for batch in list(with_digests(batches()))[:k]:
        point.add(batch.digest)

    rest = list(skip_committed(with_digests(batches()), point))

    assert [(b.index, b.items) for b in rest] == list(enumerate(contents))[k:]
