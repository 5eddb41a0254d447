"""Deterministic answers: the same request always gets the same content and usage.

Pure: no I/O, no clock. Tests import `chat_content` and `embedding` to compute the
answer each item must get, and so prove every result belongs to its own item.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import orjson

LABELS = ("positive", "negative", "neutral")
DEFAULT_EMBEDDING_DIMENSIONS = 8
MAX_EMBEDDING_DIMENSIONS = 8192
MAX_EMBEDDING_INPUTS = 2048
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3


class InvalidRequest(Exception):
    """A body the API refuses with 400 invalid_request_error."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


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


def message_text(message: dict[str, Any]) -> str:
    """The text of a message, whether `content` is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


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
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None
    digest: str


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


def check_context_length(prompt: int, completion: int, limit: int) -> None:
    if prompt + completion > limit:
        raise InvalidRequest(
            context_length_message(limit, prompt, completion), "messages", "context_length_exceeded"
        )


def context_length_message(limit: int, prompt: int, completion: int) -> str:
    return (
        f"This model's maximum context length is {limit} tokens. However, you requested "
        f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the "
        "completion). Please reduce the length of the messages or completion."
    )


def parse_json_body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The OpenAI API expects "
            "a JSON payload, but what was sent was not valid JSON."
        ) from error


def parse_chat_request(body: Any) -> ChatRequest:
    """Check a chat body the way the API does; raise InvalidRequest naming what is wrong."""
    model = _require_model(body)
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("Missing required parameter: 'messages'.", "messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array.", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(
                f"Invalid value for 'messages[{index}]': expected an object with a 'role'.",
                f"messages[{index}]",
            )
    if body.get("stream") is True:
        raise InvalidRequest("sluice sim does not support 'stream': true.", "stream")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and not _is_positive_int(max_tokens):
        raise InvalidRequest("'max_tokens' must be a positive integer.", "max_tokens")
    try:
        digest = content_digest(messages)
    except orjson.JSONEncodeError as error:
        # orjson reads deeper nesting than it writes; such a body is garbage anyway.
        raise InvalidRequest("'messages' is nested too deeply.", "messages") from error
    return ChatRequest(model=model, messages=messages, max_tokens=max_tokens, digest=digest)


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    model: str
    texts: list[str]
    dimensions: int | None
    digest: str


def parse_embedding_request(body: Any) -> EmbeddingRequest:
    model = _require_model(body)
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if (
        not isinstance(texts, list)
        or not 1 <= len(texts) <= MAX_EMBEDDING_INPUTS
        or not all(isinstance(text, str) and text for text in texts)
    ):
        raise InvalidRequest(
            "'input' must be a non-empty string or an array of 1 to "
            f"{MAX_EMBEDDING_INPUTS} non-empty strings.",
            "input",
        )
    dimensions = body.get("dimensions")
    if dimensions is not None and not (
        _is_positive_int(dimensions) and dimensions <= MAX_EMBEDDING_DIMENSIONS
    ):
        raise InvalidRequest(
            f"'dimensions' must be an integer from 1 to {MAX_EMBEDDING_DIMENSIONS}.", "dimensions"
        )
    return EmbeddingRequest(
        model=model, texts=texts, dimensions=dimensions, digest=content_digest(raw)
    )


def _require_model(body: Any) -> str:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter", "model")
    return model


def _is_positive_int(value: Any) -> bool:
    # bool is an int subclass; `true` is not a token count.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
