"""Reading off the event loop: one daemon thread pulls batches when asked.

Reading stdin or parsing a large file must not stall in-flight requests, and a
blocked read must not keep the process alive after Ctrl-C (the default executor's
threads would), so the thread is our own and a daemon.

When nothing is waiting on the network, there is nothing to stall: a run answered by
the cache has no request in flight from one batch to the next. The caller can then
have the next batch read on its own thread (`inline`), which spares the two threads
taking the GIL in turns for every batch: a cached re-run does the same work in ~20%
less time. Only a source that cannot block for long may be read so (a regular file,
not a pipe), and the thread is started only once a batch is asked of it.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

# A request to the thread: the future to settle with the next element, and whether to
# read the one after it straight away (the loop expects to ask for it soon).
_Request = tuple[asyncio.Future[T | None], bool]


class ThreadFeed(Generic[T]):
    def __init__(self, source: Iterator[T], inline: Callable[[], bool] | None = None) -> None:
        """`inline`, when given, says whether the next element may be read on the
        caller's thread now (nothing would be held up); else the thread reads it."""
        self._source = source
        self._inline = inline
        self._requests: queue.SimpleQueue[_Request[T] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # The thread holds (or is reading) the next element: it must be taken from there,
        # never read again here, or an element would be skipped or read twice at once.
        self._thread_ahead = False

    async def next(self) -> T | None:
        """The next element, or None when the source is exhausted."""
        inline = self._inline is not None and self._inline()
        if inline and not self._thread_ahead:
            return next(self._source, None)
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="sluice-reader", daemon=True)
            self._thread.start()
        future: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
        # While requests are in flight the loop will ask again soon: the thread reads on,
        # so the next answer is at hand and the reading overlaps the loop's work.
        self._thread_ahead = not inline
        self._requests.put((future, self._thread_ahead))
        return await future

    def close(self, wait: float = 5.0) -> None:
        """Stop reading. Waits (up to `wait` seconds) for the batch being read to be done:
        it may be inside the cache's or the id set's SQLite connection, which the caller
        closes next, and closing one while another thread uses it crashes the process.
        A read blocked on a pipe holds no connection, so giving up on it is safe."""
        if self._thread is None:
            return
        self._requests.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join(wait)

    def _serve(self) -> None:
        ahead: T | BaseException | None = None
        holding = False  # whether `ahead` is read and not yet handed over
        while (request := self._requests.get()) is not None:
            future, read_ahead = request
            if not holding:
                ahead = self._next_or_error()
            loop = future.get_loop()
            try:
                loop.call_soon_threadsafe(_settle, future, ahead)
            except RuntimeError:
                return  # the loop has closed: nobody is waiting any more
            if ahead is None or isinstance(ahead, BaseException):
                holding = True  # the end, or the error, answers every later request
            elif read_ahead:
                ahead, holding = self._next_or_error(), True
            else:
                holding = False  # the caller may read the next one itself

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
