"""`sluice reduce`, level by level: which groups are done, and what the next level reduces
(pure; no I/O).

Level 0 reduces chunks of the input rows; each later level reduces chunks of the
previous level's answers, until a level makes a single chunk for a group: that
chunk's answer is the group's. A group one of whose chunks failed is given up
(quarantined) at once: its other answers go no further, since a summary of part
of a group would pass for the whole.

Every chunk becomes one item of its level's run:
    {"id": "0-000001", "group": ..., "level": 0, "chunk": 0, "covers": 120, "rows": [...]}
`covers` counts the input rows behind it, so the final row can say how many rows
its answer stands for. At level 0 `rows` are the input rows as read; at later
levels each is {"output": an earlier answer, "covers": n}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pipeline.workflow.reduce_chunks import Chunk, Chunker, group_key

Row = dict[str, Any]


@dataclass(slots=True)
class GroupEnd:
    """How one group ended: its answer, or why it has none."""

    value: Any
    covers: int = 0  # input rows behind the answer
    levels: int = 0  # levels it took
    answer: Any = None
    failure: dict[str, Any] | None = None  # the quarantined chunk's error, with its level


class ReduceLevels:
    """Chunks for each level, and each group's end, as the levels' answers come in."""

    def __init__(self, budget: int, size_of: Callable[[Row], int]) -> None:
        self._budget = budget
        self._size_of = size_of
        self.level = 0
        self._chunker = Chunker(budget, size_of)
        self._made: dict[str, int] = {}  # chunks the current level made, per group
        self._ends: dict[str, GroupEnd] = {}  # every group, in first-appearance order
        self._sequence = 0

    def add_input(self, group: Any, row: Row) -> Iterator[Row]:
        """Level 0: one input row; the chunk items it completes."""
        key = group_key(group)
        if key not in self._ends:
            self._ends[key] = GroupEnd(group)
        self._ends[key].covers += 1
        yield from self._items(self._chunker.add(group, {**row}))

    def finish_level(self) -> Iterator[Row]:
        """No more rows for this level: the chunk items still open."""
        yield from self._items(self._chunker.finish())
        self._made = {group_key(value): made for value, _, made in self._chunker.groups()}

    def next_level(self, failures: list[Row], answers: Iterator[Row]) -> Iterator[Row]:
        """The level's outcome: its quarantined chunk items, then its answered ones (in
        input order); yields the next level's chunk items. A group whose one chunk was
        answered is done."""
        level = self.level
        for failed in failures:
            end = self._ends[group_key(failed["group"])]
            end.failure = {**failed["error"], "level": level, "chunk": failed["chunk"]}
        self.level += 1
        self._chunker = Chunker(self._budget, self._size_of)
        self._sequence = 0
        for answer in answers:
            key = group_key(answer["group"])
            end = self._ends[key]
            if end.failure is not None:
                continue
            if self._made.get(key) == 1:
                end.answer, end.levels = answer["output"], level + 1
                continue
            partial = {"output": answer["output"], "covers": answer["covers"]}
            yield from self._items(self._chunker.add(answer["group"], partial))

    @property
    def ends(self) -> list[GroupEnd]:
        return list(self._ends.values())

    def _items(self, chunks: list[Chunk]) -> Iterator[Row]:
        for chunk in chunks:
            self._sequence += 1
            yield {
                "id": f"{self.level}-{self._sequence:06d}",
                "group": chunk.group,
                "level": self.level,
                "chunk": chunk.index,
                "covers": _covers(chunk, self.level),
                "rows": list(chunk.rows),
            }


def _covers(chunk: Chunk, level: int) -> int:
    if level == 0:
        return len(chunk.rows)
    return sum(int(row["covers"]) for row in chunk.rows)
