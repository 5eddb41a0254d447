"""Token estimates for the limiter, before the server tells us the true count (pure).

No tokenizer: a run must not download one, and the limiter only needs to be
close, since each answer's `usage` settles the difference and the server's
remaining count corrects what is left.
"""

from __future__ import annotations

from typing import Any

from pipeline.protocol.token_count import completion_cap, prompt_tokens

# What a chat answer is assumed to cost before any has been seen, when max_tokens is unset.
PRIOR_COMPLETION_TOKENS = 256.0


class CompletionAverage:
    """The running mean of real completion lengths, starting from a prior."""

    __slots__ = ("_count", "_total")

    def __init__(self, prior: float = PRIOR_COMPLETION_TOKENS) -> None:
        self._total = prior
        self._count = 1

    def add(self, completion_tokens: int) -> None:
        self._total += completion_tokens
        self._count += 1

    @property
    def mean(self) -> float:
        return self._total / self._count


def expected_tokens(body: dict[str, Any], completions: CompletionAverage, chat: bool) -> float:
    """Prompt plus the completion to expect: max_tokens when set, else the running mean."""
    if not chat:
        return float(prompt_tokens(body))
    cap = completion_cap(body)
    return prompt_tokens(body) + (float(cap) if cap is not None else completions.mean)
