"""The values of run options that are small languages of their own: `-O key=value` and
`--truncate FIELD:N`, parsed into what the request settings hold."""

from __future__ import annotations

from typing import Any

import orjson

from pipeline.core.errors import UsageError

RESERVED_BODY_FIELDS = {
    "model": "use -m/--model",
    "messages": "use --prompt and --system",
    "input": "use --input-field",
    "stream": "use --stream",
}


def parse_body_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-O expects key=value, got {pair!r}")
        key = key.strip()
        if key in RESERVED_BODY_FIELDS:
            raise UsageError(f"-O {key}=... is not allowed: {RESERVED_BODY_FIELDS[key]}")
        try:
            options[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            options[key] = value
    return options


def parse_truncations(values: list[str]) -> tuple[tuple[str, int], ...]:
    """`--truncate text:2000` as (field, characters); a field named twice is a mistake."""
    limits: dict[str, int] = {}
    for value in values:
        field, sep, count = value.rpartition(":")
        if not sep or not field.strip() or not count.strip().isdigit() or int(count) < 1:
            raise UsageError(
                f"--truncate expects FIELD:N with N a whole number above 0, got {value!r}"
            )
        if field in limits:
            raise UsageError(f"--truncate names {field!r} twice")
        limits[field.strip()] = int(count)
    return tuple(limits.items())
