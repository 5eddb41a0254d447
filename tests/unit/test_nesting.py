"""Items nested past what can be written again are invalid input, never a crash."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pipeline.read.nesting import MAX_ITEM_DEPTH, TOO_DEEP, may_nest_too_deeply, nests_too_deeply
from pipeline.read.sources import parse_jsonl_line


def _nested(depth: int, kinds: list[bool]) -> dict:
    """An object `depth` levels deep, each level an object or an array (kinds cycle)."""
    value: object = "leaf"
    for level in range(depth - 1):
        value = {"k": value} if kinds[level % len(kinds)] else [value]
    return {"top": value}


@given(depth=st.integers(1, MAX_ITEM_DEPTH + 60), kinds=st.lists(st.booleans(), min_size=1))
def test_depth_is_measured_exactly_and_the_cheap_bound_never_misses(
    depth: int, kinds: list[bool]
) -> None:
    value = _nested(depth, kinds)
    assert nests_too_deeply(value) == (depth > MAX_ITEM_DEPTH)
    line = orjson.dumps(value) if depth < 250 else None
    if line is not None and nests_too_deeply(value):
        assert may_nest_too_deeply(line)


def test_every_item_within_the_limit_can_be_written_inside_another_value() -> None:
    deepest = _nested(MAX_ITEM_DEPTH, [True, False])
    assert orjson.dumps({"item": [deepest]})  # a quarantine row or a digest wraps it


def test_a_line_nested_too_deeply_is_an_invalid_item_with_its_text_kept() -> None:
    line = b'{"a":' * 300 + b"1" + b"}" * 300 + b"\n"
    record = parse_jsonl_line(line, "deep.jsonl", 7)
    assert record.row is None and record.problem == TOO_DEEP
    assert record.raw == line.decode().rstrip("\n") and record.line == 7
