"""`sluice reduce`'s grouping and chunking: every row in exactly one chunk of its group,
in order, within the budget, and chunks as full as the packing rule promises (pure)."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.workflow.reduce_chunks import Chunk, Chunker, group_key

# Keys that look alike but are different JSON values, and so different groups.
LOOKALIKE_KEYS: list[Any] = [1, 1.0, True, "1", 0, 0.0, False, None, "null", [1], {"a": 1}]


def _size(row: dict[str, Any]) -> int:
    size: int = row["size"]
    return size


def _chunk_all(budget: int, rows: list[tuple[Any, int]]) -> tuple[list[Chunk], Chunker]:
    """Feeds (group, size) pairs as rows numbered in input order; returns every chunk."""
    chunker = Chunker(budget, _size)
    chunks: list[Chunk] = []
    for number, (group, size) in enumerate(rows):
        chunks += chunker.add(group, {"n": number, "size": size})
    chunks += chunker.finish()
    return chunks, chunker


def _by_group(chunks: list[Chunk]) -> dict[str, list[Chunk]]:
    grouped: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        grouped.setdefault(group_key(chunk.group), []).append(chunk)
    return grouped


budgets = st.integers(min_value=1, max_value=40)
inputs = st.lists(
    st.tuples(st.sampled_from(LOOKALIKE_KEYS), st.integers(min_value=0, max_value=60)),
    max_size=80,
)


@given(budgets, inputs)
def test_every_row_lands_once_in_a_chunk_of_its_group_in_input_order(
    budget: int, rows: list[tuple[Any, int]]
) -> None:
    chunks, _ = _chunk_all(budget, rows)
    expected: dict[str, list[int]] = {}
    for number, (group, _) in enumerate(rows):
        expected.setdefault(group_key(group), []).append(number)
    placed = {
        key: [row["n"] for chunk in group_chunks for row in chunk.rows]
        for key, group_chunks in _by_group(chunks).items()
    }
    assert placed == expected


@given(budgets, inputs)
def test_no_chunk_but_an_oversized_row_exceeds_the_budget(
    budget: int, rows: list[tuple[Any, int]]
) -> None:
    chunks, _ = _chunk_all(budget, rows)
    for chunk in chunks:
        assert chunk.rows
        assert chunk.tokens == sum(row["size"] for row in chunk.rows)
        if chunk.oversized:
            assert len(chunk.rows) == 1 and chunk.tokens > budget
        else:
            assert chunk.tokens <= budget


@given(budgets, inputs)
def test_a_chunk_is_closed_only_because_the_next_row_did_not_fit(
    budget: int, rows: list[tuple[Any, int]]
) -> None:
    chunks, _ = _chunk_all(budget, rows)
    for group_chunks in _by_group(chunks).values():
        for chunk, after in itertools.pairwise(group_chunks):
            if not chunk.oversized:
                assert chunk.tokens + after.rows[0]["size"] > budget


@given(budgets, inputs)
def test_chunk_indexes_run_from_zero_per_group_and_match_the_tally(
    budget: int, rows: list[tuple[Any, int]]
) -> None:
    chunks, chunker = _chunk_all(budget, rows)
    grouped = _by_group(chunks)
    for group_chunks in grouped.values():
        assert [chunk.index for chunk in group_chunks] == list(range(len(group_chunks)))
    first_seen: dict[str, Any] = {}
    for group, _ in rows:
        first_seen.setdefault(group_key(group), group)
    tally = chunker.groups()
    assert [group_key(value) for value, _seen, _made in tally] == list(first_seen)
    for value, seen, made in tally:
        key = group_key(value)
        assert seen == sum(1 for group, _size_ in rows if group_key(group) == key)
        assert made == len(grouped[key]) >= 1


@given(budgets, inputs)
def test_the_same_rows_give_the_same_chunks(budget: int, rows: list[tuple[Any, int]]) -> None:
    assert _chunk_all(budget, rows)[0] == _chunk_all(budget, rows)[0]


@given(budgets, inputs)
def test_finish_gives_open_chunks_in_first_appearance_order(
    budget: int, rows: list[tuple[Any, int]]
) -> None:
    chunker = Chunker(budget, _size)
    for number, (group, size) in enumerate(rows):
        chunker.add(group, {"n": number, "size": size})
    rest = [group_key(chunk.group) for chunk in chunker.finish()]
    order = [group_key(value) for value, _seen, _made in chunker.groups()]
    assert rest == [key for key in order if key in rest]
    assert len(set(rest)) == len(rest)


# group_key

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)


def _same_json(left: Any, right: Any) -> bool:
    """Equal as JSON documents, with types kept apart (1 is not 1.0, nor true)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_same_json, left, right))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same_json(v, right[k]) for k, v in left.items())
    if isinstance(left, float):
        return repr(left) == repr(right)  # -0.0 is written apart from 0.0
    return bool(left == right)


