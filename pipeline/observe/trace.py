"""Tracing: the run's events turned into spans, each handed to exporters as it ends.

One trace per run; its spans form a tree:

    sluice.run                      the whole run
      sluice.batch                  BatchStarted .. committed
        sluice.item                 its batch's start .. ItemSettled (all of an item's tries)
          chat {model}              RequestSent .. AttemptEnded: one per try, none when cached

Attempt spans are named as the OpenTelemetry GenAI conventions name a model call
(`{gen_ai.operation.name} {gen_ai.request.model}`) and carry their attribute names.
Each try gets its own span because each is a separate request, billed on its own;
the item span above them covers the whole operation, retries included. In a
workflow (--workflow) an item's steps are tried under the same item span, several
at once when they do not depend on each other; each try carries `sluice.step`.

`SpanRecorder` is an event sink (core/events.py). It holds only the spans still
open (the batches in flight, their items being tried), so memory stays flat over a
run of any length, and a span goes to the exporters the moment it ends: children
before their parents, the run span last. Prompts and answers appear only with
`content=True`. Texts that can quote a server, the input or the settings (status
messages, prompts, answers, the run's attributes) pass the run's key redactor first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.config import RunConfig
from pipeline.core.events import (
    AttemptEnded,
    BatchesCommitted,
    BatchStarted,
    Event,
    ItemSettled,
    JobResumed,
    RequestSent,
)
from pipeline.core.models import Failure, Item, Outcome
from pipeline.core.redact import Redactor
from pipeline.observe.span_attributes import (
    Attributes,
    attempt_span_name,
    item_id,
    outcome_attributes,
    output_attributes,
    plain_attributes,
    plain_value,
    prompt_attributes,
    request_attributes,
    request_shape,
    run_attributes,
    server_attributes,
    try_attributes,
)
from pipeline.observe.spans import (
    CLIENT,
    ERROR,
    INTERNAL,
    OK,
    SpanExporter,
    SpanIds,
    SpanRecord,
)

STOPPED = "the run stopped"
MAX_SHAPES = 256  # request shapes remembered (raw lines may each set their own model)


@dataclass(slots=True)
class _Open:
    """A span begun and not yet ended."""

    span_id: str
    parent_id: str | None
    name: str
    start: float  # the run clock's monotonic seconds
    attributes: dict[str, Any]
    kind: str = INTERNAL


@dataclass(slots=True)
class _Tally:
    """Items settled: answered (the cached ones among them), or failed."""

    items: int = 0
    succeeded: int = 0
    cached: int = 0
    failed: int = 0

    def add(self, outcome: Outcome) -> None:
        self.items += 1
        if isinstance(outcome, Failure):
            self.failed += 1
            return
        self.succeeded += 1
        if outcome.cached:
            self.cached += 1

    def as_attributes(self, prefix: str) -> dict[str, int]:
        return {
            f"{prefix}.succeeded": self.succeeded,
            f"{prefix}.cached": self.cached,
            f"{prefix}.failed": self.failed,
        }


@dataclass(slots=True)
class _Batch:
    span: _Open
    settled: _Tally = field(default_factory=_Tally)


@dataclass(slots=True)
class _Item:
    span: _Open
    # The tries on the wire, by workflow step (None outside workflows): one at a time
    # per step, while independent steps of the item are in flight together.
    attempts: dict[str | None, _Open] = field(default_factory=dict)


@dataclass(slots=True)
class _RunCounts:
    settled: _Tally = field(default_factory=_Tally)
    resumed: int = 0
    batches_committed: int = 0
    requests: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def as_attributes(self) -> dict[str, int]:
        return {
            "sluice.items": self.settled.items,
            **self.settled.as_attributes("sluice.items"),
            "sluice.items.resumed": self.resumed,
            "sluice.batches.committed": self.batches_committed,
            "sluice.requests": self.requests,
            "sluice.retries": self.retries,
            "sluice.usage.input_tokens": self.input_tokens,
            "sluice.usage.output_tokens": self.output_tokens,
        }


class SpanRecorder:
    """The run's spans, from its events (see the module docstring for the tree)."""

    def __init__(
        self,
        trace_id: str,
        started_at_mono: float,
        started_at_unix: float,
        exporters: Sequence[SpanExporter],
        run_attributes: Mapping[str, Any],
        content: bool = False,
        *,
        base_url: str | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.trace_id = trace_id
        self._origin = started_at_mono
        self._origin_ns = int(started_at_unix * 1e9)
        self._exporters = list(exporters)
        self._content = content
        self._redact = redact or (lambda text: text)
        self._server = server_attributes(base_url) if base_url else {}
        self._shapes: dict[tuple[Any, ...], tuple[str, Attributes]] = {}
        self._ids = SpanIds()
        run = plain_attributes(run_attributes, self._redact)
        self._run = self._open("sluice.run", None, started_at_mono, dict(run))
        self._batches: dict[int, _Batch] = {}
        self._items: dict[tuple[int, int], _Item] = {}
        self._counts = _RunCounts()
        self._warnings: list[str] = []
        self._finished = False

    @classmethod
    def for_run(
        cls,
        config: RunConfig,
        trace_id: str,
        started_at_mono: float,
        started_at_unix: float,
        exporters: Sequence[SpanExporter],
    ) -> SpanRecorder:
        """A recorder for `sluice run` with `config`: its attributes, content setting and key."""
        base_url = config.connection.base_url
        return cls(
            trace_id,
            started_at_mono,
            started_at_unix,
            exporters,
            run_attributes(config),
            config.observe.trace_content,
            base_url=base_url,
            redact=Redactor(config.connection.api_key),
        )

    def emit(self, event: Event) -> None:
        handle = _HANDLERS.get(type(event))
        if handle is None or self._finished:
            return
        try:
            handle(self, event)
        except Exception as exc:  # a tracing bug must never cost the run its work
            self._warn(f"the trace is incomplete: {type(exc).__name__}: {exc}")

    def finish(self, at_mono: float, exit_code: int, error: str | None = None) -> list[str]:
        """End every span still open and the run span, close the exporters; the warnings
        (spans lost, files not written), one line each. Later calls return []."""
        if self._finished:
            return []
        for item in list(self._items.values()):
            for attempt in item.attempts.values():
                self._end(attempt, at_mono, ERROR, f"no answer: {STOPPED}")
            self._end(item.span, at_mono, ERROR, f"not settled: {STOPPED}")
        for batch in self._batches.values():
            self._end(batch.span, at_mono, ERROR, f"not committed: {STOPPED}")
        self._items.clear()
        self._batches.clear()
        self._run.attributes.update(plain_attributes(self._counts.as_attributes()))
        self._run.attributes["sluice.exit_code"] = exit_code
        failed = exit_code != 0
        message = (error or f"exit code {exit_code}") if failed else None
        self._end(self._run, at_mono, ERROR if failed else OK, message)
        self._finished = True
        for exporter in self._exporters:
            try:
                warning = exporter.close()
            except Exception as exc:  # close() should not raise; if it does, say so
                warning = f"a trace exporter failed to close: {exc}"
            if warning is not None:
                self._warn(warning)
        return list(self._warnings)

    # Handlers, one per kind of event (see _HANDLERS).

    def _batch_started(self, event: BatchStarted) -> None:
        attributes = {"sluice.batch.index": event.batch, "sluice.batch.items": event.items}
        span = self._open("sluice.batch", self._run.span_id, event.at, attributes)
        self._batches[event.batch] = _Batch(span)

    def _request_sent(self, event: RequestSent) -> None:
        self._counts.requests += 1
        if event.attempt > 1:
            self._counts.retries += 1
        item = self._item(event.batch, event.item, event.at - event.queued - event.limiter_wait)
        if (lost := item.attempts.pop(event.step, None)) is not None:  # never ended
            self._end(lost, event.at, ERROR, "no answer recorded")
        name, request = self._request_attributes(event.body)
        attributes = {**request, **try_attributes(event)}
        if self._content:
            attributes.update(plain_attributes(prompt_attributes(event.body), self._redact))
        attempt = self._open(name, item.span.span_id, event.at, attributes, CLIENT)
        item.attempts[event.step] = attempt

    def _request_attributes(self, body: Mapping[str, Any]) -> tuple[str, Attributes]:
        """The attempt span's name and `request_attributes`, remembered by the body's
        shape: a run's requests differ in their messages, rarely in anything else."""
        shape = request_shape(body)
        try:
            return self._shapes[shape]
        except KeyError:
            pass
        except TypeError:  # a setting that cannot be a key: worked out every time
            return attempt_span_name(body), request_attributes(body, self._server)
        if len(self._shapes) >= MAX_SHAPES:
            self._shapes.clear()
        known = self._shapes[shape] = (
            attempt_span_name(body),
            request_attributes(body, self._server),
        )
        return known

    def _attempt_ended(self, event: AttemptEnded) -> None:
        item = self._items.get((event.batch, event.item.position))
        span = None if item is None else item.attempts.pop(event.step, None)
        if span is None:
            return
        if event.status is not None:
            span.attributes["http.response.status_code"] = event.status
        if event.usage is not None:
            span.attributes["gen_ai.usage.input_tokens"] = plain_value(event.usage.prompt_tokens)
            span.attributes["gen_ai.usage.output_tokens"] = plain_value(
                event.usage.completion_tokens
            )
            self._counts.input_tokens += event.usage.prompt_tokens
            self._counts.output_tokens += event.usage.completion_tokens
        if event.first_token is not None:  # --stream
            span.attributes["sluice.first_token_ms"] = round(event.first_token * 1000, 3)
        if event.error is None:
            self._end(span, event.at, OK)
            return
        span.attributes["error.type"] = event.error
        answered = f"HTTP {event.status}" if event.status is not None else "no response"
        self._end(span, event.at, ERROR, f"{event.error} ({answered})")

    def _item_settled(self, event: ItemSettled) -> None:
        outcome = event.outcome
        item = self._items.pop((event.batch, outcome.item.position), None)
        if item is None:  # never sent: cached, shared with a twin, or invalid
            item = _Item(self._item_span(event.batch, outcome.item, event.at))
        for attempt in item.attempts.values():
            self._end(attempt, event.at, ERROR, "no answer recorded")
        span = item.span
        span.attributes.update(outcome_attributes(outcome))
        if self._content:
            span.attributes.update(plain_attributes(output_attributes(outcome), self._redact))
        self._count(event.batch, outcome)
        if isinstance(outcome, Failure):
            self._end(span, event.at, ERROR, outcome.message)
        else:
            self._end(span, event.at, OK)

    def _committed(self, event: BatchesCommitted) -> None:
        for index in event.batches:
            batch = self._batches.pop(index, None)
            if batch is None:
                continue
            self._counts.batches_committed += 1
            batch.span.attributes.update(batch.settled.as_attributes("sluice.batch"))
            self._end(batch.span, event.at, OK)

    def _resumed(self, event: JobResumed) -> None:
        self._counts.resumed = event.committed.items

    # Spans.

    def _item(self, batch: int, item: Item, fallback_start: float) -> _Item:
        key = (batch, item.position)
        if (open_item := self._items.get(key)) is None:
            open_item = self._items[key] = _Item(self._item_span(batch, item, fallback_start))
        return open_item

    def _item_span(self, batch: int, item: Item, fallback_start: float) -> _Open:
        """An item's span starts with its batch: all of a batch's items are queued at once."""
        open_batch = self._batches.get(batch)
        parent = open_batch.span if open_batch is not None else self._run
        start = open_batch.span.start if open_batch is not None else fallback_start
        attributes: dict[str, Any] = {"sluice.item.id": plain_value(item_id(item))}
        return self._open("sluice.item", parent.span_id, start, attributes)

    def _count(self, batch: int, outcome: Outcome) -> None:
        self._counts.settled.add(outcome)
        if (open_batch := self._batches.get(batch)) is not None:
            open_batch.settled.add(outcome)

    def _open(
        self,
        name: str,
        parent_id: str | None,
        at: float,
        attributes: dict[str, Any],
        kind: str = INTERNAL,
    ) -> _Open:
        return _Open(self._ids.next(), parent_id, name, at, attributes, kind)

    def _end(self, span: _Open, at: float, code: str, message: str | None = None) -> None:
        # Several spans end per item: positional arguments and arithmetic kept inline.
        origin, origin_ns = self._origin, self._origin_ns
        start = origin_ns + int((span.start - origin) * 1e9)
        record = SpanRecord(
            self.trace_id,
            span.span_id,
            span.parent_id,
            span.name,
            span.kind,
            start,
            max(start, origin_ns + int((at - origin) * 1e9)),
            code,
            None if message is None else self._redact(message),
            span.attributes,  # every value was made plain when it was set
        )
        for exporter in self._exporters:
            try:
                exporter.export(record)
            except Exception as exc:  # the exporter is broken: drop it, say so once
                self._drop(exporter, exc)  # a new list: this loop goes on over the old one

    def _drop(self, exporter: SpanExporter, problem: Exception) -> None:
        self._exporters = [kept for kept in self._exporters if kept is not exporter]
        self._warn(f"a trace exporter failed and was dropped: {problem}")

    def _warn(self, warning: str) -> None:
        if (safe := self._redact(warning)) not in self._warnings:
            self._warnings.append(safe)


_HANDLERS: dict[type, Callable[[SpanRecorder, Any], None]] = {
    BatchStarted: SpanRecorder._batch_started,
    RequestSent: SpanRecorder._request_sent,
    AttemptEnded: SpanRecorder._attempt_ended,
    ItemSettled: SpanRecorder._item_settled,
    BatchesCommitted: SpanRecorder._committed,
    JobResumed: SpanRecorder._resumed,
}
