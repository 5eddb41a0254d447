"""What a set of outcomes adds up to: the one definition of the job's counts.

A part file's header, the state's totals across parts, and the run's counters
(whole job, earlier attempts, this attempt) are all tallies, so they are counted
and summed by the same code and always agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.models import Outcome, Success


@dataclass(slots=True)
class Tally:
    items: int = 0
    succeeded: int = 0
    cached: int = 0  # answered without a request of their own; their tokens were paid before
    prompt_tokens: int = 0
    completion_tokens: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)  # by error kind
    skipped: int = 0  # left out by --where: never sent; a result row unless dropped

    @classmethod
    def of(cls, outcomes: Iterable[Outcome]) -> Tally:
        tally = cls()
        for outcome in outcomes:
            tally.count(outcome)
        return tally

    def count(self, outcome: Outcome) -> None:
        self.items += 1
        if isinstance(outcome, Success):
            if outcome.skipped:
                self.skipped += 1
                return
            self.succeeded += 1
            if outcome.cached:
                self.cached += 1
                return
            self.prompt_tokens += outcome.usage.prompt_tokens
            self.completion_tokens += outcome.usage.completion_tokens
        else:
            self.quarantined[str(outcome.kind)] += 1

    def add(self, other: Tally) -> None:
        self.items += other.items
        self.succeeded += other.succeeded
        self.cached += other.cached
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.quarantined.update(other.quarantined)
        self.skipped += other.skipped

    def minus(self, other: Tally) -> Tally:
        """What this tally holds beyond `other` (counted within it)."""
        return Tally(
            self.items - other.items,
            self.succeeded - other.succeeded,
            self.cached - other.cached,
            self.prompt_tokens - other.prompt_tokens,
            self.completion_tokens - other.completion_tokens,
            self.quarantined - other.quarantined,
            self.skipped - other.skipped,
        )

    @property
    def failed(self) -> int:
        return sum(self.quarantined.values())

    def as_dict(self) -> dict[str, Any]:
        """As the summary shows it."""
        return {
            "items": self.items,
            "succeeded": self.succeeded,
            "cached": self.cached,
            "quarantined": self.failed,
            "quarantined_by_kind": dict(sorted(self.quarantined.items())),
            "skipped_by_where": self.skipped,
            "tokens": {"prompt": self.prompt_tokens, "completion": self.completion_tokens},
        }
