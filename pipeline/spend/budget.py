"""Budgets: the most a job may spend (`--max-cost`, `--max-requests`, `--deadline`).

Each budget covers the whole job, every attempt of it together (the ledger
carries what earlier attempts spent), so a job resumed by cron every night
cannot spend more than it was given. When a budget is reached the run stops
sending, lets the requests in flight land, commits and exits 3; the same
command with a larger budget continues.

The decisions are pure (`budget_reached`, `deadline_left`); `BudgetGate` keeps
the dollars reserved by requests in flight, so the run stops before the request
that would pass `--max-cost` by its estimate, never after.
"""

from __future__ import annotations

from typing import Any

from pipeline.core.config import SpendConfig
from pipeline.core.errors import BudgetReached, ConfigError
from pipeline.core.words import counted, money
from pipeline.protocol.token_count import completion_cap, prompt_tokens
from pipeline.spend.ledger import Ledger, Spent


def budget_reached(
    budgets: SpendConfig, spent: Spent, reserved_usd: float, next_usd: float
) -> BudgetReached | None:
    """Whether one more request, expected to cost `next_usd`, would pass a budget, given
    what the job spent and what the requests in flight are expected to cost."""
    if budgets.max_requests is not None and spent.requests + 1 > budgets.max_requests:
        return BudgetReached(
            "max_requests",
            f"--max-requests {budgets.max_requests:,} reached "
            f"({counted(spent.requests, 'request')} sent for this job)",
        )
    limit = budgets.max_cost
    if limit is not None and spent.cost_usd + reserved_usd + next_usd > limit:
        return BudgetReached(
            "max_cost",
            f"--max-cost {money(limit)} reached ({money(spent.cost_usd)} spent by this job; "
            f"the next request would pass it)",
        )
    return None


def deadline_left(budgets: SpendConfig, spent: Spent) -> float | None:
    """Seconds the job may still run; None without a deadline."""
    if budgets.deadline is None:
        return None
    return max(0.0, budgets.deadline - spent.seconds)


def deadline_reached(budgets: SpendConfig) -> BudgetReached:
    return BudgetReached(
        "deadline",
        f"--deadline {_duration(budgets.deadline or 0)} reached (the job's attempts together "
        "have run that long)",
    )


class BudgetGate:
    """Asked before every attempt: may it go? Keeps what attempts in flight reserved."""

    def __init__(self, budgets: SpendConfig, ledger: Ledger) -> None:
        self.budgets = budgets
        self._ledger = ledger
        self._reserved = 0.0

    def admit(self, body: dict[str, Any], model: str | None, chat: bool) -> float:
        """The dollars reserved for this attempt; BudgetReached when it may not go."""
        estimate = 0.0
        if self.budgets.max_cost is not None:
            price = self._ledger.pricing.price_of(model)
            if price is None:
                raise ConfigError(f"--max-cost needs a price for {model!r}: {UNPRICED_HINT}")
            expected = completion_cap(body) if chat else 0
            if expected is None:
                expected = round(self._ledger.completions.mean)
            estimate = price.cost(prompt_tokens(body), expected)
        reached = budget_reached(self.budgets, self._ledger.job, self._reserved, estimate)
        if reached is not None:
            raise reached
        self._reserved += estimate
        return estimate

    def settle(self, reserved: float) -> None:
        """The attempt is over; what it really cost is in the ledger."""
        self._reserved = max(0.0, self._reserved - reserved)


UNPRICED_HINT = "the price table does not list it; give --price-in and --price-out"


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
