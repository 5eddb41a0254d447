"""A workflow run's counters step by step (--workflow), kept by reading its events.

Every request, answer and reused answer of a workflow names its step (core/events.py),
and each step's end for an item is a `StepEnded`. `StepStats` turns them into one
`StepCounts` per step, as `RunStats` (counters.py) does for the whole run, and keeps
them apart the same way: tokens of attempts (paid for, whatever became of the answer)
and tokens of reused answers (from the cache, or an identical request in flight: paid
before, or by another item) are never added together.

These count this attempt of the job only: steps that ended in an earlier attempt of
a resumed job are in its own summary. Outside workflows no event names a step and
`StepStats` stays empty.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipeline.core.events import AnswerReused, AttemptEnded, RequestSent, StepEnded
from pipeline.core.models import Usage

if TYPE_CHECKING:  # counters.py holds both the sample and the RunStats that holds these
    from pipeline.observe.counters import LatencySample

# How a step can end for an item, as the rows' `steps` field says (StepEnded.status).
STEP_STATUSES = ("answered", "cached", "skipped", "failed", "not_run")


@dataclass(slots=True)
class TokenCounts:
    prompt: int = 0
    completion: int = 0

    def add(self, usage: Usage) -> None:
        self.prompt += usage.prompt_tokens
        self.completion += usage.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {"prompt": self.prompt, "completion": self.completion}


@dataclass(slots=True)
class StepCounts:
    """One step's share of the run."""

    latencies: LatencySample  # of attempts that got an answer (any status)
    requests: int = 0  # attempts sent
    retries: int = 0  # attempts that repeated an earlier one of the same item
    statuses: Counter[str] = field(default_factory=Counter)  # items, by how the step ended
    paid_tokens: TokenCounts = field(default_factory=TokenCounts)  # of attempts' answers
    reused_tokens: TokenCounts = field(default_factory=TokenCounts)  # of reused answers


class StepStats:
    """Each step's counts, in the order a step was first heard of. `new_sample` makes
    each step's latency sample (counters.LatencySample)."""

    __slots__ = ("_new_sample", "_steps")

    def __init__(self, new_sample: Callable[[], LatencySample]) -> None:
        self._new_sample = new_sample
        self._steps: dict[str, StepCounts] = {}

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def get(self, step: str) -> StepCounts | None:
        return self._steps.get(step)

    def of(self, step: str) -> StepCounts:
        counts = self._steps.get(step)
        if counts is None:
            counts = self._steps[step] = StepCounts(self._new_sample())
        return counts

    def sent(self, event: RequestSent) -> None:
        if event.step is None:
            return
        counts = self.of(event.step)
        counts.requests += 1
        if event.attempt > 1:
            counts.retries += 1

    def attempt_ended(self, event: AttemptEnded) -> None:
        if event.step is None:
            return
        counts = self.of(event.step)
        if event.usage is not None:  # an answer reported its tokens: paid for
            counts.paid_tokens.add(event.usage)
        if event.latency is not None:  # an answer came (any status)
            counts.latencies.add(event.latency)

    def reused(self, event: AnswerReused) -> None:
        if event.step is not None:
            self.of(event.step).reused_tokens.add(event.usage)

    def ended(self, event: StepEnded) -> None:
        self.of(event.step).statuses[event.status] += 1
