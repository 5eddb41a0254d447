from __future__ import annotations

from typing import Any

import pytest

from pipeline.protocol.token_count import TOKENS_PER_MESSAGE, completion_cap, prompt_tokens
from pipeline.traffic.tokens import PRIOR_COMPLETION_TOKENS, CompletionAverage, expected_tokens


def chat(*contents: Any, **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": c} for c in contents], **fields}


def test_chat_prompt_counts_four_chars_per_token_rounded_up_plus_overhead() -> None:
    assert prompt_tokens(chat("abcdefgh")) == 2 + TOKENS_PER_MESSAGE
    assert prompt_tokens(chat("abcde", "")) == (2 + TOKENS_PER_MESSAGE) + TOKENS_PER_MESSAGE


def test_chat_prompt_joins_the_text_parts_of_list_content() -> None:
    parts = [
        {"type": "text", "text": "abcd"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "text", "text": "efgh"},
    ]
    assert prompt_tokens(chat(parts)) == 2 + TOKENS_PER_MESSAGE


def test_chat_message_without_text_costs_only_the_overhead() -> None:
    assert prompt_tokens(chat(None)) == TOKENS_PER_MESSAGE


def test_embeddings_prompt_from_a_string() -> None:
    assert prompt_tokens({"input": "a" * 9}) == 3


def test_embeddings_prompt_from_a_list_sums_each_entry() -> None:
    assert prompt_tokens({"input": ["abcd", "abcde"]}) == 1 + 2


def test_body_without_prompt_costs_nothing() -> None:
    assert prompt_tokens({"model": "m"}) == 0


@pytest.mark.parametrize(
    ("fields", "cap"),
    [
        ({"max_tokens": 100}, 100),
        ({"max_completion_tokens": 50}, 50),
        ({"max_completion_tokens": 50, "max_tokens": 100}, 50),
        ({"max_tokens": 100, "n": 3}, 300),
        ({"max_tokens": 100, "n": 0}, 100),
        ({"max_tokens": 100, "n": "2"}, 100),
        ({}, None),
    ],
)
def test_completion_cap_reads_the_limit_and_choices(fields: dict[str, Any], cap: int) -> None:
    assert completion_cap(chat("hi", **fields)) == cap


@pytest.mark.parametrize("bad", [True, False, 0, -5, 1.5, "100", None])
def test_completion_cap_ignores_invalid_limits(bad: Any) -> None:
    assert completion_cap(chat("hi", max_tokens=bad)) is None
    assert completion_cap(chat("hi", max_completion_tokens=bad)) is None


def test_a_null_max_completion_tokens_does_not_hide_max_tokens() -> None:
    assert completion_cap({"max_completion_tokens": None, "max_tokens": 100}) == 100


def test_completion_average_starts_at_the_prior() -> None:
    assert CompletionAverage().mean == PRIOR_COMPLETION_TOKENS
    assert CompletionAverage(prior=40.0).mean == 40.0


def test_completion_average_moves_to_the_real_mean() -> None:
    average = CompletionAverage(prior=100.0)
    average.add(50)
    assert average.mean == 75.0
    for _ in range(1000):
        average.add(10)
    assert average.mean == pytest.approx(10.0, abs=0.2)


def test_expected_tokens_uses_the_cap_when_set() -> None:
    body = chat("abcdefgh", max_tokens=30)
    assert expected_tokens(body, CompletionAverage(prior=500.0), chat=True) == 6 + 30


def test_expected_tokens_uses_the_running_mean_without_a_cap() -> None:
    average = CompletionAverage(prior=20.0)
    average.add(40)
    assert expected_tokens(chat("abcdefgh"), average, chat=True) == 6 + 30.0


def test_embeddings_expect_no_completion() -> None:
    body = {"input": "a" * 8, "max_tokens": 100}
    assert expected_tokens(body, CompletionAverage(), chat=False) == 2.0
