"""Looking for an API key, or any piece of it, in what sluice printed or wrote."""

from __future__ import annotations

FRAGMENT = 8


def key_fragments(key: str, text: str, size: int = FRAGMENT) -> list[str]:
    """Every `size`-character run of the key that appears in `text`."""
    return sorted({key[i : i + size] for i in range(len(key) - size + 1)} & _runs(text, size))


def _runs(text: str, size: int) -> set[str]:
    return {text[i : i + size] for i in range(len(text) - size + 1)}
