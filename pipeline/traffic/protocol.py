"""What the dispatcher needs of traffic control: the `Limiter` seam, its tickets, and
what it says sending waits for (`Holdup`, for the stall reports).

Today's implementation is `TrafficControl` (control.py), in-process; a limiter
shared across processes (one account's limit for several runs) would be another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

from pipeline.core.models import Usage
from pipeline.core.words import counted
from pipeline.traffic.retry_policy import Verdict


class Holdup(NamedTuple):
    """What sending waits for right now, as traffic control sees it."""

    waiting_for: str
    failing: bool = False  # held back by failures (the breaker is open), not mere slowness
    last_error: str | None = None  # redacted; the latest failed attempt's message
    last_error_at: float | None = None  # on the run's clock


def holdup(
    down_for: float | None, breaker_timeout: float, in_flight: int, paused: float, retrying: int
) -> Holdup:
    """What sending waits for: the endpoint (down for `down_for` seconds, None when the
    breaker is closed), answers in flight, a rate-limit pause, items backing off."""
    if down_for is not None:
        left = max(0.0, breaker_timeout - down_for)
        return Holdup(
            f"the endpoint to recover (failing for {down_for:.0f}s; the run stops with exit 69 "
            f"in {left:.0f}s, see --breaker-timeout)",
            failing=True,
        )
    waits = []
    if in_flight:
        waits.append(f"answers to {counted(in_flight, 'request')}")
    if paused > 0:
        waits.append(f"a rate-limit pause ({paused:.0f}s left)")
    if retrying:
        waits.append(f"{counted(retrying, 'item')} to retry")
    return Holdup(", ".join(waits) or "more items to send")


@dataclass(slots=True)
class Ticket:
    """One admitted attempt: what it reserved, whether it probes an open breaker, and,
    once its reservation's moment came and it went on the wire, when, and how many
    requests and tokens had gone by then, itself included (see TrafficControl.record)."""

    tokens: float
    probe: bool
    sent_at: float = 0.0
    requests_sent: int = 0
    tokens_sent: float = 0.0


@runtime_checkable
class Grants(Protocol):
    """Rate limits kept elsewhere and handed out in grants (a Ray cluster's limiter actor,
    engines/ray_limits.py): before a reservation, wait until a grant covers it."""

    async def replenish(self, tokens: float) -> None:
        """Return once the next `reserve` of `tokens` is covered by a grant."""


class Limiter(Protocol):
    @property
    def longest_wait(self) -> float:
        """The longest Retry-After obeyed; a server asking for more stops the run."""

    async def admit_request(self, body: dict[str, Any], chat: bool, first_attempt: bool) -> Ticket:
        """Wait until the request may go (limits, slots, the breaker); its ticket."""

    def down(self) -> bool:
        """Whether the endpoint is held to be down right now (the breaker is open)."""

    def release(self, ticket: Ticket) -> None:
        """Free the attempt's slot, whatever became of it."""

    def attempt_timeout(self) -> float:
        """How long the next attempt may take."""

    async def retry_permit(self, unless: Callable[[], bool] | None = None) -> None:
        """Wait until the retry budget allows another retry, or until `unless()`."""

    def record(
        self,
        ticket: Ticket,
        headers: Mapping[str, str] | None,
        verdict: Verdict | None,
        usage: Usage | None = None,
        latency: float | None = None,
        chat: bool = True,
    ) -> None:
        """Learn from one attempt's result: limits, concurrency, breaker, timeout."""

    def holdup(self, retrying: int = 0) -> Holdup:
        """What sending waits for right now (for stall reports)."""
