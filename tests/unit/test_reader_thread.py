"""The reader thread's feed: every element exactly once and in order, whether the loop
reads it itself (nothing in flight, a source that cannot block) or asks the thread."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.read.reader_thread import ThreadFeed
from pipeline.read.sources import never_block


class Recorded:
    """A source that notes the thread each element was read on."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.threads: list[str] = []

    def __iter__(self) -> Iterator[int]:
        for number in range(self.count):
            if number == self.fail_at:
                raise ValueError(f"line {number} cannot be read")
            self.threads.append(threading.current_thread().name)
            yield number


async def drain(feed: ThreadFeed[int]) -> list[int]:
    taken = []
    while (element := await feed.next()) is not None:
        taken.append(element)
    return taken


def test_with_nothing_in_flight_the_loop_reads_and_no_thread_starts() -> None:
    source = Recorded(5)
    feed = ThreadFeed(iter(source), inline=lambda: True)
    assert asyncio.run(drain(feed)) == [0, 1, 2, 3, 4]
    feed.close()
    assert set(source.threads) == {threading.main_thread().name}
    assert "sluice-reader" not in {thread.name for thread in threading.enumerate()}


def test_while_requests_are_in_flight_the_thread_reads() -> None:
    source = Recorded(5)
    feed = ThreadFeed(iter(source), inline=lambda: False)
    assert asyncio.run(drain(feed)) == [0, 1, 2, 3, 4]
    feed.close()
    assert set(source.threads) == {"sluice-reader"}


def test_without_a_say_on_inline_reads_the_thread_reads_everything() -> None:
    source = Recorded(3)
    feed = ThreadFeed(iter(source))
    assert asyncio.run(drain(feed)) == [0, 1, 2]
    feed.close()
    assert set(source.threads) == {"sluice-reader"}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=40), st.integers(0, 30))
def test_switching_between_the_two_never_skips_or_repeats_an_element(
    answers: list[bool], count: int
) -> None:
    """The engine goes idle and busy at random: each element is read once, on one thread
    at a time, and taken in order."""
    said = iter(answers * 4)
    feed = ThreadFeed(iter(Recorded(count)), inline=lambda: next(said, True))
    assert asyncio.run(drain(feed)) == list(range(count))
    feed.close()


@pytest.mark.parametrize("inline", [True, False], ids=["loop", "thread"])
def test_a_read_error_reaches_the_caller_either_way(inline: bool) -> None:
    feed = ThreadFeed(iter(Recorded(5, fail_at=2)), inline=lambda: inline)

    async def take() -> list[int]:
        return [await feed.next(), await feed.next(), await feed.next()]  # type: ignore[list-item]

    with pytest.raises(ValueError, match="line 2 cannot be read"):
        asyncio.run(take())
    feed.close()


def test_only_regular_files_never_block(tmp_path: Path) -> None:
    regular = tmp_path / "in.jsonl"
    regular.write_bytes(b'{"id": 1}\n')
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    assert never_block([str(regular), str(regular)])
    assert not never_block([str(regular), "-"])  # stdin
    assert not never_block([str(pipe)])
    assert not never_block([str(tmp_path / "missing.jsonl")])
    assert not never_block([str(tmp_path)])  # a directory: reading it fails, in the thread
