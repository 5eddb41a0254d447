"""Counts and money in messages: "1 request", "2 requests", "1,000 items", "$0.0234"."""

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


def money(amount: float, currency: str = "USD") -> str:
    """$12.50, $0.0234 (small amounts keep four decimals), $0.00; other currencies by code."""
    figure = f"{amount:,.2f}" if amount >= 1 or amount == 0 else f"{amount:.4f}"
    return f"${figure}" if currency == "USD" else f"{figure} {currency}"
