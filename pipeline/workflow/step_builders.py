"""Each workflow step's requests, made from the item's fields and the earlier steps' outputs.

The steps that read no other step's output are rendered in the reader thread with
the rest of the batch (`build`, for the Preparer): a template that fits no item of
the first batch then stops the run before anything is sent, as a run's does. The
others are rendered on the loop once the steps they read have answered (`request`).

What a template or a `when` sees is the item's fields plus `steps`: each step's
output by name (null while not run, skipped or failed). An item field named
`steps` is hidden from a workflow's templates by it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeline.core.config import RequestConfig
from pipeline.core.errors import ConfigError
from pipeline.core.models import Item
from pipeline.prepare.preparer import SKIPPED, Skipped, Staged
from pipeline.prepare.request_builder import InvalidItem, Request, RequestBuilder
from pipeline.prepare.where import WhereEvalError
from pipeline.workflow.requests import step_request
from pipeline.workflow.steps import Workflow

StepsView = Mapping[str, Mapping[str, Any]]
Call = Callable[[dict[str, Any]], Any]  # a `call` step's function: fields in, output out


class StepBuilders:
    """The Preparer's builder for a workflow run (see prepare/preparer.py ItemRequests)."""

    def __init__(self, run: RequestConfig, workflow: Workflow, calls: Mapping[str, Call]) -> None:
        self.workflow = workflow
        self.calls = calls  # by step name, for the steps answered by a function
        self._run = RequestBuilder(run)  # the run's --where
        self._builders = {
            name: RequestBuilder(step_request(run, step))
            for name, step in workflow.steps.items()
            if step.call is None
        }
        self._first = [name for name in workflow.runs if not workflow.steps[name].after]
        for name, step in workflow.steps.items():
            stand_in = self._builders.get(step.fallback or "")
            primary = self._builders.get(name)
            if stand_in and primary and stand_in.config.model == primary.config.model:
                raise ConfigError(
                    f"workflow: steps.{step.fallback} stands in for steps.{name} while its "
                    f"model's breaker is open, so it must ask another model than "
                    f"{primary.config.model!r} (or be a call)"
                )
        self._nothing_yet = {name: {"output": None} for name in workflow.steps}

    def wanted(self, item: Item) -> bool:
        return self._run.wanted(item)

    def prepare(self, item: Item) -> Staged:
        """The first steps' requests; InvalidItem when a required one cannot be made."""
        first: dict[str, Request | Skipped | str | None] = {}
        for name in self._first:
            made = self.request(name, item, self._nothing_yet)
            if isinstance(made, str) and not self.workflow.steps[name].optional:
                raise InvalidItem(f"step {name}: {made}")
            first[name] = made
        return Staged(first)

    def fields(self, item: Item, steps: StepsView) -> dict[str, Any]:
        return {**(item.row or {}), "steps": steps}

    def request(
        self, name: str, item: Item, steps: StepsView, check_when: bool = True
    ) -> Request | Skipped | str | None:
        """The step's request; SKIPPED when its `when` is false; or why it cannot be made.
        A `call` step has no request: None says its `when` let it go."""
        fields = self.fields(item, steps)
        when = self.workflow.steps[name].when if check_when else None
        try:
            if when is not None and not when.matches(fields):
                return SKIPPED
        except WhereEvalError as exc:
            return str(exc)
        builder = self._builders.get(name)
        if builder is None:
            return None
        try:
            return builder.build(item, fields)
        except InvalidItem as exc:
            return str(exc)
