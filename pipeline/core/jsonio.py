"""JSON encoding for any value an input can hold.

Parquet columns arrive as Python values orjson does not know (Decimal, bytes,
timedelta); they are written in a lossless, readable form instead of failing
the run.
"""

from __future__ import annotations

import base64
import datetime
import decimal
from typing import Any

import orjson

# OPT_NON_STR_KEYS (a Parquet map's integer keys) makes orjson ~40% slower on every
# value, so a value is encoded without it first, and again with it only if refused.
_LINE = orjson.OPT_APPEND_NEWLINE
_ANY_KEYS = orjson.OPT_NON_STR_KEYS


def _fallback(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)  # a float would lose digits
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(raw).decode("ascii")
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    return _encoded(value, 0)


def dumps_lines(rows: list[dict[str, Any]]) -> bytes:
    return b"".join([_encoded(row, _LINE) for row in rows])


def _encoded(value: Any, option: int) -> bytes:
    try:
        return orjson.dumps(value, default=_fallback, option=option)
    except orjson.JSONEncodeError:
        return orjson.dumps(value, default=_fallback, option=option | _ANY_KEYS)
