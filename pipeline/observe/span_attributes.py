"""Span attributes: pure functions of a run's events and settings.

Names follow the OpenTelemetry semantic conventions where one exists (GenAI:
`gen_ai.*`; HTTP and server: `http.*`, `server.*`, `error.type`), and are
`sluice.*` otherwise. Values are what OpenTelemetry accepts (`plain_attributes`).
Content (prompts, answers) is built only by `prompt_attributes` and
`output_attributes`, which the recorder calls only when asked to.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from pipeline.core.config import RunConfig
from pipeline.core.events import RequestSent
from pipeline.core.models import Item, Outcome, Success

AttributeValue = str | bool | int | float | list[str] | list[bool] | list[int] | list[float]
Attributes = dict[str, AttributeValue]


def item_id(item: Item) -> str | int:
    """The item's id; an item without a valid id is known by its file and line."""
    return item.id if item.id is not None else f"{item.source}:{item.line}"


def _outcome(outcome: Outcome) -> str:
    return "ok" if isinstance(outcome, Success) else str(outcome.kind)


def outcome_attributes(outcome: Outcome) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "sluice.item.cached": isinstance(outcome, Success) and outcome.cached,
        "sluice.item.attempts": outcome.attempts,
        "sluice.outcome": _outcome(outcome),
    }
    if isinstance(outcome, Success):
        attributes["sluice.item.input_tokens"] = plain_value(outcome.usage.prompt_tokens)
        attributes["sluice.item.output_tokens"] = plain_value(outcome.usage.completion_tokens)
    else:
        attributes["error.type"] = str(outcome.kind)
        if outcome.status is not None:
            attributes["http.response.status_code"] = outcome.status
    return attributes


def output_attributes(outcome: Outcome) -> dict[str, Any]:
    """The answer (content: only with --trace-content): text as it came, else its JSON."""
    if isinstance(outcome, Success):
        return {"sluice.item.output": _text(outcome.output)}
    return {}


def operation_name(body: Mapping[str, Any]) -> str | None:
    """The GenAI operation a request body asks for, from its shape."""
    if "messages" in body:
        return "chat"
    if "input" in body:
        return "embeddings"
    if "prompt" in body:
        return "text_completion"
    return None


# Request settings that are not content, by their GenAI attribute names.
_REQUEST_SETTINGS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "seed": "gen_ai.request.seed",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "dimensions": "gen_ai.embeddings.dimension.count",
}


def _model(body: Mapping[str, Any]) -> str | None:
    model = body.get("model")
    return model if isinstance(model, str) else None


def attempt_span_name(body: Mapping[str, Any]) -> str:
    """`{operation} {model}`, as the GenAI conventions name a call to a model."""
    operation = operation_name(body)
    if operation is None:
        return "sluice.attempt"
    model = _model(body)
    return f"{operation} {model}" if model else operation


def attempt_attributes(event: RequestSent, server: Mapping[str, Any]) -> dict[str, Any]:
    """An attempt's attributes as it goes out (its answer adds status, usage, error)."""
    attributes = dict(request_attributes(event.body, server))
    attributes.update(try_attributes(event))
    return attributes


def request_attributes(body: Mapping[str, Any], server: Mapping[str, Any]) -> Attributes:
    """What an attempt's request says beyond its content: the operation, the model and its
    settings, and the server. The same for every request of a run but its messages, so
    the recorder keeps it by `request_shape`."""
    operation = operation_name(body)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": _model(body),
        **server,
    }
    for key, attribute in _REQUEST_SETTINGS.items():
        value = body.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[attribute] = value
    if isinstance(count := body.get("n"), int) and count != 1:
        attributes["gen_ai.request.choice.count"] = count
    if operation == "chat":
        attributes["gen_ai.output.type"] = _output_type(body)
    return plain_attributes(attributes)


_SHAPE_KEYS = ("model", *_REQUEST_SETTINGS, "n")


def request_shape(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What `request_attributes` and the span's name depend on, as a key (unhashable
    when a setting is, e.g. a list: then it is not one)."""
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    operation = ("messages" in body, "input" in body, "prompt" in body)
    return (*map(body.get, _SHAPE_KEYS), kind, *operation)


def try_attributes(event: RequestSent) -> Attributes:
    """What is particular to one try: the item, the try's number, its waits, and in a
    workflow its step."""
    attributes: Attributes = {
        "sluice.item.id": plain_value(item_id(event.item)),
        "sluice.attempt": event.attempt,
        "sluice.queue_wait_s": round(event.queued, 6),
        "sluice.limiter_wait_s": round(event.limiter_wait, 6),
    }
    if event.attempt > 1:
        attributes["http.request.resend_count"] = event.attempt - 1
    if event.step is not None:  # --workflow: the step the try asks for
        attributes["sluice.step"] = event.step
    return attributes


def _output_type(body: Mapping[str, Any]) -> str:
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    return "json" if kind in ("json_object", "json_schema") else "text"


# gen_ai.provider.name by the API's host (a suffix of it); other hosts name no provider.
_PROVIDERS = (
    ("api.openai.com", "openai"),
    (".openai.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.inference"),
    (".models.ai.azure.com", "azure.ai.inference"),
    ("api.anthropic.com", "anthropic"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.perplexity.ai", "perplexity"),
    ("api.x.ai", "x_ai"),
    ("api.cohere.com", "cohere"),
    ("api.cohere.ai", "cohere"),
    (".amazonaws.com", "aws.bedrock"),
)


def server_attributes(base_url: str) -> dict[str, Any]:
    """server.address, server.port and, when the host names one, gen_ai.provider.name."""
    try:
        parts = urlsplit(base_url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return {}
    if not host:
        return {}
    port = port or {"https": 443, "http": 80}.get(parts.scheme)
    attributes: dict[str, Any] = {"server.address": host, "server.port": port}
    for suffix, provider in _PROVIDERS:
        if host == suffix.lstrip(".") or host.endswith(suffix):
            attributes["gen_ai.provider.name"] = provider
            break
    return attributes


def safe_url(url: str) -> str:
    """A URL without what may hold a secret: user, password, query and fragment."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "(unreadable URL)"
    netloc = f"{host}:{port}" if port else host
    return f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else netloc + parts.path