def _reordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: _reordered(value[name]) for name in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(member) for member in value]
    return value


@given(st.sampled_from(LOOKALIKE_KEYS), st.sampled_from(LOOKALIKE_KEYS))
def test_lookalike_keys_stay_apart(left: Any, right: Any) -> None:
    assert (group_key(left) == group_key(right)) == _same_json(left, right)


@given(json_values, json_values)
def test_group_keys_are_equal_exactly_when_the_values_are(left: Any, right: Any) -> None:
    assert (group_key(left) == group_key(right)) == _same_json(left, right)


@given(json_values)
def test_object_key_order_does_not_matter(value: Any) -> None:
    assert group_key(_reordered(value)) == group_key(value)
    hash(group_key(value))


def test_one_and_one_point_zero_and_true_and_text_are_four_groups() -> None:
    assert len({group_key(value) for value in (1, 1.0, True, "1")}) == 4
    assert group_key({"b": 1, "a": [2, {"y": 0, "x": None}]}) == group_key(
        {"a": [2, {"x": None, "y": 0}], "b": 1}
    )


def test_values_json_writes_alike_are_one_group() -> None:
    assert group_key((1, "a")) == group_key([1, "a"])
    assert group_key(math.nan) == group_key(math.inf) == group_key(None)
    assert group_key(Decimal("1.5")) == group_key("1.5")


def test_values_orjson_refuses_still_get_a_sorted_exact_key() -> None:
    big = 2**70
    assert group_key(big) == str(big) != group_key(float(big))
    assert group_key({"b": Decimal("2"), "a": big}) == group_key({"a": big, "b": Decimal("2")})
    assert group_key({"b": Decimal("2"), "a": big}) == '{"a":' + str(big) + ',"b":"2"}'
    assert group_key({2: "x", 1: b"y"}) == group_key({1: b"y", 2: "x"}) == '{"1":"y","2":"x"}'
    assert group_key([big, 1.0, None]) == "[" + str(big) + ",1.0,null]"


# plain examples


def test_rows_pack_greedily_and_an_oversized_row_closes_the_open_chunk() -> None:
    chunks, chunker = _chunk_all(10, [("a", 4), ("a", 5), ("a", 2), ("a", 30), ("a", 3), ("a", 7)])
    assert [([row["n"] for row in c.rows], c.tokens, c.oversized) for c in chunks] == [
        ([0, 1], 9, False),
        ([2], 2, False),
        ([3], 30, True),
        ([4, 5], 10, False),
    ]
    assert [c.index for c in chunks] == [0, 1, 2, 3]
    assert chunker.groups() == [("a", 6, 4)]


def test_groups_interleave_and_each_keeps_its_own_open_chunk() -> None:
    chunker = Chunker(5, _size)
    assert chunker.add("x", {"n": 0, "size": 3}) == []
    assert chunker.add(None, {"n": 1, "size": 3}) == []
    closed = chunker.add("x", {"n": 2, "size": 3})
    assert [(c.group, c.index, [r["n"] for r in c.rows]) for c in closed] == [("x", 0, [0])]
    assert chunker.groups() == [("x", 2, 1), (None, 1, 0)]
    rest = chunker.finish()
    assert [(c.group, c.index, [r["n"] for r in c.rows]) for c in rest] == [
        ("x", 1, [2]),
        (None, 0, [1]),
    ]
    assert chunker.groups() == [("x", 2, 2), (None, 1, 1)]


def test_a_single_chunk_means_the_group_is_done_in_one_level() -> None:
    chunks, chunker = _chunk_all(100, [("g", 10)] * 5)
    assert len(chunks) == 1 and chunks[0].tokens == 50
    assert chunker.groups() == [("g", 5, 1)]


def test_an_oversized_first_row_leaves_no_empty_chunk_behind() -> None:
    chunks, _ = _chunk_all(3, [("g", 9), ("g", 9), ("g", 1)])
    assert [(len(c.rows), c.oversized) for c in chunks] == [(1, True), (1, True), (1, False)]


def test_the_group_value_is_the_first_one_given() -> None:
    chunks, chunker = _chunk_all(100, [({"b": 1, "a": 2}, 1), ({"a": 2, "b": 1}, 1)])
    assert list(chunks[0].group) == ["b", "a"]
    assert chunker.groups() == [({"b": 1, "a": 2}, 2, 1)]


def test_misuse_is_refused() -> None:
    with pytest.raises(ValueError, match="budget must be 1 or more"):
        Chunker(0, _size)
    chunker = Chunker(5, _size)
    with pytest.raises(ValueError, match="size must be 0 or more"):
        chunker.add("g", {"size": -1})
    chunker.finish()
    with pytest.raises(RuntimeError, match="after finish"):
        chunker.add("g", {"size": 1})
    assert chunker.finish() == []
