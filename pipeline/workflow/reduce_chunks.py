"""`sluice reduce`'s grouping and chunking: rows, in input order, packed per group into
chunks that fit a token budget (pure; no I/O, no clock).

The packing is greedy and keeps input order: each group has one open chunk, a row
joins it while the chunk's tokens stay within the budget, and a row that would take
it over the budget closes it (the chunk is emitted) and starts the next one. A row
bigger than the whole budget on its own cannot share a chunk: it too closes the
open chunk (it does not fit, like any other row) and is emitted alone, marked
`oversized`; the rows after it start a new chunk. So a group's chunks, read in
index order, hold exactly its rows in input order, and every chunk except the last
of its group was closed only because the next row did not fit. (Keeping the open
chunk open across an oversized row would pack a little tighter, but then a chunk
could hold rows from both sides of a later chunk, and a summary of "what came
first" would be wrong.)

Memory is one open chunk per group seen, never the input: a closed chunk is handed
to the caller at once. The same rows in the same order always give the same chunks,
so a resumed reduce re-chunks into the very same requests and finds them in its cache.

A group is named by `group_key`: the JSON text of its key value with object keys
sorted, which is how the value is written out. Values written differently are
different groups (`1`, `1.0`, `true` and `"1"` are four); values written alike are
one group: objects that differ only in key order, a list and a tuple, and NaN or an
infinity, which JSON writes as null. Parquet values follow the writer too (a decimal
is written as a string, so `Decimal("1.5")` and `"1.5"` are one group).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.core import jsonio

_SORTED = orjson.OPT_SORT_KEYS


def group_key(value: Any) -> str:
    """A canonical, hashable text for a group's key value (see the module docstring)."""
    try:
        return orjson.dumps(value, option=_SORTED).decode()
    except TypeError:  # a Parquet value, an object key that is not text, a >64-bit integer
        return _written(value)


def _written(value: Any) -> str:
    """The slow path, for what orjson refuses: the same text, built piece by piece."""
    if isinstance(value, dict):
        members = sorted((_member_name(name), _written(member)) for name, member in value.items())
        return "{" + ",".join(f"{name}:{member}" for name, member in members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(_written, value)) + "]"
    if type(value) is int:
        return str(value)  # exact at any size, where orjson stops at 64 bits
    return jsonio.dumps(value).decode()


def _member_name(name: Any) -> str:
    # An object key that is not text is written as text of its own JSON form.
    return orjson.dumps(name if isinstance(name, str) else _written(name)).decode()


@dataclass(frozen=True, slots=True)
class Chunk:
    """Some of one group's rows, consecutive in input order, to reduce in one request."""

    group: Any  # the key value as the expression gave it for the group's first row
    index: int  # 0, 1, 2... within its group, in the order chunks are made
    rows: tuple[dict[str, Any], ...]
    tokens: int  # the sum of the rows' sizes
    oversized: bool  # a single row bigger than the budget, alone in its chunk


@dataclass(slots=True)
class _Group:
    value: Any
    rows: list[dict[str, Any]] = field(default_factory=list)  # the open chunk
    tokens: int = 0  # the open chunk's
    seen: int = 0
    made: int = 0


class Chunker:
    """Packs rows into chunks of at most `budget` tokens, per group, in input order.

    `size_of(row)` is the caller's estimate of a row's tokens (0 or more). A new
    Chunker is used for each level of a reduce: `groups()` then tells, per group,
    whether that level made one chunk (its answer is the group's final answer) or
    more (another level is needed).
    """

    def __init__(self, budget: int, size_of: Callable[[dict[str, Any]], int]) -> None:
        if budget < 1:
            raise ValueError(f"a chunk's token budget must be 1 or more, not {budget}")
        self._budget = budget
        self._size_of = size_of
        self._groups: dict[str, _Group] = {}  # in first-appearance order
        self._finished = False

    def add(self, group: Any, row: dict[str, Any]) -> list[Chunk]:
        """Takes the next row of `group`; returns the chunks this closed, in order."""
        if self._finished:
            raise RuntimeError("rows were added to a Chunker after finish()")
        size = self._size_of(row)
        if size < 0:
            raise ValueError(f"a row's size must be 0 or more, not {size}")
        key = group_key(group)
        state = self._groups.get(key)
        if state is None:
            state = self._groups[key] = _Group(group)
        state.seen += 1
        closed: list[Chunk] = []
        if state.rows and state.tokens + size > self._budget:
            closed.append(self._close(state))
        if size > self._budget:
            closed.append(self._emit(state, (row,), size, oversized=True))
        else:
            state.rows.append(row)
            state.tokens += size
        return closed

    def finish(self) -> list[Chunk]:
        """The open chunks, groups in the order they first appeared; no rows may follow."""
        self._finished = True
        return [self._close(state) for state in self._groups.values() if state.rows]

    def groups(self) -> list[tuple[Any, int, int]]:
        """(key value, rows seen, chunks made so far) per group, in first-appearance order."""
        return [(state.value, state.seen, state.made) for state in self._groups.values()]

    def _close(self, state: _Group) -> Chunk:
        chunk = self._emit(state, tuple(state.rows), state.tokens, oversized=False)
        state.rows = []
        state.tokens = 0
        return chunk

    def _emit(
        self, state: _Group, rows: tuple[dict[str, Any], ...], tokens: int, *, oversized: bool
    ) -> Chunk:
        chunk = Chunk(state.value, state.made, rows, tokens, oversized)
        state.made += 1
        return chunk
