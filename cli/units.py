"""Flag values with units: sizes ("5GB", "1GiB") and durations ("15m", "7d")."""

from __future__ import annotations

import math
import re
from decimal import Decimal

from pipeline.core.errors import UsageError

# A number, optionally with a fraction, then an optional unit word.
_AMOUNT = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)

_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    **{f"{p}": 1000**n for n, p in enumerate("kmgtp", start=1)},
    **{f"{p}b": 1000**n for n, p in enumerate("kmgtp", start=1)},
    **{f"{p}i": 1024**n for n, p in enumerate("kmgtp", start=1)},
    **{f"{p}ib": 1024**n for n, p in enumerate("kmgtp", start=1)},
}

# SQLite, where the cache keeps its limit, stores signed 64-bit integers.
MAX_SIZE = 2**63 - 1

_DURATION_UNITS: dict[str, int] = {
    "": 1,
    "s": 1,
    "sec": 1,
    "m": 60,
    "min": 60,
    "h": 3600,
    "hr": 3600,
    "d": 86400,
    "w": 7 * 86400,
}


def parse_size(text: str) -> int:
    """Bytes from "2048", "10k", "500MB", "5GB" (powers of 1000) or "1GiB" (powers of 1024)."""
    number, unit = _split(text, "size", "500MB, 5GB or 1GiB")
    if unit.lower() not in _SIZE_UNITS:
        raise UsageError(
            f"unknown size unit {unit!r} in {text!r}; use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB"
        )
    size = int(number * _SIZE_UNITS[unit.lower()])
    if size < 1:
        raise UsageError(f"size {text!r} must be at least 1 byte")
    if size > MAX_SIZE:
        raise UsageError(f"size {text!r} is too large")
    return size


def parse_duration(text: str) -> float:
    """Seconds from "90", "90s", "15m", "1.5h", "12h", "7d" or "2w"; "0" is zero."""
    number, unit = _split(text, "duration", "90s, 15m, 12h or 7d")
    if unit.lower() not in _DURATION_UNITS:
        raise UsageError(f"unknown duration unit {unit!r} in {text!r}; use s, m, h, d or w")
    seconds = float(number * _DURATION_UNITS[unit.lower()])
    if not math.isfinite(seconds):
        raise UsageError(f"duration {text!r} is too long")
    return seconds


def format_size(size: int) -> str:
    """A byte count for people: "812 B", "1.5 MB", "5.0 GB" (powers of 1000, like the flags)."""
    if size < 1000:
        return f"{size} B"
    amount = float(size)
    for unit in ("KB", "MB", "GB", "TB", "PB"):
        amount /= 1000
        if amount < 999.95 or unit == "PB":
            return f"{amount:.1f} {unit}"
    raise AssertionError("unreachable")


def _split(text: str, what: str, examples: str) -> tuple[Decimal, str]:
    # Decimal, not float: "0.1KB" is exactly 100 bytes.
    if text.strip().startswith("-"):
        raise UsageError(f"{what} {text!r} cannot be negative")
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise UsageError(f"cannot read {what} {text!r}; write it like {examples}")
    return Decimal(match.group(1)), match.group(2)
