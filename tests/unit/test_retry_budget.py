from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.traffic.retry_policy import DEFAULT_RESERVE, TRICKLE_PER_SECOND, RetryBudget


def spends(budget: RetryBudget, now: float, attempts: int = 100) -> int:
    """How many retries the budget grants at `now`, out of `attempts` tries."""
    return sum(budget.try_spend(now) for _ in range(attempts))


def test_starts_with_the_reserve() -> None:
    assert spends(RetryBudget(0.0, now=0.0, reserve=3.0), 0.0) == 3
    assert spends(RetryBudget(0.0, now=0.0), 0.0) == DEFAULT_RESERVE


def test_each_first_attempt_earns_ratio_of_a_retry() -> None:
    budget = RetryBudget(0.5, now=0.0, reserve=4.0)
    assert spends(budget, 0.0) == 4
    for _ in range(6):
        budget.on_first_attempt()
    assert spends(budget, 0.0) == 3


def test_earnings_are_capped_at_the_reserve() -> None:
    budget = RetryBudget(1.0, now=0.0, reserve=2.0)
    for _ in range(50):
        budget.on_first_attempt()
    assert spends(budget, 0.0) == 2


def test_trickle_refills_over_time() -> None:
    budget = RetryBudget(0.0, now=0.0, reserve=3.0)
    assert spends(budget, 0.0) == 3
    assert not budget.try_spend(0.5)
    assert spends(budget, 1.0 / TRICKLE_PER_SECOND) == 1
    assert spends(budget, 3.0 / TRICKLE_PER_SECOND) == 2


def test_trickle_is_capped_at_the_reserve() -> None:
    budget = RetryBudget(0.0, now=0.0, reserve=3.0)
    assert spends(budget, 0.0) == 3
    assert spends(budget, 1000.0) == 3


def test_no_wait_while_a_retry_is_available() -> None:
    assert RetryBudget(0.0, now=0.0, reserve=1.0).seconds_until_available(0.0) == 0.0


@given(
    start=st.integers(min_value=0, max_value=4000).map(lambda k: k / 4),
    ratio=st.sampled_from([0.0, 0.25, 0.5]),
    first_attempts=st.integers(min_value=0, max_value=3),
)
def test_waiting_seconds_until_available_lets_a_spend_succeed(
    start: float, ratio: float, first_attempts: int
) -> None:
    # Quarter-second times and ratios keep the arithmetic exact.
    budget = RetryBudget(ratio, now=start, reserve=2.0)
    assert spends(budget, start) == 2
    for _ in range(first_attempts):
        budget.on_first_attempt()
    wait = budget.seconds_until_available(start)
    if wait > 0:
        assert not budget.try_spend(start + wait / 2)
    assert budget.try_spend(start + wait)


def test_waiting_seconds_until_available_survives_float_rounding() -> None:
    budget = RetryBudget(0.0, now=0.9, reserve=1.0)
    assert budget.try_spend(0.9)
    wait = budget.seconds_until_available(0.9)
    assert wait == 1.0
    assert budget.try_spend(0.9 + wait)


def test_negative_ratio_is_rejected() -> None:
    with pytest.raises(ValueError):
        RetryBudget(-0.1, now=0.0)


TIME_STEP = st.floats(min_value=0.0, max_value=5.0)
OPERATIONS = st.lists(st.just("first") | st.just("retry") | TIME_STEP, max_size=300)


@given(
    ratio=st.floats(min_value=0.0, max_value=2.0),
    reserve=st.floats(min_value=0.0, max_value=20.0),
    operations=OPERATIONS,
)
def test_spends_never_exceed_reserve_plus_earnings_plus_trickle(
    ratio: float, reserve: float, operations: list[str | float]
) -> None:
    budget = RetryBudget(ratio, now=0.0, reserve=reserve)
    now = 0.0
    first_attempts = spent = 0
    for operation in operations:
        if operation == "first":
            first_attempts += 1
            budget.on_first_attempt()
        elif operation == "retry":
            spent += budget.try_spend(now)
        else:
            now += operation
        allowed = reserve + ratio * first_attempts + TRICKLE_PER_SECOND * now
        assert spent <= allowed + 1e-9
