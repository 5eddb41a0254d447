"""The simulator's counters: what it saw, readable at `app[STATS_KEY]` and `/sim/stats`."""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

import orjson
from aiohttp import web

from pipeline.simulator import answers


@dataclass(slots=True)
class SimulatorStats:
    """What the simulator saw. Mutated on the server's event loop only."""

    requests_total: int = 0
    requests_by_path: Counter[str] = field(default_factory=Counter)
    responses_by_status: Counter[int] = field(default_factory=Counter)
    rate_limited: int = 0
    """429 rate_limit_exceeded answers; quota refusals are counted apart."""
    quota_exceeded: int = 0
    dropped: int = 0
    hung: int = 0
    malformed: int = 0
    streamed: int = 0
    """Answers sent as server-sent events, stalled ones included."""
    stalled: int = 0
    invalid_outputs: int = 0
    """JSON answers bent by [[sim:invalid_json]] or [[sim:schema_violation]]."""
    prompt_tokens: int = 0
    """Tokens of successful answers only, like the completion tokens."""
    completion_tokens: int = 0
    in_flight: int = 0
    """Accepted requests not yet answered."""
    max_in_flight: int = 0
    """The most accepted requests ever in flight at once (overlap, shown)."""
    first_admitted_at: float | None = None
    """When the first accepted request was admitted, on the simulator's monotonic clock:
    only its difference from `last_admitted_at` means anything (how long a client took
    to send, without its start-up)."""
    last_admitted_at: float | None = None
    """When the last accepted request was admitted, on the same clock."""
    requests_by_digest: Counter[str] = field(default_factory=Counter)
    """Accepted requests (past key, quota, validation, limits) per `content_digest`."""
    embedding_inputs_by_digest: Counter[str] = field(default_factory=Counter)
    """Accepted embeddings requests per input text (its `content_digest`), packed or not."""

    def times_requested(self, content: Any) -> int:
        """How many accepted requests carried these `messages` (or this embeddings `input`)."""
        return self.requests_by_digest[answers.content_digest(content)]

    def times_embedded(self, text: str) -> int:
        """How many accepted embeddings requests carried `text` as one of their inputs."""
        return self.embedding_inputs_by_digest[answers.content_digest(text)]

    def snapshot(self) -> SimulatorStats:
        return copy.deepcopy(self)

    def to_json(self) -> bytes:
        values = {item.name: getattr(self, item.name) for item in fields(self)}
        return orjson.dumps(values, option=orjson.OPT_NON_STR_KEYS)


STATS_KEY = web.AppKey("sluice_sim_stats", SimulatorStats)
