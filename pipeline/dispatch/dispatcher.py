"""One item's journey: admit, send, classify, retry, until a Success or a Failure.

This is the only retry loop in sluice. Traffic control decides when each
attempt may go; the retry policy decides whether and when to try again.
Run-fatal answers (401/403, exhausted quota, an unknown model, redirects, a
server asking for a very long wait: refusals.py) raise, so the engine stops the whole run
instead of failing every item the same way; so does an endpoint that nobody
answers at (refused, unresolvable) before it has ever answered.

Every message made here from what the server or the network said is redacted
as a whole, then cut (`Redactor.clip`), before anything stores or prints it.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Mapping
from typing import NamedTuple

from pipeline.cache.memo import ResponseMemo
from pipeline.core.clock import Clock
from pipeline.core.config import Endpoint, RetryConfig
from pipeline.core.errors import ErrorKind, ServiceUnavailable, SluiceError
from pipeline.core.events import (
    AttemptEnded,
    EventSink,
    RequestSent,
    RetryScheduled,
)
from pipeline.core.models import Failure, Item, Outcome, Success, Usage
from pipeline.core.redact import Redactor
from pipeline.dispatch.first_contact import FirstContact
from pipeline.dispatch.refusals import failed_exchange_verdict, refusal_verdict
from pipeline.dispatch.transport import Response, Transport, TransportError
from pipeline.prepare.request_builder import Request
from pipeline.protocol.answers import InvalidAnswer, parse_answer
from pipeline.spend.budget import BudgetGate
from pipeline.traffic.protocol import Holdup, Limiter, Ticket
from pipeline.traffic.retry_policy import Verdict, backoff, retry_delay, retry_kind

# Characters of an unusable answer kept in its quarantine row: enough to see what the
# model did; the rest is cut, as an error message is.
ANSWER_LIMIT = 20_000


CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"


class Fallback(NamedTuple):
    """Who answers while the primary model's breaker is open, or when it refuses a prompt
    as too long: `--fallback-model` (the same request, asking `model`, under limits of
    its own), or a workflow step's `fallback` step: its own `request`, or, with no
    model, a function the caller runs (`Diverted` tells it to)."""

    model: str | None
    traffic: Limiter | None
    request: Request | None = None


class Diverted(Exception):
    """The fallback is a function, and it is its turn: the caller answers with it."""


class _Attempt(NamedTuple):
    item: Item
    batch: int
    number: int  # 1 for the first
    request: Request
    ticket: Ticket
    cache_key: str | None
    traffic: Limiter  # the primary's, or the fallback model's
    step: str | None  # the workflow step it is for


class DispatchStopped(Exception):
    """The run is stopping: the item was not sent again and stays unfinished."""


class Dispatcher:
    def __init__(
        self,
        transport: Transport,
        traffic: Limiter,
        retry: RetryConfig,
        events: EventSink,
        redact: Redactor,
        clock: Clock,
        rng: random.Random | None = None,
        memo: ResponseMemo | None = None,
        budget: BudgetGate | None = None,
        fallback: Fallback | None = None,
        traffic_by_model: Mapping[str, Limiter] | None = None,
    ) -> None:
        self._transport = transport
        # A workflow's steps may ask other models than the run's: each has limits of its
        # own, as providers count them (the run's model keeps `traffic`).
        self._by_model = traffic_by_model or {}
        self._fallback = fallback
        self._budget = budget
        self._memo = memo
        self._traffic = traffic
        self._retry = retry
        self._events = events
        self._redact = redact
        self.clock = clock
        self._rng = rng or random.Random()
        self._first_contact = FirstContact(transport.base_url)
        self._retrying = 0  # items sleeping out a backoff
        self._stopping = False
        self._sending = 0
        self.idle = asyncio.Event()  # set once stopping and no request is on the wire

    def stop(self) -> None:
        """No new attempt starts from now on; requests already sent may still answer."""
        self._stopping = True
        if not self._sending:
            self.idle.set()

    async def dispatch(
        self,
        item: Item,
        request: Request,
        cache_key: str | None = None,
        batch: int = 0,
        queued: float = 0.0,
        step: str | None = None,
        fallback: Fallback | None = None,
    ) -> Outcome:
        """Send until a Success or a Failure; a reusable answer is stored under `cache_key`.
        `batch`, `queued` (seconds the item waited for a worker) and the workflow `step`
        are for the events; `fallback` (a step's) stands in for the run's."""
        fallback = fallback or self._fallback
        failures: Counter[ErrorKind] = Counter()
        number = 0
        too_long = False  # the primary model refused the prompt as too long
        while True:
            if self._stopping:
                raise DispatchStopped
            asked = self.clock.now()
            sending, traffic, key = self._route(request, cache_key, too_long, fallback)
            self._transport.ready()  # before the limits count the request as sent
            ticket = await self._admit(traffic, sending, first_attempt=number == 0)
            try:
                if self._stopping:
                    raise DispatchStopped
                reserved = self._within_budget(sending)
            except BaseException:
                traffic.release(ticket)
                raise
            number += 1
            attempt = _Attempt(item, batch, number, sending, ticket, key, traffic, step)
            now = self.clock.now()
            wait = queued if number == 1 else 0.0
            sent = RequestSent(item, batch, number, now, wait, now - asked, sending.body, step)
            self._events.emit(sent)
            try:
                outcome, storing = await self._attempt(attempt)
                if storing is not None:
                    await storing  # the slot is held until the answer is on disk
            finally:
                traffic.release(ticket)
                if self._budget is not None:
                    self._budget.settle(reserved)
            if not isinstance(outcome, Verdict):
                return outcome
            if self._too_long_for_primary(outcome, sending is request, too_long, fallback):
                too_long = True  # the fallback may take it: ask it at once
                continue
            delay = self._retry_delay(outcome, failures)
            if delay is None:
                return Failure(
                    item, outcome.kind, outcome.message, outcome.status, number, outcome.answer
                )
            self._events.emit(RetryScheduled(str(outcome.kind), delay))
            primary = self.limiter_for(request.model)
            diverting = _diversion(primary, fallback)
            await self._wait_to_retry(outcome, delay, primary, diverting)

    def _too_long_for_primary(
        self, verdict: Verdict, on_primary: bool, too_long: bool, fallback: Fallback | None
    ) -> bool:
        if fallback is None or too_long or not on_primary:
            return False
        return verdict.code == CONTEXT_LENGTH_EXCEEDED

    def _route(
        self, request: Request, cache_key: str | None, too_long: bool, fallback: Fallback | None
    ) -> tuple[Request, Limiter, str | None]:
        """Where the next attempt goes: the primary model, or, while its breaker is open
        or once it found the prompt too long, the fallback model (its own limits, and
        its answer stored under its own request's key)."""
        primary = self.limiter_for(request.model)
        if fallback is None or not (too_long or primary.down()):
            return request, primary, cache_key
        if fallback.traffic is None or fallback.model is None:
            raise Diverted
        diverted = fallback.request or request.for_model(fallback.model)
        key = self._memo.key(diverted) if cache_key is not None and self._memo else None
        return diverted, fallback.traffic, key

    def limiter_for(self, model: str | None) -> Limiter:
        """The traffic control of `model`'s requests."""
        if not self._by_model:
            return self._traffic
        return self._by_model.get(model or "", self._traffic)

    def _within_budget(self, request: Request) -> float:
        """The dollars reserved for the attempt; BudgetReached when it may not go."""
        if self._budget is None:
            return 0.0
        chat = request.endpoint is Endpoint.CHAT
        return self._budget.admit(request.body, request.model, chat)

    def holdup(self) -> Holdup:
        """What sending waits for right now, for the stall reports: while a fallback model
        takes the traffic, what that one waits for (the main model's outage stops nothing)."""
        fallback = self._fallback
        if fallback is not None and fallback.traffic is not None and self._traffic.down():
            return fallback.traffic.holdup(self._retrying)
        return self._traffic.holdup(self._retrying)

    async def _admit(self, traffic: Limiter, request: Request, first_attempt: bool) -> Ticket:
        chat = request.endpoint is Endpoint.CHAT
        try:
            return await traffic.admit_request(request.body, chat, first_attempt)
        except ServiceUnavailable as down:  # the breaker gave up: say where
            raise ServiceUnavailable(f"{self._transport.base_url}: {down.message}") from None

    def _retry_delay(self, verdict: Verdict, failures: Counter[ErrorKind]) -> float | None:
        if self._first_contact.unreached(verdict):
            # Not the item's fault; FirstContact stops the run after a few.
            return backoff(self._first_contact.failed_connections, self._retry, self._rng)
        kind = retry_kind(verdict) or verdict.kind
        failures[kind] += 1
        return retry_delay(verdict, failures[kind], self._retry, self._rng)

    async def _wait_to_retry(
        self, verdict: Verdict, delay: float, primary: Limiter, diverting: Callable[[], bool]
    ) -> None:
        """Sleep out the backoff, once the retry budget lets the retry go (or attempts now
        go to the fallback, which the primary's budget does not hold back)."""
        if verdict.kind is ErrorKind.RATE_LIMITED:
            return  # a 429 already paused everyone
        self._retrying += 1
        try:
            if not self._first_contact.unreached(verdict):
                await primary.retry_permit(unless=diverting)
            await self.clock.sleep(delay)
        finally:
            self._retrying -= 1

    async def _attempt(
        self, attempt: _Attempt
    ) -> tuple[Outcome | Verdict, asyncio.Future[None] | None]:
        """The outcome of one request, and the storing of its answer when it is reusable."""
        request, ticket, traffic = attempt.request, attempt.ticket, attempt.traffic
        self._sending += 1
        try:
            response = await self._transport.send(
                request.path, request.payload, traffic.attempt_timeout()
            )
        except TransportError as exc:
            verdict = failed_exchange_verdict(exc, self._redact)
            self._ended(attempt, verdict.kind, status=verdict.status)
            traffic.record(ticket, None, verdict)
            self._first_contact.check_connection(verdict)
            return verdict, None
        finally:
            self._sending -= 1
            if self._stopping and not self._sending:
                self.idle.set()
        self._first_contact.on_response()
        if 200 <= response.status < 300:
            return self._answer(attempt, response)
        try:
            verdict = self._refusal(response)
        except SluiceError:  # run-fatal: the attempt still ends in the record
            self._ended(attempt, ErrorKind.FATAL, response)
            raise
        self._ended(attempt, verdict.kind, response)
        traffic.record(ticket, response.headers, verdict)
        return verdict, None

    def _answer(
        self, attempt: _Attempt, response: Response
    ) -> tuple[Outcome | Verdict, asyncio.Future[None] | None]:
        request, ticket, traffic = attempt.request, attempt.ticket, attempt.traffic
        try:
            output, usage, reusable = parse_answer(
                request.endpoint, response.payload, request.structured, request.inputs
            )
        except InvalidAnswer as exc:
            message = self._redact.clip(str(exc))
            answer = None if exc.answer is None else self._redact.clip(exc.answer, ANSWER_LIMIT)
            verdict = Verdict(ErrorKind.INVALID_OUTPUT, message, response.status, answer=answer)
            billed = exc.usage if exc.usage.total_tokens else None  # unusable, still paid
            self._ended(attempt, verdict.kind, response, billed)
            traffic.record(ticket, response.headers, verdict)
            return verdict, None
        self._first_contact.on_answer()
        storing = None
        key = attempt.cache_key
        if reusable and key is not None and self._memo is not None:
            storing = self._memo.remember(key, response.payload)
        chat = request.endpoint is Endpoint.CHAT
        traffic.record(ticket, response.headers, None, usage, response.latency, chat)
        self._ended(attempt, None, response, usage)
        answered = Success(
            attempt.item, output, usage, attempts=attempt.number, model=request.model
        )
        return answered, storing

    def _ended(
        self,
        attempt: _Attempt,
        error: ErrorKind | None,
        response: Response | None = None,
        usage: Usage | None = None,
        status: int | None = None,
    ) -> None:
        """Tell the event stream how the attempt ended (one event per attempt)."""
        self._events.emit(
            AttemptEnded(
                attempt.item,
                attempt.batch,
                attempt.number,
                self.clock.now(),
                response.status if response is not None else status,
                None if error is None else str(error),
                usage,
                attempt.request.model,
                response.latency if response is not None else None,
                error is ErrorKind.RATE_LIMITED,
                response.first_token if response is not None else None,
                attempt.step,
            )
        )

    def _refusal(self, response: Response) -> Verdict:
        longest = self._traffic.longest_wait
        verdict = refusal_verdict(response, self._redact, self.clock.wall(), longest)
        if verdict.kind is ErrorKind.PERMANENT:
            self._first_contact.check_refusal(verdict)
        return verdict


def _diversion(primary: Limiter, fallback: Fallback | None) -> Callable[[], bool]:
    """Whether attempts go to the fallback now (the primary's breaker is open)."""
    if fallback is None:
        return lambda: False
    return primary.down
