"""Which of an item's steps may start, and what the item has come to (pure; no I/O).

An item's steps run as soon as their dependencies have finished, not in lockstep
per batch: `ready` names the steps whose every dependency is over. A dependency
that was skipped (its `when` was false) or failed while optional leaves a null
output, and the steps after it still run (their own `when` decides). A required
step that fails ends the item: nothing new starts, and the item is quarantined
naming that step, with the outputs the other steps did produce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pipeline.workflow.steps import Workflow


class StepState(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    ANSWERED = "answered"
    SKIPPED = "skipped"  # its `when` was false: never sent
    FAILED = "failed"


OVER = frozenset({StepState.ANSWERED, StepState.SKIPPED, StepState.FAILED})


@dataclass(slots=True)
class ItemSteps:
    """One item's way through the workflow."""

    workflow: Workflow
    states: dict[str, StepState] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    failed_step: str | None = None  # the required step that failed, ending the item

    def __post_init__(self) -> None:
        for name in self.workflow.steps:
            self.states.setdefault(name, StepState.WAITING)

    def ready(self) -> list[str]:
        """Steps that may start now, in the workflow's order; none once the item failed."""
        if self.failed_step is not None:
            return []
        return [
            name
            for name in self.workflow.runs
            if self.states[name] is StepState.WAITING
            and all(self.states[before] in OVER for before in self.workflow.steps[name].after)
        ]

    def started(self, name: str) -> None:
        self.states[name] = StepState.RUNNING

    def answered(self, name: str, output: Any) -> None:
        self.states[name] = StepState.ANSWERED
        self.outputs[name] = output

    def skipped(self, name: str) -> None:
        self.states[name] = StepState.SKIPPED

    def failed(self, name: str) -> None:
        self.states[name] = StepState.FAILED
        if not self.workflow.steps[name].optional and self.failed_step is None:
            self.failed_step = name

    @property
    def over(self) -> bool:
        """No step runs and none will start: the item has its outcome."""
        running = any(state is StepState.RUNNING for state in self.states.values())
        return not running and not self.ready()

    def view(self) -> dict[str, dict[str, Any]]:
        """What templates and conditions see as `steps`: each finished step's output
        (null for a step skipped, failed or not yet run)."""
        return {name: {"output": self.outputs.get(name)} for name in self.workflow.steps}
