"""One item's way through a workflow: each step asked as soon as its inputs are ready.

Steps that do not depend on each other are in flight together; each goes through
the same road as a run's request (its answer looked up in the cache, an identical
request in flight joined, the dispatcher's limits, retries and breaker), under
its own model's limits. What each step came to is kept in a StepReport, and the
item ends as one Success (every step's output by name) or, when a required step
failed, one Failure naming it, with the outputs the other steps did give: those
are in the cache, so a `sluice retry` pays only for what failed.

The order of events inside an item (which step starts when) is decided by
schedule.ItemSteps; this module only drives it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from pipeline.cache.memo import ResponseMemo, served
from pipeline.core.errors import ErrorKind
from pipeline.core.events import AnswerReused, EventSink, StepEnded
from pipeline.core.models import Failure, Item, Outcome, StepReport, Success, Usage
from pipeline.dispatch.dispatcher import Dispatcher, Diverted, Fallback
from pipeline.prepare.preparer import Skipped, Staged
from pipeline.prepare.request_builder import Request
from pipeline.workflow.calls import called
from pipeline.workflow.schedule import ItemSteps
from pipeline.workflow.step_builders import StepBuilders

NOT_RUN = "not_run"  # a step that never started: a required step before it failed
# A step's outcome, and the step that answered it: itself, or its fallback.
Answered = tuple[Outcome, str]


class WorkflowRunner:
    def __init__(
        self,
        builders: StepBuilders,
        dispatcher: Dispatcher,
        memo: ResponseMemo | None,
        events: EventSink,
    ) -> None:
        self._builders = builders
        self._workflow = builders.workflow
        self._dispatcher = dispatcher
        self._memo = memo
        self._events = events

    async def run(self, item: Item, staged: Staged, batch: int, queued: float) -> Outcome:
        """The item's outcome once no step runs and none can start."""
        walk = _ItemWalk(item, ItemSteps(self._workflow))
        asking: dict[asyncio.Task[Answered], str] = {}
        try:
            while True:
                for name in walk.steps.ready():
                    made = (
                        staged.first.pop(name) if name in staged.first else self._made(walk, name)
                    )
                    ask = self._start(walk, name, made, batch, queued, staged)
                    if ask is not None:
                        asking[asyncio.create_task(ask)] = name
                if not asking:
                    break
                done, _ = await asyncio.wait(asking, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    name = asking.pop(task)
                    self._settle(walk, name, *task.result())
        finally:
            await _cancelled(asking)
        for name in self._workflow.outputs:
            if name not in walk.reports:  # a required step before it failed
                self._events.emit(StepEnded(name, NOT_RUN))
        return walk.outcome(self._workflow.outputs)

    def _made(self, walk: _ItemWalk, name: str) -> Request | Skipped | str | None:
        return self._builders.request(name, walk.item, walk.steps.view())

    def _start(
        self,
        walk: _ItemWalk,
        name: str,
        made: Request | Skipped | str | None,
        batch: int,
        queued: float,
        staged: Staged,
    ) -> Coroutine[Any, Any, Answered] | None:
        """The asking of step `name`, or None when it is over at once (skipped, not
        renderable, answered by its function)."""
        walk.steps.started(name)
        step = self._workflow.steps[name]
        if isinstance(made, Skipped):
            when = step.when.text if step.when is not None else ""
            walk.skipped(name, f"its condition is false: {when}")
            self._events.emit(StepEnded(name, "skipped"))
        elif isinstance(made, str):
            self._settle(walk, name, Failure(walk.item, ErrorKind.INVALID_INPUT, made), name)
        elif made is None:
            self._settle(walk, name, *self._call(walk, name))
        else:
            return self._ask(walk, name, made, batch, queued, staged)
        return None

    def _call(self, walk: _ItemWalk, name: str) -> Answered:
        """Step `name` answered by its function (`call`)."""
        output, why = called(self._builders.calls[name], walk.fields(self._builders))
        if why is not None:
            return Failure(walk.item, ErrorKind.INVALID_OUTPUT, why), name
        return Success(walk.item, output, Usage(), attempts=0), name

    async def _ask(
        self,
        walk: _ItemWalk,
        name: str,
        request: Request,
        batch: int,
        queued: float,
        staged: Staged,
    ) -> Answered:
        """The step's answer: stored, shared with an identical request in flight, or sent
        (to its fallback step while its model's breaker is open); and who answered."""
        memo = self._memo
        key = staged.keys.get(name) or (memo.key(request) if memo is not None else None)
        if memo is not None and key is not None:
            # A first step's answer was looked up with its batch; a later one's now.
            stored = staged.stored if name in staged.keys else memo.lookup([key])
            known = await self._known(memo, key, walk.item, name, request, stored)
            if known is not None:
                return known, name
        outcome, answered_by = await self._sent(walk, name, request, key, batch, queued)
        if memo is not None and key is not None:
            memo.landed(key, outcome)  # twins that joined this request get its answer
        return outcome, answered_by

    async def _known(
        self,
        memo: ResponseMemo,
        key: str,
        item: Item,
        name: str,
        request: Request,
        stored: dict[str, bytes],
    ) -> Outcome | None:
        """The answer the cache holds (`stored`, as looked up), or an identical request in
        flight gets; None when this request is to be sent."""
        known = memo.recall([(request, key)], stored)
        if key in known:
            answer: Outcome = served(item, known[key], request.model)
        else:
            twin: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
            if not memo.join(key, item, twin.set_result):
                return None
            answer = await twin
        if isinstance(answer, Success):
            self._events.emit(AnswerReused(request.model, answer.usage, name))
        return answer

    async def _sent(
        self,
        walk: _ItemWalk,
        name: str,
        request: Request,
        key: str | None,
        batch: int,
        queued: float,
    ) -> Answered:
        stand_in = self._workflow.steps[name].fallback
        fallback = self._fallback(walk, stand_in) if stand_in is not None else None
        try:
            outcome = await self._dispatcher.dispatch(
                walk.item, request, key, batch, queued, name, fallback
            )
        except Diverted:  # the stand-in is a function, and the step's model is down
            assert stand_in is not None
            return self._call(walk, stand_in)
        if stand_in is not None and _model_of(outcome) != request.model:
            return outcome, stand_in  # another model answered: the stand-in's request
        return outcome, name

    def _fallback(self, walk: _ItemWalk, stand_in: str) -> Fallback | None:
        """What stands in for a step while its model's breaker is open: the stand-in
        step's own request, or its function (no model)."""
        made = self._builders.request(stand_in, walk.item, walk.steps.view(), check_when=False)
        if made is None:
            return Fallback(None, None)
        if not isinstance(made, Request):
            return None  # it cannot be asked for this item; the step goes on alone
        return Fallback(made.model, self._dispatcher.limiter_for(made.model), made)

    def _settle(self, walk: _ItemWalk, name: str, outcome: Outcome, answered_by: str) -> None:
        walk.settle(name, outcome, self._workflow.steps[name].optional, answered_by)
        self._events.emit(StepEnded(name, walk.reports[name].status))


class _ItemWalk:
    """What one item's steps have come to so far."""

    __slots__ = ("attempts", "failure", "item", "reports", "steps", "usage")

    def __init__(self, item: Item, steps: ItemSteps) -> None:
        self.item = item
        self.steps = steps
        self.reports: dict[str, StepReport] = {}
        self.usage = Usage()
        self.attempts = 0
        self.failure: Failure | None = None  # the required step's that ended the item

    def fields(self, builders: StepBuilders) -> dict[str, Any]:
        return builders.fields(self.item, self.steps.view())

    def skipped(self, name: str, why: str) -> None:
        self.steps.skipped(name)
        self.reports[name] = StepReport("skipped", reason=why)

    def settle(self, name: str, outcome: Outcome, optional: bool, answered_by: str) -> None:
        self.attempts += outcome.attempts
        if isinstance(outcome, Success):
            self.steps.answered(name, outcome.output)
            status = "cached" if outcome.cached else "answered"
            self.reports[name] = StepReport(status, outcome.model, answered_by)
            self.usage = _added(self.usage, outcome.usage)
            return
        self.steps.failed(name)
        why = f"{outcome.kind}: {outcome.message}"
        self.reports[name] = StepReport("failed", None, None, why)
        if not optional and self.failure is None:
            self.failure = outcome

    def outcome(self, names: tuple[str, ...]) -> Outcome:
        reports = {name: self.reports.get(name) or _not_run(self.failure) for name in names}
        outputs = {name: self.steps.outputs.get(name) for name in names}
        failure = self.failure
        if failure is None:
            answered = [r for r in reports.values() if r.status in ("answered", "cached")]
            cached = bool(answered) and all(r.status == "cached" for r in answered)
            return Success(self.item, outputs, self.usage, cached, self.attempts, steps=reports)
        step = self.steps.failed_step
        return Failure(
            self.item,
            failure.kind,
            f"step {step}: {failure.message}",
            failure.status,
            self.attempts,
            failure.answer,
            step=step,
            steps=reports,
            outputs={n: o for n, o in outputs.items() if reports[n].status != "failed"},
        )


def _not_run(failure: Failure | None) -> StepReport:
    return StepReport(NOT_RUN, reason="a required step before it failed" if failure else None)


def _added(total: Usage, more: Usage) -> Usage:
    return Usage(
        total.prompt_tokens + more.prompt_tokens,
        total.completion_tokens + more.completion_tokens,
        total.total_tokens + more.total_tokens,
        total.cached_prompt_tokens + more.cached_prompt_tokens,
    )


def _model_of(outcome: Outcome) -> str | None:
    return outcome.model if isinstance(outcome, Success) else None


async def _cancelled(tasks: dict[asyncio.Task[Answered], str]) -> None:
    """Steps still asking when the item is given up (the run stops): cancel, and wait."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
