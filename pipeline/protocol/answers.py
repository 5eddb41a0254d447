"""Reading a provider's 2xx body into the output we keep."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from pipeline.core.config import Endpoint
from pipeline.core.models import Usage
from pipeline.protocol.structured import NotStructured, StructuredOutput

# A cut-off or filtered answer is a result worth keeping once, never worth serving again.
UNREUSABLE_FINISH_REASONS = frozenset({"length", "content_filter"})


class InvalidAnswer(Exception):
    """A 2xx whose body is not a usable answer (not JSON, no choices, truncated, not
    the structured output asked for).

    `usage` holds the tokens the body reports all the same: an unusable answer is
    still billed. `answer` is the model's text when it was there but unusable, so
    the quarantine row can show what the model said."""

    def __init__(self, message: str, usage: Usage | None = None, answer: str | None = None) -> None:
        super().__init__(message)
        self.usage = usage or Usage()
        self.answer = answer


class Answer(NamedTuple):
    output: Any
    usage: Usage
    reusable: bool  # complete and non-empty: safe to serve again from the cache


def parse_answer(
    endpoint: Endpoint,
    payload: bytes,
    structured: StructuredOutput | None = None,
    inputs: int = 1,
) -> Answer:
    """The output of a 2xx body; with `structured`, the chat answer's parsed and
    validated JSON instead of its text. A packed embeddings request (`inputs` > 1)
    must be answered with one vector per input: its output is their list, by index."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidAnswer(f"answer is not JSON ({len(payload)} bytes): {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidAnswer("answer is JSON but not an object")
    usage = _usage(body.get("usage"))
    try:
        if endpoint is Endpoint.EMBEDDINGS:
            if inputs > 1:
                return Answer(_packed_vectors(body, inputs), usage, True)
            return Answer(_embedding_output(body), usage, True)
        output, finish_reason = _chat_output(body)
    except InvalidAnswer as exc:
        raise InvalidAnswer(str(exc), usage) from exc
    # Not a set look-up alone: a hostile server's finish_reason may be a list.
    finished = type(finish_reason) is not str or finish_reason not in UNREUSABLE_FINISH_REASONS
    if structured is not None:
        if not isinstance(output, str):
            raise InvalidAnswer("answer has tool calls, not the JSON asked for", usage)
        try:
            # A cut-off answer that still parses and validates is kept, never served again.
            return Answer(structured.check(output, finish_reason), usage, finished)
        except NotStructured as exc:
            raise InvalidAnswer(str(exc), usage, answer=output) from exc
    return Answer(output, usage, finished and _has_text(output))


def _has_text(output: Any) -> bool:
    # Not output.strip(), which copies the text: whitespace alone is no answer either.
    return (output != "" and not output.isspace()) if isinstance(output, str) else bool(output)


def _chat_output(body: dict[str, Any]) -> tuple[Any, Any]:
    """The first choice's output (its text, else its tool calls) and finish reason."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise InvalidAnswer("answer has no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise InvalidAnswer("answer's first choice has no message")
    content = message.get("content")
    if isinstance(content, str):
        return content, choice.get("finish_reason")
    if message.get("tool_calls"):
        return message["tool_calls"], choice.get("finish_reason")
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:  # structured outputs' way of declining
        raise InvalidAnswer(f"the model refused: {refusal}")
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


def _packed_vectors(body: dict[str, Any], inputs: int) -> list[Any]:
    """Each input's vector, placed by its `index`: the order of `data` is not promised."""
    data = body.get("data")
    if not isinstance(data, list) or not data:
        raise InvalidAnswer("answer has no embedding data")
    vectors: list[Any] = [None] * inputs
    for entry in data:
        index = entry.get("index") if isinstance(entry, dict) else None
        vector = entry.get("embedding") if isinstance(entry, dict) else None
        if (
            not isinstance(index, int)
            or isinstance(index, bool)
            or not 0 <= index < inputs
            or vector is None
            or vectors[index] is not None
        ):
            raise InvalidAnswer(f"answer's embedding data does not map onto the {inputs} inputs")
        vectors[index] = vector
    if any(vector is None for vector in vectors):
        found = sum(vector is not None for vector in vectors)
        raise InvalidAnswer(f"answer has {found} vectors for {inputs} inputs")
    return vectors


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    if len(raw) == 3:  # the common answer: the three counts alone, all sound
        prompt, completion, total = (
            raw.get("prompt_tokens"),
            raw.get("completion_tokens"),
            raw.get("total_tokens"),
        )
        if (
            type(prompt) is int
            and type(completion) is int
            and type(total) is int
            and prompt >= 0
            and completion >= 0
            and total > 0
        ):
            return Usage(prompt, completion, total)
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


def embedding_answer(vector: Any, usage: Usage, model: str | None) -> bytes:
    """The answer a single-input request for `vector` would have had: how one input of a
    packed request is stored in the cache, so a later run finds it input by input."""
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": vector}],
        "model": model,
        "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens},
    }
    return orjson.dumps(body)
