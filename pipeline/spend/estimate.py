"""Before a run: what it will cost and how long its limits make it take (pure).

Prompt tokens are counted the way traffic control estimates them (traffic/tokens.py).
Completion tokens cannot be known before the answers exist, so the plan gives
both a ceiling (`max_tokens` on every request; none when some request sets no
bound) and an expectation from the best evidence at hand: answers already in the
cache for this job, the answer to a --probe-limits request, else `max_tokens`,
else an assumed length, and it says which.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.spend.prices import Price
from pipeline.traffic.tokens import PRIOR_COMPLETION_TOKENS


@dataclass(frozen=True, slots=True)
class CompletionGuess:
    tokens_per_request: float
    basis: str  # what the guess rests on, for the user


def completion_guess(
    cached_mean: float | None, probe_tokens: int | None, cap_mean: float | None
) -> CompletionGuess:
    """Expected completion tokens per request, and why: evidence first, capped by
    max_tokens, then max_tokens itself, then the prior traffic control starts from."""
    for mean, basis in ((cached_mean, "answers in the cache"), (probe_tokens, "the probe")):
        if mean is not None:
            expected = min(mean, cap_mean) if cap_mean is not None else float(mean)
            return CompletionGuess(expected, basis)
    if cap_mean is not None:
        return CompletionGuess(cap_mean, "max_tokens (a ceiling: answers may be shorter)")
    return CompletionGuess(
        PRIOR_COMPLETION_TOKENS, f"assumed {PRIOR_COMPLETION_TOKENS:.0f} a request"
    )


def cost_of(price: Price | None, prompt_tokens: int, completion_tokens: float) -> float | None:
    """USD; None when unpriced (never 0 for a model whose price is not known)."""
    if price is None:
        return None
    return price.cost(prompt_tokens, round(completion_tokens))


def seconds_needed(
    requests: int,
    tokens: float,
    rpm: float | None,
    tpm: float | None,
    latency: float | None,
    concurrency: int,
) -> float | None:
    """The least wall time the limits allow: requests over rpm, tokens over tpm, and
    requests in waves of `concurrency` at `latency` each; None when nothing is known."""
    bounds = []
    if rpm:
        bounds.append(requests / rpm * 60)
    if tpm:
        bounds.append(tokens / tpm * 60)
    if latency is not None:
        bounds.append(-(-requests // max(concurrency, 1)) * latency)
    if requests == 0:
        return 0.0
    return max(bounds) if bounds else None
