"""Token counts estimated from a request body, before the server tells the true count
(pure).

No tokenizer: a run must not download one. The limiter and budgets only need to be
close, since each answer's `usage` settles the difference; `--max-input-tokens`
compares against the same estimate.
"""

from __future__ import annotations

from typing import Any

from pipeline.protocol.messages import message_text

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def prompt_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    if isinstance(messages, list):
        return sum(text_tokens(message_text(m)) + TOKENS_PER_MESSAGE for m in messages)
    embedded = body.get("input")
    if isinstance(embedded, list):
        return sum(text_tokens(x if isinstance(x, str) else str(x)) for x in embedded)
    return text_tokens(embedded if isinstance(embedded, str) else "")


def completion_cap(body: dict[str, Any]) -> int | None:
    """The most completion tokens the request allows, or None when it sets no bound."""
    cap = body.get("max_completion_tokens") or body.get("max_tokens")
    choices = body.get("n", 1)
    if not isinstance(cap, int) or isinstance(cap, bool) or cap <= 0:
        return None
    return cap * (choices if isinstance(choices, int) and choices > 0 else 1)


def text_tokens(text: str) -> int:
    """The estimate for a text: CHARS_PER_TOKEN characters a token, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)
