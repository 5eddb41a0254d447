"""What the dispatcher needs of traffic control: the `Limiter` seam.

Today's implementation is `TrafficControl` (control.py), in-process; a limiter
shared across processes (one account's limit for several runs) would be another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.core.models import Usage
from pipeline.traffic.retry_policy import Verdict
from pipeline.traffic.stalls import Holdup


@dataclass(slots=True)
class Ticket:
    """One admitted attempt: what it reserved, and whether it probes an open breaker."""

    tokens: float
    probe: bool


class Limiter(Protocol):
    @property
    def longest_wait(self) -> float:
        """The longest Retry-After obeyed; a server asking for more stops the run."""

    async def admit_request(self, body: dict[str, Any], chat: bool, first_attempt: bool) -> Ticket:
        """Wait until the request may go (limits, slots, the breaker); its ticket."""

    def release(self, ticket: Ticket) -> None:
        """Free the attempt's slot, whatever became of it."""

    def attempt_timeout(self) -> float:
        """How long the next attempt may take."""

    async def retry_permit(self) -> None:
        """Wait until the retry budget allows another retry."""

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
