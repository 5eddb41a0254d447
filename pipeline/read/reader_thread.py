"""Reading off the event loop: one daemon thread pulls batches when asked.

Reading stdin or parsing a large file must not stall in-flight requests, and a
blocked read must not keep the process alive after Ctrl-C (the default executor's
threads would), so the thread is our own and a daemon.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class ThreadFeed(Generic[T]):
    def __init__(self, source: Iterator[T]) -> None:
        self._source = source
        self._requests: queue.SimpleQueue[asyncio.Future[T | None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="sluice-reader", daemon=True)
        self._thread.start()

    async def next(self) -> T | None:
        """The next element, or None when the source is exhausted."""
        future: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
        self._requests.put(future)
        return await future

    def close(self, wait: float = 5.0) -> None:
        """Stop reading. Waits (up to `wait` seconds) for the batch being read to be done:
        it may be inside the cache's or the id set's SQLite connection, which the caller
        closes next, and closing one while another thread uses it crashes the process.
        A read blocked on a pipe holds no connection, so giving up on it is safe."""
        self._requests.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join(wait)

    def _serve(self) -> None:
        # One element is read ahead, so the next request is answered at once and the
        # reading overlaps the loop's work on the previous element.
        ahead = self._next_or_error()
        while (future := self._requests.get()) is not None:
            loop = future.get_loop()
            try:
                loop.call_soon_threadsafe(_settle, future, ahead)
            except RuntimeError:
                return  # the loop has closed: nobody is waiting any more
            if ahead is not None and not isinstance(ahead, BaseException):
                ahead = self._next_or_error()

    def _next_or_error(self) -> T | BaseException | None:
        try:
            return next(self._source, None)
        except BaseException as exc:  # handed to the awaiting side, which decides
            return exc


def _settle(future: asyncio.Future[T | None], value: T | BaseException | None) -> None:
    if future.done():
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)
