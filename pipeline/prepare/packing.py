"""Packing embeddings inputs into shared requests (pure; no I/O).

One embeddings request can carry many inputs, and is billed by their tokens
alone: sending 64 texts in one request instead of 64 requests costs the same
tokens and a sixty-fourth of the requests, which is what a requests-per-minute
limit counts. A pack holds at most `inputs` inputs and at most `tokens`
estimated tokens (an input larger than that goes alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")

DEFAULT_INPUTS_PER_REQUEST = 64
# OpenAI allows 300,000 tokens in one embeddings request; the estimate (4 characters a
# token) runs low for some languages, so a pack stops well short of it.
PACK_TOKEN_BUDGET = 200_000


class PackLimits(NamedTuple):
    inputs: int = DEFAULT_INPUTS_PER_REQUEST
    tokens: int = PACK_TOKEN_BUDGET


@dataclass(slots=True)
class Packer(Generic[T]):
    """Collects entries into packs: `add` returns the packs it completed (0, 1 or 2)."""

    limits: PackLimits
    _entries: list[T] = field(default_factory=list)
    _tokens: int = 0

    def add(self, entry: T, tokens: int) -> list[list[T]]:
        done = []
        if self._entries and self._tokens + tokens > self.limits.tokens:
            done.append(self.flush())
        self._entries.append(entry)
        self._tokens += tokens
        if len(self._entries) >= self.limits.inputs or self._tokens >= self.limits.tokens:
            done.append(self.flush())
        return done

    def flush(self) -> list[T]:
        """The pack begun so far (perhaps empty); the next one starts empty."""
        pack, self._entries, self._tokens = self._entries, [], 0
        return pack

    def __len__(self) -> int:
        return len(self._entries)


def shares(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights` (whole numbers adding up to `total`):
    how a packed request's billed tokens are told apart per input."""
    if not weights:
        return []
    weight = sum(weights)
    if weight <= 0:
        even = [total // len(weights)] * len(weights)
        even[-1] += total - sum(even)
        return even
    parts = [total * w // weight for w in weights]
    # The remainder goes to the largest fractions first, so no share is off by more than 1.
    order = sorted(range(len(weights)), key=lambda i: (total * weights[i]) % weight, reverse=True)
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts
