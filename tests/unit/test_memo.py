"""The response memo: stored answers recalled soundly, identical requests sent once."""

from __future__ import annotations

import asyncio
import threading

import orjson
import pytest

from pipeline.cache.memo import ResponseMemo
from pipeline.core.config import Endpoint
from pipeline.core.errors import ErrorKind
from pipeline.core.models import Failure, Item, Outcome, Success, Usage
from pipeline.observe.counters import CacheCounts, RunStats
from pipeline.prepare.request_builder import Request


class DictStore:
    """An in-memory store with the cache's interface."""

    def __init__(self) -> None:
        self.answers: dict[str, bytes] = {}
        self.batches: list[int] = []

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        return {key: self.answers[key] for key in keys if key in self.answers}

    def put_many(self, answers: list[tuple[str, bytes]]) -> int:
        self.batches.append(len(answers))
        self.answers.update(answers)
        return len(answers)

    def put_now(self, answers: list[tuple[str, bytes]]) -> int | None:
        return self.put_many(answers)


def _request(text: str) -> Request:
    body = {"model": "m", "messages": [{"role": "user", "content": text}]}
    return Request(Endpoint.CHAT, "/chat/completions", body)


def _item(n: int) -> Item:
    return Item(n, "in.jsonl", n + 1, {"id": n}, n)


def _answer(content: str, finish_reason: str = "stop") -> bytes:
    choice = {"message": {"content": content}, "finish_reason": finish_reason}
    return orjson.dumps(
        {"choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    )


def _memo(read: bool = True) -> tuple[ResponseMemo, DictStore, CacheCounts]:
    store, stats = DictStore(), RunStats(cache=CacheCounts())
    assert stats.cache is not None
    return ResponseMemo(store, "http://127.0.0.1:1/v1", read, stats), store, stats.cache


def _remember(memo: ResponseMemo, answers: list[tuple[str, bytes]]) -> None:
    async def remember_all() -> None:
        await asyncio.gather(*(memo.remember(key, payload) for key, payload in answers))
        memo.close()

    asyncio.run(remember_all())


def test_answers_arriving_together_are_stored_together_before_their_futures_finish() -> None:
    memo, store, counts = _memo()
    answers = [(memo.key(_request(t)), _answer(t)) for t in "abc"]
    _remember(memo, answers)
    assert store.batches == [3] and store.answers == dict(answers)
    assert (counts.stored, counts.store_failures) == (3, 0)


def test_a_remembered_answer_is_recalled_for_the_same_request_only() -> None:
    memo, _, counts = _memo()
    asked, other = _request("a"), _request("b")
    _remember(memo, [(memo.key(asked), _answer("yes"))])
    wanted = [(asked, memo.key(asked)), (other, memo.key(other))]
    known = memo.recall(wanted, memo.lookup([key for _, key in wanted]))
    assert {key: answer.output for key, answer in known.items()} == {memo.key(asked): "yes"}
    assert (counts.hits, counts.misses, counts.stored) == (1, 1, 1)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"{}",
        b"[]",
        _answer(""),
        _answer("  "),
        _answer("cut", "length"),
        _answer("hidden", "content_filter"),
    ],
    ids=["not-json", "no-choices", "not-object", "empty", "blank", "cut-off", "filtered"],
)
def test_a_stored_answer_that_is_not_sound_is_a_miss(payload: bytes) -> None:
    memo, store, counts = _memo()
    request = _request("a")
    store.answers[memo.key(request)] = payload
    key = memo.key(request)
    assert memo.recall([(request, key)], memo.lookup([key])) == {}
    assert counts.misses == 1 and counts.hits == 0


def test_refresh_reads_nothing_but_still_stores() -> None:
    memo, store, _ = _memo(read=False)
    request = _request("a")
    store.answers[memo.key(request)] = _answer("old")
    assert memo.lookup([memo.key(request)]) == {}
    _remember(memo, [(memo.key(request), _answer("new"))])
    assert store.answers[memo.key(request)] == _answer("new")


