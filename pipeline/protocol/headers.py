"""What a server says besides its answer: error codes, waits, limits (pure parsing).

Servers disagree on formats and some send nonsense (Azure has been seen sending
limits of -1 or 0), so every reader here returns None for what it cannot trust
and the caller falls back to what it already knew.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from pipeline.core.redact import Redactor

CODE_LIMIT = 100
LIMIT_KINDS = ("requests", "tokens")
_LIMIT_HEADERS = {
    kind: (
        f"x-ratelimit-limit-{kind}",
        f"x-ratelimit-remaining-{kind}",
        f"x-ratelimit-reset-{kind}",
    )
    for kind in LIMIT_KINDS
}

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")


def parse_duration(text: str | None) -> float | None:
    """Seconds in a Go-style duration (`1s`, `6m0s`, `250ms`, `1h2m3.5s`) or a bare number."""
    if text is None:
        return None
    text = text.strip()
    plain = _finite_non_negative(text)
    if plain is not None or not text:
        return plain
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match[1]) * _UNIT_SECONDS[match[2]]
        position = match.end()
    return total if position == len(text) else None


def retry_after(headers: Mapping[str, str], wall_now: float) -> float | None:
    """The server's requested wait: `retry-after-ms`, else `Retry-After` (seconds or HTTP date)."""
    milliseconds = _finite_non_negative(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _finite_non_negative(value)
    if seconds is not None:
        return seconds
    import email.utils  # the HTTP-date form is rare; importing it costs every run ~6 ms

    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, moment.timestamp() - wall_now)


def should_retry(headers: Mapping[str, str]) -> bool | None:
    """`x-should-retry: true|false` overrides our own judgement when present."""
    value = headers.get("x-should-retry", "").strip().lower()
    return {"true": True, "false": False}.get(value)


class LimitReading(NamedTuple):
    """One `x-ratelimit-*-{requests|tokens}` triple; None where absent or implausible."""

    per_minute: float | None
    remaining: float | None
    reset: float | None


def read_limits(headers: Mapping[str, str]) -> dict[str, LimitReading]:
    """Readings by kind (`requests`, `tokens`) for the kinds the server reported at all."""
    readings = {}
    for kind, (limit_name, remaining_name, reset_name) in _LIMIT_HEADERS.items():
        limit_text = headers.get(limit_name)
        remaining_text = headers.get(remaining_name)
        reset_text = headers.get(reset_name)
        if limit_text is None and remaining_text is None and reset_text is None:
            continue  # read on every answer: most servers send none of these
        limit = _finite_non_negative(limit_text)
        if limit_text is not None and not limit:
            continue  # a limit of zero or below: the whole triple is noise
        remaining = _finite_non_negative(remaining_text)
        reset = parse_duration(reset_text)
        if limit is not None and remaining is not None and remaining > limit:
            remaining = None
        if limit is not None or remaining is not None or reset is not None:
            readings[kind] = LimitReading(limit, remaining, reset)
    return readings


def exhausted_reset(readings: Mapping[str, LimitReading]) -> float | None:
    """How long until the limits with nothing remaining refill, for a 429 without Retry-After."""
    waits = [r.reset for r in readings.values() if r.remaining == 0 and r.reset is not None]
    return max(waits) if waits else None


def error_details(payload: bytes, redact: Redactor) -> tuple[str | None, str]:
    """(`error.code`, message) from an OpenAI-style error body, or the body's text.

    The message is redacted as a whole and only then cut short: a server may
    quote the Authorization header anywhere in it.
    """
    try:
        body: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        text = payload.decode("utf-8", errors="replace").strip()
        return None, redact.clip(text) or "(empty body)"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        message = error.get("message") or str(error)
        return (redact.clip(str(code), CODE_LIMIT) if code else None), redact.clip(str(message))
    if isinstance(error, str):
        return None, redact.clip(error)
    return None, redact.clip(payload.decode("utf-8", errors="replace"))


def _finite_non_negative(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None
