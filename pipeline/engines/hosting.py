"""Runs hosted by a long-lived process (`sluice serve`): what they share, how each is stopped.

A run on its own opens its HTTP client and its traffic control, and stops on a
signal. A hosted run takes both from its host, so that every job of a server
draws on one limiter per model (one account's limits) and one connection pool;
and it stops when the host asks (a cancelled job, a server shutting down), never
on a signal of its own. The response cache is shared through its directory: each
run opens its own connection to it, as separate processes do, since its SQLite
connections belong to one run's threads.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.core.clock import Clock, SystemClock
from pipeline.core.config import TrafficConfig
from pipeline.core.events import EventSink
from pipeline.dispatch.transport import Transport
from pipeline.traffic.control import TrafficControl
from pipeline.traffic.limiter import Limits, RateLimiter
from pipeline.traffic.shared_limits import SharedLimitsFile, SharedRateLimiter, account_key


class TrafficPool:
    """Traffic control per model, made on first use: a run's own, or a host's for all
    its runs. Providers count limits per model, so each model has its own. With
    `--shared-limits`, each model's rate limits are kept in that file, shared with
    every other sluice process of the same account (`account`: base URL and key).
    `granted` makes the limiter of an account and model some other way (a Ray worker's,
    whose limits the cluster's keeper grants: ray_limits.py)."""

    def __init__(
        self,
        config: TrafficConfig,
        events: EventSink,
        clock: Clock | None = None,
        account: tuple[str, str | None] = ("", None),
        granted: Callable[[str, Limits], RateLimiter] | None = None,
    ) -> None:
        self._config = config
        self._events = events
        self.clock = clock or SystemClock()
        self._account = account
        self._granted = granted
        self._shared = SharedLimitsFile(config.shared_limits) if config.shared_limits else None
        self._by_model: dict[str, TrafficControl] = {}

    def for_model(self, model: str | None) -> TrafficControl:
        key = model or ""
        traffic = self._by_model.get(key)
        if traffic is None:
            traffic = TrafficControl(
                self._config, self.clock, self._events, random.Random(), self._limiter(model)
            )
            self._by_model[key] = traffic
        return traffic

    def _limiter(self, model: str | None) -> RateLimiter | None:
        base_url, api_key = self._account
        key, limits = (
            account_key(base_url, api_key, model),
            Limits(self._config.rpm, self._config.tpm),
        )
        if self._granted is not None:
            return self._granted(key, limits)
        if self._shared is None:
            return None  # the process's own
        return SharedRateLimiter(self._shared, key, limits)


class StopRequest:
    """A host's way to stop one hosted run: nothing new is sent, requests in flight land
    for `grace` seconds, complete batches are written, and the run ends with `code`."""

    def __init__(self) -> None:
        self.code: int | None = None
        self.grace = 0.0
        self._act: Callable[[float], None] | None = None

    def stop(self, code: int, grace: float) -> None:
        if self.code is not None:
            return
        self.code, self.grace = code, grace
        if self._act is not None:
            self._act(grace)

    def attach(self, act: Callable[[float], None]) -> None:
        """What stopping does, once the run has begun; a stop asked before acts now."""
        self._act = act
        if self.code is not None:
            act(self.grace)

    def detach(self) -> None:
        self._act = None


@dataclass(slots=True)
class Hosted:
    """What a hosted run takes from its host."""

    traffic: TrafficPool  # the host's limits, per model
    transport: Transport  # the host's HTTP client
    stop: StopRequest
    sinks: tuple[EventSink, ...] = ()  # the host's consumers of the run's events (metrics)
