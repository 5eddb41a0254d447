"""The values that flow through a run: items in, outcomes out.

Items change as they are read (ids, problems), so they are plain slotted classes.
Outcomes and usage never change once made, and a run makes one or more an item, so
they are NamedTuples: immutable, and built in half a frozen dataclass's time. Code
tells them apart by type (`isinstance`), never by comparing a Success with a Failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pipeline.core.errors import ErrorKind

ItemId = str | int


@dataclass(slots=True)
class Record:
    """One line, JSON array element or Parquet row as read, before ids are assigned.

    `line` counts from 1: the line of JSONL, the element of an array, the row of Parquet.
    """

    source: str
    line: int
    row: dict[str, Any] | None
    raw: str | None = None
    problem: str | None = None
    id: Any = None  # an id given with the record (a quarantine row's), not read from the row
    without_id: bool = False  # a quarantine row's item that had no valid id (its id is null)


@dataclass(slots=True)
class Item:
    """One input record, with where it came from so errors can name it.

    `row` is the parsed object, or None when the line could not be parsed; `raw`
    keeps the original text in that case so the quarantine row can show it.
    `problem` is set when the item is invalid and must never be sent. `id` is
    None when the item's id field holds no valid id: such an item is known by
    its source and line alone, so it can never take another item's id.
    """

    position: int
    source: str
    line: int
    row: dict[str, Any] | None
    id: ItemId | None
    raw: str | None = None
    problem: str | None = None

    @property
    def original(self) -> Any:
        """What the user gave us, to be written back in quarantine rows."""
        return self.row if self.row is not None else self.raw


class Usage(NamedTuple):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    # Within prompt_tokens: served from the provider's prompt cache, at its cached-input
    # price. Used for cost; not written in result rows, which keep the three counts.
    cached_prompt_tokens: int = 0

    @staticmethod
    def total(usages: list[Usage]) -> Usage:
        """The sum of several answers' usage."""
        if len(usages) == 1:
            return usages[0]
        return Usage(
            sum(usage.prompt_tokens for usage in usages),
            sum(usage.completion_tokens for usage in usages),
            sum(usage.total_tokens for usage in usages),
            sum(usage.cached_prompt_tokens for usage in usages),
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


class StepReport(NamedTuple):
    """How one workflow step ended for an item, as its row's `steps` field says."""

    status: str  # answered | cached | skipped (its `when` was false) | failed
    model: str | None = None  # the model that answered it (None for a `call` step)
    answered_by: str | None = None  # the step whose answer it is: itself, or its fallback
    reason: str | None = None  # skipped: the condition; failed: the error

    def as_dict(self) -> dict[str, str | None]:
        return {
            "status": self.status,
            "model": self.model,
            "answered_by": self.answered_by,
            "reason": self.reason,
        }


# An item's steps, in the workflow file's order (None outside workflows).
StepReports = dict[str, StepReport]


class Success(NamedTuple):
    item: Item
    output: Any
    usage: Usage
    cached: bool = False
    attempts: int = 1
    skipped: bool = False  # --where left it out: never sent, output None
    model: str | None = None  # the model whose answer it is (the request's)
    steps: StepReports | None = None  # --workflow: how each step ended; output has each's


class Failure(NamedTuple):
    item: Item
    kind: ErrorKind
    message: str
    status: int | None = None
    attempts: int = 0
    answer: str | None = None  # the model's unusable text (invalid_output), redacted
    # --workflow: the required step that failed, what every step came to, and the outputs
    # of those that did answer (they are cached: a retry pays only for what failed).
    step: str | None = None
    steps: StepReports | None = None
    outputs: dict[str, Any] | None = None


Outcome = Success | Failure


@dataclass(slots=True)
class Batch:
    """Items are dispatched one by one; batches are the unit of writing."""

    index: int
    items: list[Item] = field(default_factory=list)
    digest: str = ""  # of the items as read; a resume checks the input still holds them
