"""Encoding any value an input can hold: the same bytes whichever way orjson is asked."""

from __future__ import annotations

import datetime
import decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.jsonio import _fallback, dumps, dumps_lines

# What Parquet and JSON inputs hold: plain values, Decimals, bytes, durations, and maps
# whose keys are strings or (from Parquet) integers.
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.binary(max_size=8),
    st.timedeltas(max_value=datetime.timedelta(days=9999)),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
        st.dictionaries(st.integers(-5, 5), inner, max_size=3),
    ),
    max_leaves=12,
)
rows = st.dictionaries(st.text(max_size=4), values, max_size=4)


def _reference(value: Any, option: int = 0) -> bytes:
    return orjson.dumps(value, default=_fallback, option=option | orjson.OPT_NON_STR_KEYS)


@given(values)
def test_a_value_encodes_as_with_non_string_keys_allowed_throughout(value: Any) -> None:
    assert dumps(value) == _reference(value)


@given(st.lists(rows, max_size=4))
def test_rows_encode_one_a_line_as_with_non_string_keys_allowed(many: list[dict[str, Any]]) -> None:
    expected = b"".join(_reference(row, orjson.OPT_APPEND_NEWLINE) for row in many)
    assert dumps_lines(many) == expected


def test_a_value_json_cannot_hold_is_still_refused() -> None:
    with pytest.raises(orjson.JSONEncodeError):
        dumps({"when": {1, 2}, 3: "three"})  # a set: JSON has none
    with pytest.raises(orjson.JSONEncodeError):
        dumps_lines([{"x": object()}])
    assert dumps({1: decimal.Decimal("1.10")}) == b'{"1":"1.10"}'
