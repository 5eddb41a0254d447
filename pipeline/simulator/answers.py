"""Deterministic answers: the same request always gets the same content, tokens and usage.

The shapes they travel in are here too: a `chat.completion`, the `chat.completion.chunk`
events of a streamed answer, an embeddings `list`.

Pure: no I/O, no clock. Tests import `chat_content` and `embedding` to compute the
answer each item must get, and so prove every result belongs to its own item; with a
`response_format`, `chat_content` gives the JSON text the simulator answers.
Checking what a request may ask is `request_parsing`'s job.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.protocol.messages import message_text
from pipeline.simulator.faults import Fault
from pipeline.simulator.schema_values import value_for_schema, violating_value

if TYPE_CHECKING:
    from pipeline.simulator.request_parsing import ChatRequest

LABELS = ("positive", "negative", "neutral")
# What a `json_object` answer promises, so [[sim:schema_violation]] has something to break.
JSON_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}
DONE_EVENT = b"data: [DONE]\n\n"
DEFAULT_EMBEDDING_DIMENSIONS = 8
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3


def content_digest(value: Any) -> str:
    """sha256 hex of the canonical JSON of `messages` (chat) or `input` (embeddings).

    The simulator keys its per-request counts and its `[sim:...]` tags on it.
    """
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def chat_content(messages: Any, response_format: Any = None, bent_by: str | None = None) -> str:
    """The answer the simulator gives to these messages, e.g. `neutral [sim:3f2a9c1e07]`.

    With a `response_format` (as sent, and accepted by the simulator) it is JSON text:
    `{"label":"neutral","sim":"3f2a9c1e07"}` for `json_object`, a value made from the
    schema for `json_schema`. Raises `UnsatisfiableSchema` where the simulator answers 400.
    `bent_by="invalid_json"` or `"schema_violation"` gives what those triggers answer.
    """
    kind, schema = _format_parts(response_format)
    fault = None if bent_by is None else Fault(bent_by)
    return answer_content(content_digest(messages), kind, schema, fault)


def answer_content(
    digest: str,
    kind: str = "text",
    schema: dict[str, Any] | None = None,
    fault: Fault | None = None,
) -> str:
    """The content for a request digest in a response format, bent by a content `fault`."""
    text = _content_for_digest(digest)
    if kind == "text":
        return text
    value = label_object(digest) if schema is None else value_for_schema(schema, digest, text)
    if fault is Fault.SCHEMA_VIOLATION:
        bent = violating_value(value, JSON_OBJECT_SCHEMA if schema is None else schema)
        value = value if bent is None else bent
    content = orjson.dumps(value).decode()
    return cut_json(content) if fault is Fault.INVALID_JSON else content


def label_object(digest: str) -> dict[str, str]:
    """The `json_object` answer: the usual label and the digest tag, as JSON fields."""
    return {"label": _label(digest), "sim": digest[:10]}


def cut_json(content: str) -> str:
    """JSON text made unparseable: an object or array cut in half, anything else half-opened."""
    if content[:1] in ("{", "["):
        # A proper prefix of an object or array never closes its first bracket.
        return content[: max(1, len(content) // 2)]
    return "{" + content


def _format_parts(response_format: Any) -> tuple[str, dict[str, Any] | None]:
    if not isinstance(response_format, dict):
        return "text", None
    kind = str(response_format.get("type", "text"))
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if kind == "json_schema" and isinstance(spec, dict) else None
    return kind, schema


def _content_for_digest(digest: str) -> str:
    return f"{_label(digest)} [sim:{digest[:10]}]"


def _label(digest: str) -> str:
    return LABELS[int(digest[:8], 16) % len(LABELS)]


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


def complete(request: ChatRequest, fault: Fault | None = None) -> Completion:
    """The answer to a chat request, cut to `max_tokens` as a real model would be.

    A content `fault` ([[sim:invalid_json]], [[sim:schema_violation]]) bends JSON answers.
    """
    response_format = request.response_format
    content = answer_content(request.digest, response_format.kind, response_format.schema, fault)
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


def models_body(models: Iterable[str]) -> dict[str, Any]:
    """The `list` of models `GET /v1/models` returns."""
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "sluice-sim"}
            for name in models
        ],
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


def content_pieces(content: str, size: int = CHARS_PER_TOKEN) -> list[str]:
    """The content in pieces of `size` characters, as a model streams a token at a time."""
    if size < 1:
        raise ValueError(f"a piece must hold at least one character, got {size}")
    return [content[start : start + size] for start in range(0, len(content), size)]


def stream_chunks(
    completion_id: str, created: int, model: str, completion: Completion, include_usage: bool
) -> list[dict[str, Any]]:
    """The `chat.completion.chunk` objects of one answer, in the order they are sent."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        if include_usage:
            body["usage"] = None  # OpenAI marks every chunk but the last this way
        return body

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": piece}) for piece in content_pieces(completion.content)]
    chunks.append(chunk({}, completion.finish_reason))
    if include_usage:
        final = chunk({})
        final["choices"] = []
        final["usage"] = usage(completion.prompt_tokens, completion.completion_tokens)
        chunks.append(final)
    return chunks


def stream_events(
    completion_id: str, created: int, model: str, completion: Completion, include_usage: bool
) -> list[bytes]:
    """Each chunk as a `data: {...}` event, then `data: [DONE]`."""
    chunks = stream_chunks(completion_id, created, model, completion, include_usage)
    return [b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks] + [DONE_EVENT]
