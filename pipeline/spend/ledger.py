"""What a job has spent: requests sent, dollars paid and saved, time run (no I/O).

The `Ledger` is a consumer of the run's events (core/events.py): every request
sent and every answer's `usage` is counted as it happens, whether or not its
batch is ever committed, because it was paid for either way. What earlier
attempts of the same job spent comes from the state directory (`Spent`, see
state/spent.py), so budgets and the job's total cost span resumes.

In a workflow (--workflow) each event names its step, and the ledger keeps each
step's share of this attempt's cost as well (`steps`): what its attempts paid and
what its reused answers would have cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from pipeline.core.events import AnswerReused, AttemptEnded, Event, RequestSent
from pipeline.core.models import Usage
from pipeline.spend.prices import Pricing
from pipeline.traffic.tokens import CompletionAverage


class Spent(NamedTuple):
    """A job's spending so far. `cost_usd` counts priced answers only; when any answer
    was unpriced, `unpriced_answers` says how many, and the total is not known."""

    requests: int = 0
    cost_usd: float = 0.0
    unpriced_answers: int = 0
    seconds: float = 0.0  # time the job's attempts ran, for --deadline

    def plus(self, other: Spent) -> Spent:
        return Spent(
            self.requests + other.requests,
            self.cost_usd + other.cost_usd,
            self.unpriced_answers + other.unpriced_answers,
            self.seconds + other.seconds,
        )

    @property
    def cost(self) -> float | None:
        """USD, or None when some answer could not be priced."""
        return None if self.unpriced_answers else self.cost_usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cost_usd": self.cost_usd,
            "unpriced_answers": self.unpriced_answers,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Spent:
        """ValueError unless `data` is what `as_dict` wrote."""
        if set(data) != {"requests", "cost_usd", "unpriced_answers", "seconds"}:
            raise ValueError("unexpected fields")
        counts = (data["requests"], data["unpriced_answers"])
        amounts = (data["cost_usd"], data["seconds"])
        if not all(type(n) is int and n >= 0 for n in counts):
            raise ValueError("counts must be whole numbers, 0 or more")
        if not all(type(x) in (int, float) and math.isfinite(x) and x >= 0 for x in amounts):
            raise ValueError("amounts must be numbers, 0 or more")
        return cls(
            data["requests"],
            float(data["cost_usd"]),
            data["unpriced_answers"],
            float(data["seconds"]),
        )


@dataclass(slots=True)
class StepSpend:
    """One workflow step's share of this attempt: USD paid for its attempts, and what its
    reused answers would have cost; each unknown (None) when some answer was unpriced."""

    paid_usd: float = 0.0
    unpriced_answers: int = 0
    saved_usd: float = 0.0
    unpriced_reuses: int = 0

    @property
    def cost(self) -> float | None:
        return None if self.unpriced_answers else self.paid_usd

    @property
    def saved(self) -> float | None:
        return None if self.unpriced_reuses else self.saved_usd


_COUNTED = frozenset({RequestSent, AttemptEnded, AnswerReused})


class Ledger:
    """This attempt's spending on top of `earlier`; fed by events, read by budgets and
    the summary."""

    def __init__(self, pricing: Pricing, earlier: Spent | None = None) -> None:
        self.pricing = pricing
        self.earlier = earlier or Spent()
        self.requests = 0
        self.paid_usd = 0.0
        self.unpriced_answers = 0
        self.seconds = 0.0
        self.saved_usd = 0.0  # what the answers reused from the cache would have cost
        self.unpriced_reuses = 0
        self.cached_prompt_tokens = 0  # within paid prompts: the provider's own prompt cache
        self.completions = CompletionAverage()  # answer lengths, for budget estimates
        self.steps: dict[str, StepSpend] = {}  # --workflow: by step, as first heard of

    takes: ClassVar[frozenset[type]] = _COUNTED

    def emit(self, event: Event) -> None:
        if type(event) not in _COUNTED:
            return
        if isinstance(event, RequestSent):
            self.requests += 1
        elif isinstance(event, AttemptEnded):
            if event.usage is not None:  # an answer reported its tokens: paid for
                self._paid(event.model, event.usage, event.step)
        elif isinstance(event, AnswerReused):
            self._reused(event.model, event.usage, event.step, event.answers)

    def _paid(self, model: str | None, usage: Usage, step: str | None) -> None:
        self.completions.add(usage.completion_tokens)
        self.cached_prompt_tokens += usage.cached_prompt_tokens
        share = None if step is None else self._step(step)
        price = self.pricing.price_of(model)
        if price is None:
            self.unpriced_answers += 1
            if share is not None:
                share.unpriced_answers += 1
            return
        usd = price.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_prompt_tokens)
        self.paid_usd += usd
        if share is not None:
            share.paid_usd += usd

    def _reused(self, model: str | None, usage: Usage, step: str | None, answers: int) -> None:
        share = None if step is None else self._step(step)
        price = self.pricing.price_of(model)
        if price is None:
            self.unpriced_reuses += answers
            if share is not None:
                share.unpriced_reuses += answers
            return
        usd = price.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_prompt_tokens)
        self.saved_usd += usd
        if share is not None:
            share.saved_usd += usd

    def _step(self, name: str) -> StepSpend:
        share = self.steps.get(name)
        if share is None:
            share = self.steps[name] = StepSpend()
        return share

    def ran_for(self, seconds: float) -> None:
        """This attempt has run `seconds` so far (for --deadline across resumes)."""
        self.seconds = seconds

    @property
    def attempt(self) -> Spent:
        return Spent(self.requests, self.paid_usd, self.unpriced_answers, self.seconds)

    @property
    def job(self) -> Spent:
        """The whole job: earlier attempts and this one."""
        return self.earlier.plus(self.attempt)

    @property
    def saved(self) -> float | None:
        """USD the reused answers would have cost; None when some could not be priced."""
        return None if self.unpriced_reuses else self.saved_usd
