"""One item's journey: send, classify, retry, until a Success or a Failure.

This is the only retry loop in sluice. Run-fatal answers (401/403, exhausted
quota, redirects) raise, so the engine stops the whole run instead of failing
every item the same way.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pipeline.answers import InvalidAnswer, parse_answer
from pipeline.config import RetryConfig
from pipeline.errors import (
    AuthRefused,
    ConfigError,
    ErrorKind,
    QuotaExhausted,
    error_kind_for_status,
)
from pipeline.models import Failure, Item, Outcome, Success
from pipeline.redact import Redactor
from pipeline.request_builder import Request
from pipeline.retry import error_details, retry_delay, server_retry_hint
from pipeline.stats import RunStats
from pipeline.transport import Response, Transport, TransportError

Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class _Verdict:
    kind: ErrorKind
    message: str
    status: int | None = None
    server_hint: float | None = None


class Dispatcher:
    def __init__(
        self,
        transport: Transport,
        retry: RetryConfig,
        stats: RunStats,
        redact: Redactor,
        sleep: Sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._transport = transport
        self._retry = retry
        self._stats = stats
        self._redact = redact
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def dispatch(self, item: Item, request: Request) -> Outcome:
        attempt = 0
        while True:
            attempt += 1
            outcome = await self._attempt(item, request, attempt)
            if not isinstance(outcome, _Verdict):
                return outcome
            delay = retry_delay(outcome.kind, attempt, self._retry, self._rng, outcome.server_hint)
            if delay is None:
                message = self._redact(outcome.message)
                return Failure(item, outcome.kind, message, outcome.status, attempt)
            self._stats.retries += 1
            await self._sleep(delay)

    async def _attempt(self, item: Item, request: Request, attempt: int) -> Outcome | _Verdict:
        self._stats.requests += 1
        try:
            response = await self._transport.send(request.path, request.payload)
        except TransportError as exc:
            return _Verdict(ErrorKind.TRANSIENT, str(exc))
        self._stats.latencies.add(response.latency)
        if 200 <= response.status < 300:
            try:
                output, usage = parse_answer(request.endpoint, response.payload)
            except InvalidAnswer as exc:
                return _Verdict(ErrorKind.INVALID_OUTPUT, str(exc), response.status)
            return Success(item, output, usage, cached=False, attempts=attempt)
        return self._refusal(response)

    def _refusal(self, response: Response) -> _Verdict:
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
        hint = server_retry_hint(response.headers, time.time())
        return _Verdict(kind, f"HTTP {status}: {message}", status, hint)


def _fatal_error(status: int, code: str | None, message: str) -> Exception:
    if code == "insufficient_quota":
        return QuotaExhausted(
            f"the account's quota is exhausted (HTTP {status}): {message} "
            "Add credit or raise the limit, then run the same command again."
        )
    return AuthRefused(
        f"the server refused the API key (HTTP {status}): {message} "
        "Check the key in the environment variable named by --api-key-env."
    )
