"""How deeply an item nests. orjson reads values up to 1,024 levels deep but
writes only 254, and every item is written again (request, checkpoint digest,
result or quarantine row, one level down), so deeper items are invalid input."""

from __future__ import annotations

from typing import Any

MAX_ITEM_DEPTH = 200  # levels of objects and arrays an item may have, with room to spare


def may_nest_too_deeply(line: bytes) -> bool:
    """A cheap bound on a JSON line: fewer brackets than the limit cannot nest past it
    (and a line no longer than the limit cannot hold more, which skips the counting)."""
    return len(line) > MAX_ITEM_DEPTH and line.count(b"{") + line.count(b"[") > MAX_ITEM_DEPTH


def nests_too_deeply(value: Any) -> bool:
    """True when `value` has more than MAX_ITEM_DEPTH levels of objects and arrays."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children: Any = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        if depth > MAX_ITEM_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


TOO_DEEP = f"item is nested more than {MAX_ITEM_DEPTH} levels deep"