def run_attributes(config: RunConfig) -> dict[str, Any]:
    """The run span's attributes from the config: never the key, nor a URL's credentials."""
    return {
        "sluice.job": config.observe.job or None,
        "gen_ai.request.model": config.request.model,
        "sluice.endpoint": str(config.request.endpoint),
        "sluice.base_url": safe_url(config.connection.base_url),
        "sluice.inputs": list(config.read.inputs),
        "sluice.batch_size": config.read.batch_size,
        "sluice.concurrency": config.traffic.concurrency,
        "sluice.trace_content": config.observe.trace_content,
    }


def prompt_attributes(body: Mapping[str, Any]) -> dict[str, Any]:
    """What was asked (content: only with --trace-content): chat messages in the GenAI
    conventions' message form, anything else as the request's own JSON."""
    messages = body.get("messages")
    if isinstance(messages, Sequence) and not isinstance(messages, str):
        return {"gen_ai.input.messages": _json([_input_message(m) for m in messages])}
    for key in ("input", "prompt"):
        if key in body:
            return {f"sluice.request.{key}": _text(body[key])}
    return {}


def _input_message(message: Any) -> Any:
    """An OpenAI chat message as a GenAI input message: {role, parts: [...]}."""
    if not isinstance(message, Mapping):
        return message
    content = message.get("content")
    parts: list[Any] = []
    if message.get("role") == "tool":
        call_id = message.get("tool_call_id")
        parts.append({"type": "tool_call_response", "id": call_id, "response": content})
    elif isinstance(content, str):
        parts.append({"type": "text", "content": content})
    elif isinstance(content, Sequence):
        parts.extend(_input_part(part) for part in content)
    calls = message.get("tool_calls")
    if isinstance(calls, Sequence):
        parts.extend(_tool_call(call) for call in calls)
    converted: dict[str, Any] = {"role": message.get("role"), "parts": parts}
    if "name" in message:
        converted["name"] = message["name"]
    return converted


def _tool_call(call: Any) -> Any:
    if not isinstance(call, Mapping) or not isinstance(call.get("function"), Mapping):
        return call
    function = call["function"]
    return {
        "type": "tool_call",
        "id": call.get("id"),
        "name": function.get("name"),
        "arguments": function.get("arguments"),
    }


def _input_part(part: Any) -> Any:
    if isinstance(part, Mapping) and part.get("type") == "text":
        return {"type": "text", "content": part.get("text")}
    return part  # any other part (an image, audio) as the request gave it


def plain_attributes(
    attributes: Mapping[str, Any], redact: Callable[[str], str] | None = None
) -> Attributes:
    """Attribute values OpenTelemetry accepts: scalars (64-bit integers) and lists of one
    scalar type; None dropped, anything else as JSON text; texts passed to `redact`."""
    plain: Attributes = {}
    for key, value in attributes.items():
        kind = type(value)
        if kind is str:
            plain[key] = redact(value) if redact else value
        elif kind is int:
            plain[key] = value if _INT64_MIN <= value <= _INT64_MAX else _json(value)
        elif kind is bool or kind is float:
            plain[key] = value
        elif value is None:
            continue
        elif isinstance(value, list | tuple) and _scalars_of_one_type(value):
            plain[key] = [redact(v) if redact and isinstance(v, str) else v for v in value]
        else:
            text = _json(value)
            plain[key] = redact(text) if redact else text
    return plain


_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def plain_value(value: str | int) -> str | int:
    """An id or a count as an attribute value: beyond 64 bits, as text."""
    if type(value) is int and not _INT64_MIN <= value <= _INT64_MAX:
        return str(value)
    return value


def _scalars_of_one_type(values: Sequence[Any]) -> bool:
    kinds = {type(v) for v in values}
    if len(kinds) > 1 or not kinds <= {str, bool, int, float}:
        return False
    return kinds != {int} or all(_INT64_MIN <= v <= _INT64_MAX for v in values)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _json(value)


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=_jsonable, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # what orjson refuses (integers beyond 64 bits): the slower encoder
        return json.dumps(_finite(value), default=_jsonable, skipkeys=True, ensure_ascii=False)


def _finite(value: Any) -> Any:
    """Infinities and NaN as null, as orjson writes them: `Infinity` is not JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _finite(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(inner) for inner in value]
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)
