"""Answers already paid for: the one owner of look-up, single flight and storing.

The engine asks here before an item goes anywhere near the limiter, so a hit
costs no request, no token and no slot. Stored answers are looked up as each
batch is read (`lookup`: in the reader thread, a batch ahead, while requests are in
flight), and checked on the loop (`recall`). An
item identical to one already on its way joins it (`join`) and is settled with
the same answer when it lands (`landed`), instead of being sent again.

New answers (`remember`) are stored with the others that arrive in the same
turn of the event loop, in one transaction. The loop itself only ever makes a
write that needs no wait (`put_now`); one that would wait for a lock held by
another process, a large answer's file, or a size-limit check goes to the
cache's own thread (writer.py), so a slow or locked disk never holds up the loop.
Each request keeps its slot until its answer is on disk, long before its batch
commits, so a crash re-sends only what was on the wire.

The store behind it is any `AnswerStore` (writer.py): `get_many`, `put_many`, `put_now`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from functools import partial

from pipeline.cache.keys import CacheKeys, FilledKeys
from pipeline.cache.store import ResponseCache
from pipeline.cache.writer import AnswerStore, StoreThread
from pipeline.core.config import CacheConfig
from pipeline.core.events import CACHE_JOINED, CacheLookedUp, CacheStored, EventSink
from pipeline.core.models import Failure, Item, Outcome, Success
from pipeline.prepare.request_builder import ChatForm, Request, Unbuilt
from pipeline.protocol.answers import Answer, InvalidAnswer, parse_answer

Settle = Callable[[Outcome], None]


class ResponseMemo:
    def __init__(self, store: AnswerStore, base_url: str, read: bool, events: EventSink) -> None:
        self._store = store
        self._keys = CacheKeys(base_url)
        # The keys of the form Unbuilt requests last had: a run's items share one.
        self._filled: tuple[ChatForm, FilledKeys] | None = None
        self._read = read  # False with --refresh-cache: ask again, but keep the new answers
        self._events = events
        self._waiting: dict[str, list[tuple[Item, Settle]]] = {}
        self._unsaved: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._writes: StoreThread | None = None  # started when a write first has to wait
        self._queued = 0  # writes handed to that thread and not yet done
        self._closed = False

    def key(self, request: Request | Unbuilt) -> str:
        if isinstance(request, Request):
            return self._keys.key(request.path, request.body)
        form = request.form
        if self._filled is None or self._filled[0] is not form:
            self._filled = (form, FilledKeys(self._keys, form.path, form.body, form.text_count))
        return self._filled[1].key(request.texts)

    def lookup(self, keys: list[str]) -> dict[str, bytes]:
        """Stored answers by key (where batches are read); none with --refresh-cache."""
        return self._store.get_many(keys) if self._read else {}

    def recall(
        self, wanted: list[tuple[Request | Unbuilt, str]], stored: dict[str, bytes]
    ) -> dict[str, Answer]:
        """The sound answers among those `lookup` found, by cache key."""
        answers: dict[str, Answer] = {}
        hits = 0
        for request, key in wanted:
            payload = stored.get(key)
            answer = _reusable(request, payload) if payload is not None else None
            if answer is not None:
                answers[key] = answer
                hits += 1  # per item: twins in one batch are two hits
        if wanted:
            self._events.emit(CacheLookedUp(hits, len(wanted) - hits))
        return answers

    def join(self, key: str, item: Item, settle: Settle) -> bool:
        """Wait for the identical request in flight; False when there is none (send it)."""
        waiters = self._waiting.get(key)
        if waiters is None:
            self._waiting[key] = []
            return False
        waiters.append((item, settle))
        self._events.emit(CACHE_JOINED)
        return True

    def remember(self, key: str, payload: bytes) -> asyncio.Future[None]:
        """Store an answer with the others that arrive in the same turn of the event
        loop (one transaction for all); the future is done once it is stored.

        The dispatcher holds the request's slot until then, so the answers not yet
        on disk never outnumber the requests in flight: a kill re-sends at most those.
        """
        loop = asyncio.get_running_loop()
        stored = loop.create_future()
        self._unsaved.append((key, payload, stored))
        if len(self._unsaved) == 1:
            loop.call_soon(self._hand_over)
        return stored

    def _hand_over(self) -> None:
        """Store what arrived in this turn: at once when that needs no wait (and nothing
        is queued before it), else in the cache's thread."""
        unsaved, self._unsaved = self._unsaved, []
        if not unsaved or self._closed:
            return
        answers = [(key, payload) for key, payload, _ in unsaved]
        futures = [future for *_, future in unsaved]
        if not self._queued:
            stored = self._store.put_now(answers)
            if stored is not None:
                self._stored(futures, stored)
                return
        if self._writes is None:
            self._writes = StoreThread(self._store, asyncio.get_running_loop())
        self._queued += 1
        self._writes.put(answers, partial(self._stored_by_thread, futures))

    def _stored_by_thread(self, futures: list[asyncio.Future[None]], stored: int) -> None:
        self._queued -= 1
        self._stored(futures, stored)

    def _stored(self, futures: list[asyncio.Future[None]], stored: int) -> None:
        self._events.emit(CacheStored(stored=stored, failed=len(futures) - stored))
        for future in futures:
            if not future.done():
                future.set_result(None)

    def close(self) -> None:
        """Store what is still on its way (answers of requests cut short by a stop), and
        wait for it: on the loop's thread, once the engine has stopped."""
        self._hand_over()
        self._closed = True
        if self._writes is not None:
            self._writes.close()

    def landed(self, key: str, outcome: Outcome) -> int:
        """The request for `key` is settled: settle every item that waited for it, and
        say how many did."""
        waiters = self._waiting.pop(key, ())
        for item, settle in waiters:
            settle(_shared(item, outcome))
        return len(waiters)


@contextlib.contextmanager
def response_memo(
    settings: CacheConfig, base_url: str, events: EventSink
) -> Iterator[ResponseMemo]:
    """A run's memo on the cache `settings` name, closed with it. Opening raises
    CacheUnavailable; whether a run goes on without the cache is its caller's call."""
    cache = ResponseCache(settings.directory, settings.size_limit, settings.ttl)
    memo = ResponseMemo(cache, base_url, settings.read, events)
    try:
        yield memo
    finally:
        memo.close()  # stores the answers of requests cut short by a stop
        cache.close()


def _reusable(request: Request | Unbuilt, payload: bytes) -> Answer | None:
    try:
        answer = parse_answer(request.endpoint, payload, request.structured)
    except InvalidAnswer:
        return None  # a damaged entry, or one the schema refuses, is a miss, never a wrong answer
    return answer if answer.reusable else None


def served(item: Item, answer: Answer | Success, model: str | None) -> Success:
    """An item answered without a request of its own: from the cache or a twin in flight.
    `model` is the one whose answer it is."""
    return Success(item, answer.output, answer.usage, cached=True, attempts=0, model=model)


def _shared(item: Item, outcome: Outcome) -> Outcome:
    if isinstance(outcome, Success):
        return served(item, outcome, outcome.model)
    return Failure(
        item, outcome.kind, outcome.message, outcome.status, attempts=0, answer=outcome.answer
    )
