"""Counts in messages: "1 request", "2 requests", "1,000 items"."""

from __future__ import annotations

_IRREGULAR = {"batch": "batches", "retry": "retries", "entry": "entries"}


def counted(count: int, noun: str) -> str:
    """The count with thousands separators and the noun in the number it agrees with."""
    word = noun if count == 1 else _IRREGULAR.get(noun, noun + "s")
    return f"{count:,} {word}"
