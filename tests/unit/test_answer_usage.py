"""An answer's usage: the common three counts are read on a short path (answers.py),
which must give what the general reading gives for any `usage` object."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.models import Usage
from pipeline.protocol.answers import _usage

counts = st.one_of(
    st.integers(-3, 10**7), st.booleans(), st.none(), st.floats(0, 10), st.text(max_size=3)
)
usage_objects = st.dictionaries(
    st.sampled_from(
        ["prompt_tokens", "completion_tokens", "total_tokens", "cache_read_input_tokens", "x"]
    ),
    counts,
) | st.builds(
    lambda usage, cached: {**usage, "prompt_tokens_details": {"cached_tokens": cached}},
    st.fixed_dictionaries(
        {"prompt_tokens": counts, "completion_tokens": counts, "total_tokens": counts}
    ),
    counts,
)


def _count(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def _read_in_full(raw: dict[str, Any]) -> Usage:
    prompt = _count(raw.get("prompt_tokens"))
    completion = _count(raw.get("completion_tokens"))
    total = _count(raw.get("total_tokens")) or prompt + completion
    details = raw.get("prompt_tokens_details")
    if isinstance(details, dict) and "cached_tokens" in details:
        cached = _count(details.get("cached_tokens"))
    else:
        cached = _count(raw.get("cache_read_input_tokens"))
    return Usage(prompt, completion, total, min(cached, prompt))


@given(usage_objects)
def test_usage_is_read_alike_on_either_path(raw: dict[str, Any]) -> None:
    assert _usage(raw) == _read_in_full(raw)


def test_a_usage_that_is_not_an_object_counts_nothing() -> None:
    assert _usage(None) == _usage([1, 2]) == Usage()
