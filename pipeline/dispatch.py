"""One item's journey: admit, send, classify, retry, until a Success or a Failure.

This is the only retry loop in sluice. Traffic control decides when each
attempt may go; the retry policy decides whether and when to try again.
Run-fatal answers (401/403, exhausted quota, an unknown model, redirects, a
server asking for a very long wait) raise, so the engine stops the whole run
instead of failing every item the same way.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from pipeline.answers import InvalidAnswer, parse_answer
from pipeline.clock import Clock
from pipeline.config import Endpoint, RetryConfig
from pipeline.errors import (
    AuthRefused,
    ConfigError,
    ErrorKind,
    QuotaExhausted,
    SluiceError,
    error_kind_for_status,
)
from pipeline.memo import ResponseMemo
from pipeline.models import Failure, Item, Outcome, Success
from pipeline.redact import Redactor
from pipeline.request_builder import Request
from pipeline.retry import Verdict, retry_delay, retry_kind
from pipeline.server_signals import error_details, retry_after, should_retry
from pipeline.stats import RunStats
from pipeline.tokens import expected_tokens
from pipeline.traffic import Ticket, TrafficControl
from pipeline.transport import Response, Transport, TransportError

# This many identical refusals before any answer means the run's settings are wrong.
SAME_REFUSAL_LIMIT = 10
# Refusals that all differ say nothing about the settings; stop counting them.
DISTINCT_REFUSALS_TRACKED = 100


class DispatchStopped(Exception):
    """The run is stopping: the item was not sent again and stays unfinished."""


class Dispatcher:
    def __init__(
        self,
        transport: Transport,
        traffic: TrafficControl,
        retry: RetryConfig,
        stats: RunStats,
        redact: Redactor,
        clock: Clock,
        rng: random.Random | None = None,
        memo: ResponseMemo | None = None,
    ) -> None:
        self._transport = transport
        self._memo = memo
        self._traffic = traffic
        self._retry = retry
        self._stats = stats
        self._redact = redact
        self._clock = clock
        self._rng = rng or random.Random()
        self._answered = 0
        self._same_refusals: Counter[str] = Counter()
        self._stopping = False
        self._sending = 0
        self.idle = asyncio.Event()  # set once stopping and no request is on the wire

    def stop(self) -> None:
        """No new attempt starts from now on; requests already sent may still answer."""
        self._stopping = True
        if not self._sending:
            self.idle.set()

    async def dispatch(self, item: Item, request: Request, cache_key: str | None = None) -> Outcome:
        """Send until a Success or a Failure; a reusable answer is stored under `cache_key`."""
        failures: Counter[ErrorKind] | None = None
        attempt = 0
        while True:
            if self._stopping:
                raise DispatchStopped
            ticket = await self._traffic.admit(self._tokens(request), first_attempt=attempt == 0)
            if self._stopping:
                self._traffic.release(ticket)
                raise DispatchStopped
            attempt += 1
            try:
                outcome, storing = await self._attempt(item, request, ticket, attempt, cache_key)
                if storing is not None:
                    await storing  # the slot is held until the answer is on disk
            finally:
                self._traffic.release(ticket)
            if not isinstance(outcome, Verdict):
                return outcome
            kind = retry_kind(outcome)
            failures = failures or Counter()
            failures[kind or outcome.kind] += 1
            delay = retry_delay(outcome, failures[kind or outcome.kind], self._retry, self._rng)
            if delay is None:
                message = self._redact(outcome.message)
                return Failure(item, outcome.kind, message, outcome.status, attempt)
            self._stats.retries += 1
            if kind is not ErrorKind.RATE_LIMITED:  # a 429 already paused everyone
                await self._traffic.retry_permit()
                await self._clock.sleep(delay)

    def _tokens(self, request: Request) -> float:
        """What the request is expected to cost, when a tokens limit is kept at all."""
        if not self._traffic.counts_tokens:
            return 0.0
        chat = request.endpoint is Endpoint.CHAT
        return expected_tokens(request.body, self._traffic.completions, chat)

    async def _attempt(
        self, item: Item, request: Request, ticket: Ticket, attempt: int, cache_key: str | None
    ) -> tuple[Outcome | Verdict, asyncio.Future[None] | None]:
        """The outcome of one request, and the storing of its answer when it is reusable."""
        self._stats.requests += 1
        self._sending += 1
        try:
            response = await self._transport.send(
                request.path, request.payload, self._traffic.attempt_timeout()
            )
        except TransportError as exc:
            verdict = Verdict(ErrorKind.TRANSIENT, str(exc), timed_out=exc.timed_out)
            self._traffic.record(ticket, None, verdict)
            return verdict, None
        finally:
            self._sending -= 1
            if self._stopping and not self._sending:
                self.idle.set()
        self._stats.latencies.add(response.latency)
        if 200 <= response.status < 300:
            return self._answer(item, request, ticket, attempt, response, cache_key)
        verdict = self._refusal(response)
        self._traffic.record(ticket, response.headers, verdict)
        return verdict, None

    def _answer(
        self,
        item: Item,
        request: Request,
        ticket: Ticket,
        attempt: int,
        response: Response,
        cache_key: str | None,
    ) -> tuple[Outcome | Verdict, asyncio.Future[None] | None]:
        try:
            output, usage, reusable = parse_answer(request.endpoint, response.payload)
        except InvalidAnswer as exc:
            verdict = Verdict(ErrorKind.INVALID_OUTPUT, str(exc), response.status)
            self._traffic.record(ticket, response.headers, verdict)
            return verdict, None
        self._answered += 1
        storing = None
        if reusable and cache_key is not None and self._memo is not None:
            storing = self._memo.remember(cache_key, response.payload)
        chat = request.endpoint is Endpoint.CHAT
        self._traffic.record(ticket, response.headers, None, usage, response.latency, chat)
        return Success(item, output, usage, cached=False, attempts=attempt), storing

    def _refusal(self, response: Response) -> Verdict:
        status = response.status
        if 300 <= status < 400:
            raise ConfigError(
                f"the server answered with a redirect ({status}); sluice does not follow "
                "redirects, since they would resend the key elsewhere: check --base-url"
            )
        code, message = error_details(response.payload)
        kind = error_kind_for_status(status, code)
        if kind is ErrorKind.FATAL:
            raise _fatal_error(status, code, self._redact(message))
        if kind is ErrorKind.RATE_LIMITED:
            self._stats.rate_limited += 1
        wait = retry_after(response.headers, self._clock.wall())
        if wait is not None and wait > self._traffic.longest_wait:
            raise QuotaExhausted(
                f"the server asks to wait {wait:,.0f}s before trying again (HTTP {status}), "
                f"longer than --breaker-timeout; run the same command again later"
            )
        verdict = Verdict(
            kind, f"HTTP {status}: {message}", status, code, wait, should_retry(response.headers)
        )
        if kind is ErrorKind.PERMANENT:
            self._check_settings(verdict)
        return verdict

    def _check_settings(self, verdict: Verdict) -> None:
        """The same refusal for every item, before any answer, is the settings' fault."""
        if self._answered or len(self._same_refusals) > DISTINCT_REFUSALS_TRACKED:
            return
        self._same_refusals[verdict.message] += 1
        if self._same_refusals[verdict.message] >= SAME_REFUSAL_LIMIT:
            raise ConfigError(
                f"the first {SAME_REFUSAL_LIMIT} requests were all refused with "
                f"{self._redact(verdict.message)}; check --model, --base-url and -O options"
            )


def _fatal_error(status: int, code: str | None, message: str) -> SluiceError:
    if code == "insufficient_quota":
        return QuotaExhausted(
            f"the account's quota is exhausted (HTTP {status}): {message} "
            "Add credit or raise the limit, then run the same command again."
        )
    if code == "model_not_found":
        return ConfigError(f"the server does not serve that model (HTTP {status}): {message}")
    return AuthRefused(
        f"the server refused the API key (HTTP {status}): {message} "
        "Check the key in the environment variable named by --api-key-env."
    )
