"""Deterministic answers: the same request always gets the same content, tokens and usage.

Pure: no I/O, no clock. Tests import `chat_content` and `embedding` to compute the
answer each item must get, and so prove every result belongs to its own item.
Checking what a request may ask is `request_parsing`'s job.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.protocol.messages import message_text

if TYPE_CHECKING:
    from pipeline.simulator.request_parsing import ChatRequest

LABELS = ("positive", "negative", "neutral")
DEFAULT_EMBEDDING_DIMENSIONS = 8
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3


def content_digest(value: Any) -> str:
    """sha256 hex of the canonical JSON of `messages` (chat) or `input` (embeddings).

    The simulator keys its per-request counts and its `[sim:...]` tags on it.
    """
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def chat_content(messages: Any) -> str:
    """The answer the simulator gives to these messages, e.g. `neutral [sim:3f2a9c1e07]`."""
    return _content_for_digest(content_digest(messages))


def _content_for_digest(digest: str) -> str:
    label = LABELS[int(digest[:8], 16) % len(LABELS)]
    return f"{label} [sim:{digest[:10]}]"


def embedding(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> list[float]:
    """A unit-length vector that depends only on `text` and `dimensions`."""
    if dimensions < 1:
        raise ValueError(f"dimensions must be at least 1, got {dimensions}")
    seed = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    stream = bytearray(seed)
    block = 0
    while len(stream) < dimensions:
        block += 1
        stream += hashlib.sha256(seed + block.to_bytes(4, "big")).digest()
    # Centre each byte on zero so vectors point in every direction, not one orthant.
    raw = [byte - 127.5 for byte in stream[:dimensions]]
    norm = math.sqrt(sum(value * value for value in raw))
    return [value / norm for value in raw]


def count_tokens(text: str) -> int:
    """A rough token estimate: one token per four characters, at least one."""
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(count_tokens(message_text(message)) + TOKENS_PER_MESSAGE for message in messages)


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message)
    return ""


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


@dataclass(frozen=True, slots=True)
class Completion:
    content: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    digest: str


def complete(request: ChatRequest) -> Completion:
    """The answer to a chat request, cut to `max_tokens` as a real model would be."""
    content = _content_for_digest(request.digest)
    finish_reason = "stop"
    if request.max_tokens is not None and request.max_tokens < count_tokens(content):
        content = content[: request.max_tokens * CHARS_PER_TOKEN]
        finish_reason = "length"
    return Completion(
        content=content,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens(request.messages),
        completion_tokens=count_tokens(content),
        digest=request.digest,
    )


def chat_completion_body(
    completion_id: str, created: int, model: str, completion: Completion
) -> dict[str, Any]:
    """A `chat.completion` object as OpenAI returns it."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.content},
                "finish_reason": completion.finish_reason,
            }
        ],
        "usage": usage(completion.prompt_tokens, completion.completion_tokens),
    }


def embeddings_body(model: str, texts: list[str], dimensions: int, tokens: int) -> dict[str, Any]:
    """An embeddings `list` object as OpenAI returns it, one vector per text."""
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": embedding(text, dimensions)}
            for index, text in enumerate(texts)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
