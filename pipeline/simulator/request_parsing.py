"""Request parsing: check a chat or embeddings body the way the API does.

Pure: no I/O, no clock. A body the API would refuse raises `InvalidRequest`,
which the server answers with 400 invalid_request_error (404 for an unknown model).
`response_format` and `stream` are `answer_shape`'s to check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.simulator.answer_shape import (
    RESPONSE_FORMAT,
    TEXT_FORMAT,
    ResponseFormat,
    parse_response_format,
    stream_settings,
)
from pipeline.simulator.answers import content_digest
from pipeline.simulator.faults import InvalidRequest as InvalidRequest  # re-exported

MAX_EMBEDDING_DIMENSIONS = 8192
MAX_EMBEDDING_INPUTS = 2048


def parse_json_body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The OpenAI API expects "
            "a JSON payload, but what was sent was not valid JSON."
        ) from error


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None
    digest: str
    response_format: ResponseFormat = TEXT_FORMAT
    stream: bool = False
    include_usage: bool = False
    """Whether a stream ends with a chunk carrying `usage` (`stream_options.include_usage`)."""


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
    stream, include_usage = stream_settings(body)
    response_format = parse_response_format(body.get(RESPONSE_FORMAT))
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and not _is_positive_int(max_tokens):
        raise InvalidRequest("'max_tokens' must be a positive integer.", "max_tokens")
    try:
        digest = content_digest(messages)
    except orjson.JSONEncodeError as error:
        # orjson reads deeper nesting than it writes; such a body is garbage anyway.
        raise InvalidRequest("'messages' is nested too deeply.", "messages") from error
    return ChatRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        digest=digest,
        response_format=response_format,
        stream=stream,
        include_usage=include_usage,
    )


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
    if body.get("stream") not in (None, False):
        raise InvalidRequest("Unrecognized request argument supplied: stream", "stream")
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


def check_context_length(prompt: int, completion: int, limit: int) -> None:
    if prompt + completion > limit:
        raise InvalidRequest(
            context_length_message(limit, prompt, completion), "messages", "context_length_exceeded"
        )


def check_input_lengths(token_counts: list[int], limit: int) -> None:
    """Refuse a packed embeddings request whose input `i` alone exceeds the context."""
    for index, tokens in enumerate(token_counts):
        if tokens > limit:
            raise InvalidRequest(
                f"Invalid 'input[{index}]': this model's maximum context length is {limit} "
                f"tokens, however you requested {tokens} tokens in this input. "
                "Please reduce its length.",
                f"input[{index}]",
                "context_length_exceeded",
            )


def check_model(model: str, known_models: tuple[str, ...] | None) -> None:
    """With a list of known models, refuse any other as OpenAI does: 404 model_not_found."""
    if known_models is not None and model not in known_models:
        raise InvalidRequest(
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
            status=404,
        )


def context_length_message(limit: int, prompt: int, completion: int) -> str:
    return (
        f"This model's maximum context length is {limit} tokens. However, you requested "
        f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the "
        "completion). Please reduce the length of the messages or completion."
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
