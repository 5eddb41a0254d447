"""Cache writes in a thread of their own, so a slow or locked disk never holds up the event loop.

SQLite waits up to `WRITE_WAIT` seconds for another process writing the same
cache; on the event loop that wait would freeze every request, timer and
progress line of the run. Here only the writes wait. Whatever was handed over
while a write was under way goes in the next one, as one transaction.

Each `put` says when its answers are on disk (or refused) through `on_done`,
called later on the loop's thread with the number stored (0 when the disk
refused). `close` writes what is left and reports it before it returns, so a
run's counts are complete when its summary is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Protocol

Answers = list[tuple[str, bytes]]
Done = Callable[[int], None]


class AnswerStore(Protocol):
    def get_many(self, keys: list[str]) -> dict[str, bytes]: ...

    def put_many(self, answers: list[tuple[str, bytes]]) -> int:
        """Store answers, waiting for the disk as long as it takes; how many were stored."""

    def put_now(self, answers: list[tuple[str, bytes]]) -> int | None:
        """Store answers if that needs no wait; None (and nothing stored) when it would."""


class StoreThread:
    def __init__(self, store: AnswerStore, loop: asyncio.AbstractEventLoop) -> None:
        self._store = store
        self._loop = loop
        self._todo: queue.SimpleQueue[tuple[Answers, Done] | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[Done, int]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="sluice-cache", daemon=True)
        self._thread.start()

    def put(self, answers: Answers, on_done: Done) -> None:
        """Store `answers`; `on_done(stored)` is called on the loop's thread afterwards."""
        self._todo.put((answers, on_done))

    def close(self) -> None:
        """Write everything handed over, stop the thread, and report what is left."""
        self._todo.put(None)
        self._thread.join()
        self._report()

    def _serve(self) -> None:
        while (first := self._todo.get()) is not None:
            handed = [first]
            closing = False
            while not self._todo.empty():  # all that waited: one transaction
                follower = self._todo.get_nowait()
                if follower is None:
                    closing = True
                    break
                handed.append(follower)
            self._write(handed)
            if closing:
                return

    def _write(self, handed: list[tuple[Answers, Done]]) -> None:
        answers = [answer for group, _ in handed for answer in group]
        try:
            stored = self._store.put_many(answers) == len(answers)
        except Exception:  # a memo never fails a run: an unexpected error is a refused write
            stored = False
        for group, on_done in handed:
            self._done.put((on_done, len(group) if stored else 0))
        with contextlib.suppress(RuntimeError):  # the loop is closed: close() reports instead
            self._loop.call_soon_threadsafe(self._report)

    def _report(self) -> None:
        """On the loop's thread: tell each put how it went."""
        while not self._done.empty():
            on_done, stored = self._done.get_nowait()
            on_done(stored)
