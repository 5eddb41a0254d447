"""Cost from token counts and the price table: never guessed, never zero for an unknown model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.spend.prices import Price, parse_table, shipped_table

tokens = st.integers(0, 10**9)
rates = st.floats(0, 1000, allow_nan=False)


@given(rates, rates, tokens, tokens)
def test_cost_is_tokens_times_the_price_per_million(
    rate_in: float, rate_out: float, prompt: int, completion: int
) -> None:
    cost = Price(rate_in, rate_out).cost(prompt, completion)
    assert cost == pytest.approx((prompt * rate_in + completion * rate_out) / 1_000_000)
    assert cost >= 0


@given(rates, rates, tokens, tokens, st.integers(-5, 10**9))
def test_cached_prompt_tokens_cost_their_own_price_and_never_more_than_the_prompt(
    rate_in: float, cached_rate: float, prompt: int, completion: int, cached: int
) -> None:
    price = Price(rate_in, 1.0, cached_rate)
    counted = min(max(cached, 0), prompt)
    expected = ((prompt - counted) * rate_in + counted * cached_rate + completion) / 1_000_000
    assert price.cost(prompt, completion, cached) == pytest.approx(expected)


def test_without_a_cached_price_cached_tokens_cost_as_any_input() -> None:
    price = Price(2.0, 8.0)
    assert price.cost(1000, 0, cached_prompt_tokens=600) == price.cost(1000, 0)


def test_the_shipped_table_is_dated_and_prices_common_models() -> None:
    table = shipped_table()
    assert len(table.checked) == 10 and table.checked[4] == "-"
    for model in ("gpt-4o-mini", "claude-3-5-haiku", "mistral-small-latest",
                  "llama-3.1-8b-instant", "meta-llama/Llama-3.3-70B-Instruct-Turbo"):  # fmt: skip
        assert table.price_of(model) is not None, model
    gpt_4o = table.price_of("gpt-4o")
    assert gpt_4o is not None and gpt_4o.cached_input is not None
    assert gpt_4o.cached_input < gpt_4o.input


@pytest.mark.parametrize(
    ("asked", "priced_as"),
    [
        ("GPT-4o", "gpt-4o"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        (
            "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
            "meta-llama/llama-3.3-70b-instruct-turbo",
        ),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
    ],
)
def test_a_model_is_found_without_its_provider_prefix_or_date(asked: str, priced_as: str) -> None:
    table = shipped_table()
    assert table.price_of(asked) == table.prices[priced_as]


@pytest.mark.parametrize("model", [None, "", "sim-chat", "gpt-5-imaginary", "llama3:8b"])
def test_an_unknown_model_is_unpriced_never_free(model: str | None) -> None:
    assert shipped_table().price_of(model) is None


def test_an_override_prices_a_model_the_table_does_not_know_and_wins_over_it() -> None:
    table = shipped_table().with_override("sim-chat", Price(1.0, 2.0))
    assert table.price_of("sim-chat") == Price(1.0, 2.0)
    cheaper = table.with_override("gpt-4o", Price(0.5, 0.5))
    assert cheaper.price_of("gpt-4o-2024-08-06") == Price(0.5, 0.5)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('{"models": {"m": {"input": 1, "output": 2}}}', "checked"),
        ('{"checked": "2025-01-01", "models": {"m": {"input": -1, "output": 2}}}', "input of 'm'"),
        ('{"checked": "2025-01-01", "models": {"m": {"input": 1}}}', "output of 'm'"),
        ('{"checked": "2025-01-01", "models": {"m": {"input": 1, "output": 2, "in": 3}}}', "'in'"),
        (
            '{"checked": "2025-01-01", "models": {"m": {"input": true, "output": 2}}}',
            "input of 'm'",
        ),
        ('{"checked": "2025-01-01", "models": {"m": [1, 2]}}', "price of 'm' must be an object"),
        ('{"checked": "2025-01-01", "models": []}', "object of models"),
        ('["checked"]', "must be a JSON object"),
        ('checked = "2025-01-01"', "not JSON"),
    ],
)
def test_a_bad_price_table_says_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_table(text)