def test_identical_requests_in_flight_share_the_first_ones_answer() -> None:
    memo, _, counts = _memo()
    key = memo.key(_request("same"))
    settled: dict[int, Outcome] = {}
    assert memo.join(key, _item(0), lambda o: settled.__setitem__(0, o)) is False  # it goes
    assert memo.join(key, _item(1), lambda o: settled.__setitem__(1, o)) is True
    assert memo.join(key, _item(2), lambda o: settled.__setitem__(2, o)) is True
    memo.landed(key, Success(_item(0), "answer", Usage(3, 2, 5), attempts=2))
    assert sorted(settled) == [1, 2]
    for n in (1, 2):
        outcome = settled[n]
        assert isinstance(outcome, Success) and outcome.item.id == n
        assert outcome.output == "answer" and outcome.cached and outcome.attempts == 0
    assert counts.shared == 2
    # Once landed, the key is free: a later identical request goes (or hits the cache).
    assert memo.join(key, _item(3), lambda o: None) is False


def test_a_failed_request_fails_the_identical_ones_with_the_same_error() -> None:
    memo, _, _ = _memo()
    key = memo.key(_request("same"))
    settled: list[Outcome] = []
    memo.join(key, _item(0), settled.append)
    memo.join(key, _item(1), settled.append)
    memo.landed(key, Failure(_item(0), ErrorKind.PERMANENT, "HTTP 400: no", 400, attempts=1))
    (shared,) = settled
    assert isinstance(shared, Failure) and shared.item.id == 1
    assert (shared.kind, shared.status, shared.message) == (
        ErrorKind.PERMANENT,
        400,
        "HTTP 400: no",
    )


class HeldStore(DictStore):
    """A store whose writes wait until the test lets them go, like a cache another
    process is writing; or fail with an error no store should raise."""

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.writer_thread: str | None = None
        self._error = error

    def put_now(self, answers: list[tuple[str, bytes]]) -> int | None:
        return None  # the lock is held elsewhere: this write has to wait

    def put_many(self, answers: list[tuple[str, bytes]]) -> int:
        self.writer_thread = threading.current_thread().name
        self.entered.set()
        self.release.wait()
        if self._error is not None:
            raise self._error
        return super().put_many(answers)


def test_a_write_held_up_by_the_disk_never_holds_up_the_event_loop() -> None:
    store, stats = HeldStore(), RunStats(cache=CacheCounts())
    memo = ResponseMemo(store, "http://127.0.0.1:1/v1", True, stats)
    key = memo.key(_request("a"))

    async def scenario() -> None:
        stored = memo.remember(key, _answer("a"))
        await asyncio.to_thread(store.entered.wait)
        # The write is under way and stuck; the loop still runs this coroutine.
        assert not stored.done()
        store.release.set()
        await stored
        memo.close()

    asyncio.run(scenario())
    assert store.writer_thread != threading.current_thread().name
    assert store.answers == {key: _answer("a")}
    assert stats.cache is not None and stats.cache.stored == 1


def test_an_unexpected_store_error_is_a_refused_write_not_a_hung_request() -> None:
    store, stats = HeldStore(RuntimeError("a bug in the store")), RunStats(cache=CacheCounts())
    store.release.set()
    memo = ResponseMemo(store, "http://127.0.0.1:1/v1", True, stats)
    _remember(memo, [(memo.key(_request(t)), _answer(t)) for t in "ab"])
    assert stats.cache is not None
    assert (stats.cache.stored, stats.cache.store_failures) == (0, 2)


def test_answers_handed_over_at_close_are_stored_and_counted_before_it_returns() -> None:
    memo, store, counts = _memo()
    key = memo.key(_request("late"))

    async def stop_right_after_an_answer() -> None:
        memo.remember(key, _answer("late"))  # its turn of the loop never comes
        memo.close()

    asyncio.run(stop_right_after_an_answer())
    assert store.answers == {key: _answer("late")}
    assert counts.stored == 1
