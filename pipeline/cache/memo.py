"""Answers already paid for: the response cache, and one request for identical ones in flight.

The engine asks here before an item goes anywhere near the limiter, so a hit
costs no request, no token and no slot. An item identical to one already on
its way joins it and is settled with the same answer when it lands, instead of
being sent again. Answers are stored in the turn of the event loop they
arrive in, before their request gives up its slot and long before their batch
commits, so a crash re-sends only what was on the wire.

The store behind it is any object with `get_many` and `put_many`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from pipeline.cache.store import cache_key
from pipeline.core.events import CACHE_JOINED, CacheLookedUp, CacheStored, EventSink
from pipeline.core.models import Failure, Item, Outcome, Success
from pipeline.prepare.request_builder import Request
from pipeline.protocol.answers import Answer, InvalidAnswer, parse_answer

Settle = Callable[[Outcome], None]


class AnswerStore(Protocol):
    def get_many(self, keys: list[str]) -> dict[str, bytes]: ...
    def put_many(self, answers: list[tuple[str, bytes]]) -> int: ...


class ResponseMemo:
    def __init__(self, store: AnswerStore, base_url: str, read: bool, events: EventSink) -> None:
        self._store = store
        self._base_url = base_url
        self._read = read  # False with --refresh-cache: ask again, but keep the new answers
        self._events = events
        self._waiting: dict[str, list[tuple[Item, Settle]]] = {}
        self._unsaved: list[tuple[str, bytes, asyncio.Future[None]]] = []

    def key(self, request: Request) -> str:
        return cache_key(self._base_url, request.path, request.body)

    def lookup(self, keys: list[str]) -> dict[str, bytes]:
        """Stored answers by key (in the reader thread); none with --refresh-cache."""
        return self._store.get_many(keys) if self._read else {}

    def recall(
        self, wanted: list[tuple[Request, str]], stored: dict[str, bytes]
    ) -> dict[str, Answer]:
        """The sound answers among those `lookup` found, by cache key."""
        answers: dict[str, Answer] = {}
        for request, key in wanted:
            payload = stored.get(key)
            answer = _reusable(request, payload) if payload is not None else None
            if answer is not None:
                answers[key] = answer
        if wanted:
            self._events.emit(CacheLookedUp(len(answers), len(wanted) - len(answers)))
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
        stored = asyncio.get_running_loop().create_future()
        self._unsaved.append((key, payload, stored))
        if len(self._unsaved) == 1:
            asyncio.get_running_loop().call_soon(self.save)
        return stored

    def save(self) -> None:
        """Store what `remember` has gathered (also called once more at the end)."""
        unsaved, self._unsaved = self._unsaved, []
        if not unsaved:
            return
        if self._store.put_many([(key, payload) for key, payload, _ in unsaved]):
            self._events.emit(CacheStored(stored=len(unsaved), failed=0))
        else:
            self._events.emit(CacheStored(stored=0, failed=len(unsaved)))
        for _, _, stored in unsaved:
            if not stored.done():
                stored.set_result(None)

    def landed(self, key: str, outcome: Outcome) -> None:
        """The request for `key` is settled: settle every item that waited for it."""
        for item, settle in self._waiting.pop(key, ()):
            settle(_shared(item, outcome))


def _reusable(request: Request, payload: bytes) -> Answer | None:
    try:
        answer = parse_answer(request.endpoint, payload)
    except InvalidAnswer:
        return None  # a damaged entry is a miss, never a wrong answer
    return answer if answer.reusable else None


def served(item: Item, answer: Answer | Success) -> Success:
    """An item answered without a request of its own: from the cache or a twin in flight."""
    return Success(item, answer.output, answer.usage, cached=True, attempts=0)


def _shared(item: Item, outcome: Outcome) -> Outcome:
    if isinstance(outcome, Success):
        return served(item, outcome)
    return Failure(item, outcome.kind, outcome.message, outcome.status, attempts=0)
