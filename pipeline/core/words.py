"""Counts in messages: "1 request", "2 requests", "1,000 items"."""

from __future__ import annotations

_IRREGULAR = {"batch": "batches", "retry": "retries", "entry": "entries"}


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """The count with thousands separators and the noun in the number it agrees with.

    The last word of `noun` takes the plural ("input item" -> "input items");
    give `plural` where another word does ("retry held back" -> "retries held back").
    """
    if count == 1:
        return f"{count:,} {noun}"
    if plural is None:
        head, _, last = noun.rpartition(" ")
        plural = (head + " " if head else "") + _IRREGULAR.get(last, last + "s")
    return f"{count:,} {plural}"
