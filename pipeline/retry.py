"""When to try a request again, and how long to wait first (pure: no clock, no sleep)."""

from __future__ import annotations

import email.utils
import random
from collections.abc import Mapping
from typing import Any

import orjson

from pipeline.config import RetryConfig
from pipeline.errors import ErrorKind

RETRYABLE = frozenset({ErrorKind.TRANSIENT, ErrorKind.RATE_LIMITED})
MESSAGE_LIMIT = 500


def retry_delay(
    kind: ErrorKind,
    attempt: int,
    config: RetryConfig,
    rng: random.Random,
    server_hint: float | None = None,
) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or None to give up.

    Full jitter (a uniform draw up to the exponential ceiling) spreads retries out so
    that workers failing together do not come back together; the server's own hint
    is a floor.
    """
    if kind in RETRYABLE:
        allowed = config.max_retries
    elif kind is ErrorKind.INVALID_OUTPUT:
        allowed = config.max_invalid_output_retries
    else:
        return None
    if attempt > allowed:
        return None
    ceiling = min(config.backoff_cap, config.backoff_base * 2 ** (attempt - 1))
    return max(rng.uniform(0, ceiling), server_hint or 0.0)


def server_retry_hint(headers: Mapping[str, str], now_epoch: float) -> float | None:
    """The server's own wait: retry-after-ms, then Retry-After (seconds or HTTP date)."""
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, moment.timestamp() - now_epoch)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number >= 0 and number == number and number != float("inf") else None


def error_details(payload: bytes) -> tuple[str | None, str]:
    """(`error.code`, message) from an OpenAI-style error body, or a snippet of the text."""
    try:
        body: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        text = payload[:MESSAGE_LIMIT].decode("utf-8", errors="replace").strip()
        return None, text or "(empty body)"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        message = error.get("message") or str(error)
        return (str(code) if code else None), str(message)[:MESSAGE_LIMIT]
    if isinstance(error, str):
        return None, error[:MESSAGE_LIMIT]
    return None, payload[:MESSAGE_LIMIT].decode("utf-8", errors="replace")
