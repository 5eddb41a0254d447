"""Counts agree with their nouns in every message."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.words import counted


def test_one_is_singular_and_everything_else_plural() -> None:
    assert counted(1, "request") == "1 request"
    assert counted(0, "request") == "0 requests"
    assert counted(2, "batch") == "2 batches"
    assert counted(1_000, "input item") == "1,000 input items"
    assert counted(3, "retry held back", "retries held back") == "3 retries held back"


@given(st.integers(min_value=0, max_value=10**9))
def test_the_count_is_written_in_full_with_separators(count: int) -> None:
    text = counted(count, "entry")
    number, word = text.split(" ")
    assert int(number.replace(",", "")) == count
    assert word == ("entry" if count == 1 else "entries")
