"""Reading a provider's 2xx body into the output we keep."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from pipeline.core.config import Endpoint
from pipeline.core.models import Usage

# A cut-off or filtered answer is a result worth keeping once, never worth serving again.
UNREUSABLE_FINISH_REASONS = frozenset({"length", "content_filter"})


class InvalidAnswer(Exception):
    """A 2xx whose body is not a usable answer (not JSON, no choices, truncated).

    `usage` holds the tokens the body reports all the same: an unusable answer is
    still billed."""

    def __init__(self, message: str, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage or Usage()


class Answer(NamedTuple):
    output: Any
    usage: Usage
    reusable: bool  # complete and non-empty: safe to serve again from the cache


def parse_answer(endpoint: Endpoint, payload: bytes) -> Answer:
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidAnswer(f"answer is not JSON ({len(payload)} bytes): {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidAnswer("answer is JSON but not an object")
    usage = _usage(body.get("usage"))
    try:
        if endpoint is Endpoint.EMBEDDINGS:
            return Answer(_embedding_output(body), usage, True)
        output = _chat_output(body)
    except InvalidAnswer as exc:
        raise InvalidAnswer(str(exc), usage) from exc
    return Answer(output, usage, _has_text(output) and _finished_normally(body))


def _has_text(output: Any) -> bool:
    return bool(output.strip()) if isinstance(output, str) else bool(output)


def _finished_normally(body: dict[str, Any]) -> bool:
    return body["choices"][0].get("finish_reason") not in UNREUSABLE_FINISH_REASONS


def _chat_output(body: dict[str, Any]) -> Any:
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise InvalidAnswer("answer has no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise InvalidAnswer("answer's first choice has no message")
    content = message.get("content")
    if isinstance(content, str):
        return content
    if message.get("tool_calls"):
        return message["tool_calls"]
    raise InvalidAnswer("answer's message has no content")


def _embedding_output(body: dict[str, Any]) -> Any:
    data = body.get("data")
    if not isinstance(data, list) or not data:
        raise InvalidAnswer("answer has no embedding data")
    try:
        ordered = sorted(data, key=lambda entry: entry.get("index", 0))
        vectors = [entry["embedding"] for entry in ordered]
    except (AttributeError, KeyError, TypeError) as exc:
        raise InvalidAnswer("answer's embedding data is malformed") from exc
    return vectors[0] if len(vectors) == 1 else vectors


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    prompt = _count(raw.get("prompt_tokens"))
    completion = _count(raw.get("completion_tokens"))
    total = _count(raw.get("total_tokens")) or prompt + completion
    return Usage(prompt, completion, total, min(_cached_prompt(raw), prompt))


def _cached_prompt(usage: dict[str, Any]) -> int:
    """Prompt tokens the provider served from its own prompt cache, billed at a lower
    price: OpenAI's `prompt_tokens_details.cached_tokens`, or Anthropic's
    `cache_read_input_tokens` as gateways pass it through."""
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and "cached_tokens" in details:
        return _count(details.get("cached_tokens"))
    return _count(usage.get("cache_read_input_tokens"))


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
