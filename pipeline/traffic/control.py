"""Traffic control's async edge: waits where the pure parts say to wait.

Before each attempt: the breaker (wait while the endpoint is down), a
concurrency slot (FIFO, at most the AIMD limit in flight), then the rate
limiter (a reservation, slept off; a 429 meanwhile extends the wait). After
each attempt, `record` feeds what happened back to every part. Time comes only
from the injected Clock.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from pipeline.core.clock import Clock
from pipeline.core.config import TrafficConfig
from pipeline.core.errors import ErrorKind, ServiceUnavailable
from pipeline.core.events import (
    ATTEMPT_TIMED_OUT,
    RETRY_BUDGET_WAITED,
    EventSink,
    RateLimitPaused,
    TrafficReadings,
)
from pipeline.core.models import Usage
from pipeline.protocol.headers import LIMIT_KINDS, LimitReading, exhausted_reset, read_limits
from pipeline.traffic.adaptive_timeout import LatencyTracker
from pipeline.traffic.aimd import ConcurrencyLimit, Congestion
from pipeline.traffic.breaker import BreakerState, CircuitBreaker
from pipeline.traffic.limiter import Limits, RateLimiter
from pipeline.traffic.protocol import Grants, Holdup, Ticket, holdup
from pipeline.traffic.retry_policy import RetryBudget, Verdict, rate_limit_pause
from pipeline.traffic.tokens import CompletionAverage, expected_tokens


class TrafficControl:
    def __init__(
        self,
        config: TrafficConfig,
        clock: Clock,
        events: EventSink,
        rng: random.Random | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        """`limiter`: the rate limits to keep (shared with other processes, see
        shared_limits.py); by default this process's own, from `config`."""
        now = clock.now()
        self._config = config
        self._timeout = config.timeout
        self._clock = clock
        self._events = events
        self.last_error: str | None = None  # redacted; for stall reports and the breaker
        self.last_error_at: float | None = None  # on the run's clock
        self._readings: TrafficReadings | None = None
        self._rng = rng or random.Random()
        self.limiter = limiter or RateLimiter(Limits(config.rpm, config.tpm), now)
        # Limits granted from elsewhere are waited for before each reservation.
        self._grants = limiter if isinstance(limiter, Grants) else None
        self.concurrency = ConcurrencyLimit(config.concurrency)
        self.breaker = CircuitBreaker()
        self.budget = RetryBudget(config.retry_budget, now)
        self.latency = LatencyTracker()
        self.completions = CompletionAverage()
        self._in_flight = 0
        # Requests sent so far, and the tokens they reserved. A server counts what
        # remains when it admits a request; whatever was sent after that request, it
        # had not counted yet when its answer says what remains.
        self._requests_sent = 0
        self._tokens_sent = 0.0
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._news = asyncio.Event()
        self._publish()

    @property
    def counts_tokens(self) -> bool:
        return self.limiter.counts_tokens

    async def admit_request(self, body: dict[str, Any], chat: bool, first_attempt: bool) -> Ticket:
        """`admit`, reserving what the request is expected to cost in tokens."""
        tokens = expected_tokens(body, self.completions, chat) if self.counts_tokens else 0.0
        return await self.admit(tokens, first_attempt)

    async def admit(self, tokens: float, first_attempt: bool) -> Ticket:
        # The common case (breaker closed, a slot free, no wait) awaits nothing.
        probe = False
        if self.breaker.state is not BreakerState.CLOSED:
            probe = await self._pass_breaker()
        ticket = Ticket(tokens, probe)
        if self._slot_waiters or self._in_flight >= self._slot_limit():
            try:
                await self._wait_for_slot()
            except BaseException:
                self._lose_probe(ticket)
                raise
        else:
            self._in_flight += 1
        if self._grants is not None:
            try:
                await self._grants.replenish(tokens)
            except BaseException:
                self.release(ticket)
                raise
        # No await between a grant and its reservation: nobody else can take it.
        wait = self.limiter.reserve(tokens, self._clock.now())
        if wait > 0:
            try:
                await self._sleep_off(wait)
            except BaseException:
                self.release(ticket)
                raise
        if first_attempt:
            self.budget.on_first_attempt()
        self._requests_sent += 1
        self._tokens_sent += tokens
        ticket.sent_at = self._clock.now()
        ticket.requests_sent = self._requests_sent
        ticket.tokens_sent = self._tokens_sent
        return ticket

    def down(self) -> bool:
        """The breaker is open and no probe is due: an attempt asking now would wait."""
        return not self.breaker.passes(self._clock.now())

    def release(self, ticket: Ticket) -> None:
        """Free the slot after an attempt, whatever became of it."""
        self._in_flight -= 1
        self._lose_probe(ticket)
        self._hand_over_slots()

    def _lose_probe(self, ticket: Ticket) -> None:
        """A probe that ends without a verdict (cancelled) lets the next one go."""
        if ticket.probe and self.breaker.state is BreakerState.HALF_OPEN:
            self.breaker.probe_lost(self._clock.now())
            self._announce()

    @property
    def longest_wait(self) -> float:
        """The longest a server may ask us to wait before the run stops instead."""
        return self._config.breaker_timeout

    def attempt_timeout(self) -> float:
        if not self._config.adaptive_timeout:
            return self._timeout
        return self.latency.attempt_timeout(self._timeout)

    async def retry_permit(self, unless: Callable[[], bool] | None = None) -> None:
        """Wait until the retry budget allows one more retry, or `unless()` says the
        retry will not come here (it goes to a fallback model)."""
        while not (unless is not None and unless()) and not self.budget.try_spend(
            self._clock.now()
        ):
            self._events.emit(RETRY_BUDGET_WAITED)
            wait = self.budget.seconds_until_available(self._clock.now())
            await self._clock.sleep(wait * self._rng.uniform(0.5, 1.5))

    def record(
        self,
        ticket: Ticket,
        headers: Mapping[str, str] | None,
        verdict: Verdict | None,
        usage: Usage | None = None,
        latency: float | None = None,
        chat: bool = True,
    ) -> None:
        """Feed one attempt's result to the limiter, AIMD, breaker and timeout."""
        now = self._clock.now()
        breaker_state = self.breaker.state
        readings = read_limits(headers) if headers is not None else None
        if readings is not None:
            unseen = {
                "requests": self._requests_sent - ticket.requests_sent,
                "tokens": self._tokens_sent - ticket.tokens_sent,
            }
            self.limiter.observe(readings, now, unseen, age=now - ticket.sent_at)
        if verdict is None:
            self._on_answer(ticket, usage, latency, chat, now)
        else:
            self.last_error, self.last_error_at = verdict.message, now
            self._on_refusal(ticket, verdict, readings or {}, now)
        last = self._readings
        if (
            readings
            or verdict is not None
            or last is None
            or last.concurrency != self.concurrency.current
        ):
            self._publish()
        if self.breaker.state is not breaker_state:
            self._announce()
        self._hand_over_slots()

    def _on_answer(
        self, ticket: Ticket, usage: Usage | None, latency: float | None, chat: bool, now: float
    ) -> None:
        self.breaker.record(True, now, ticket.probe)
        if latency is not None:
            self.latency.add(latency)
        if self.latency.spiking:
            self.concurrency.on_congestion(Congestion.LATENCY_SPIKE, now, self.latency.round_trip)
        else:
            self.concurrency.on_success()
        if usage is not None:
            used = usage.prompt_tokens + usage.completion_tokens
            self.limiter.settle_tokens(ticket.tokens, used, now)
            if chat:
                self.completions.add(usage.completion_tokens)

    def _on_refusal(
        self, ticket: Ticket, verdict: Verdict, readings: Mapping[str, LimitReading], now: float
    ) -> None:
        round_trip = self.latency.round_trip
        if verdict.kind is ErrorKind.RATE_LIMITED:
            self.breaker.record(True, now, ticket.probe)  # the endpoint is up, just busy
            self.concurrency.on_congestion(Congestion.RATE_LIMITED, now, round_trip)
            self._pause(verdict, readings, now)
            return
        failed = verdict.kind in (ErrorKind.TRANSIENT, ErrorKind.INVALID_OUTPUT)
        self.breaker.record(not failed, now, ticket.probe)
        if verdict.timed_out:
            self._events.emit(ATTEMPT_TIMED_OUT)
            self.latency.on_timeout()
        if verdict.kind is ErrorKind.TRANSIENT:
            self.concurrency.on_congestion(Congestion.SERVER_ERROR, now, round_trip)

    def _pause(self, verdict: Verdict, readings: Mapping[str, LimitReading], now: float) -> None:
        wait = rate_limit_pause(verdict, exhausted_reset(readings))
        exhausted = [kind for kind, r in readings.items() if r.remaining == 0] or LIMIT_KINDS
        already = self.limiter.paused_for(now)
        self.limiter.pause(wait, exhausted, now)
        extension = self.limiter.paused_for(now) - already
        if extension > 0:
            self._events.emit(RateLimitPaused(extension, new_pause=already == 0))

    async def _pass_breaker(self) -> bool:
        while True:
            now = self._clock.now()
            admission = self.breaker.admit(now)
            if admission.send:
                return admission.probe
            left = self._config.breaker_timeout - self.breaker.outage_seconds(now)
            if left <= 0:
                raise ServiceUnavailable(
                    f"the endpoint kept failing for {self._config.breaker_timeout:g}s "
                    f"(see --breaker-timeout); last error: {self.last_error}. "
                    "Run the same command again once it is back."
                )
            await self._wait_for_news(min(admission.wait, left))

    def holdup(self, retrying: int = 0) -> Holdup:
        """What sending waits for right now; `retrying` items are sleeping out a backoff."""
        now = self._clock.now()
        closed = self.breaker.state is BreakerState.CLOSED
        down_for = None if closed else self.breaker.outage_seconds(now)
        paused = self.limiter.paused_for(now)
        found = holdup(down_for, self._config.breaker_timeout, self._in_flight, paused, retrying)
        return found._replace(last_error=self.last_error, last_error_at=self.last_error_at)

    async def _wait_for_slot(self) -> None:
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._slot_waiters.append(turn)
        try:
            await turn  # resolved only by _hand_over_slots, which counted us in
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._in_flight -= 1
                self._hand_over_slots()
            elif turn in self._slot_waiters:
                self._slot_waiters.remove(turn)
            raise

    def _slot_limit(self) -> int:
        # Until the first answer tells us the server's limits, one request goes alone.
        return 1 if self.limiter.awaiting_first_answer else self.concurrency.current

    def _hand_over_slots(self) -> None:
        while self._slot_waiters and self._in_flight < self._slot_limit():
            turn = self._slot_waiters.popleft()
            if not turn.done():
                self._in_flight += 1
                turn.set_result(None)

    async def _sleep_off(self, wait: float) -> None:
        while wait > 0:
            await self._clock.sleep(wait)
            wait = self.limiter.paused_for(self._clock.now())  # a 429 may have come meanwhile

    async def _wait_for_news(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking early when the breaker changes state."""
        news = asyncio.ensure_future(self._news.wait())
        nap = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait({news, nap}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            news.cancel()
            nap.cancel()

    def _announce(self) -> None:
        self._news.set()
        self._news = asyncio.Event()

    def _publish(self) -> None:
        """Emit the readings when one of them moved since they were last emitted."""
        readings = TrafficReadings(
            self.concurrency.current,
            self.limiter.per_minute("requests"),
            self.limiter.per_minute("tokens"),
            self.breaker.outages,
        )
        if readings != self._readings:
            self._readings = readings
            self._events.emit(readings)
