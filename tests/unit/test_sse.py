"""Putting a streamed chat answer back together (pure)."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.protocol.sse import StreamAssembly, StreamBroken


def _chunk(content: str | None = None, finish: str | None = None, **extra: object) -> bytes:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [choice]}
    return b"data: " + orjson.dumps({**body, **extra}) + b"\n\n"


def _stream(pieces: list[str], usage: dict[str, int] | None = None) -> bytes:
    events = [_chunk(None)] + [_chunk(piece) for piece in pieces] + [_chunk(finish="stop")]
    if usage is not None:
        events.append(
            b"data: " + orjson.dumps({"id": "c1", "choices": [], "usage": usage}) + b"\n\n"
        )
    return b"".join(events) + b": keep-alive\n\ndata: [DONE]\n\n"


def _assemble(raw: bytes, cuts: list[int]) -> tuple[StreamAssembly, bool]:
    """Feed `raw` as a transport would, split into lines across arbitrary reads."""
    assembly = StreamAssembly()
    pending, first_seen = b"", False
    edges = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    for start, end in itertools.pairwise(edges):
        *lines, pending = (pending + raw[start:end]).split(b"\n")
        for line in lines:
            first_seen |= assembly.feed(line)
    return assembly, first_seen


@given(
    pieces=st.lists(st.text(min_size=1), min_size=1, max_size=12),
    cuts=st.lists(st.integers(0, 10_000), max_size=20),
)
def test_the_pieces_make_the_answer_however_the_bytes_arrive(
    pieces: list[str], cuts: list[int]
) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    assembly, first_seen = _assemble(_stream(pieces, usage), cuts)
    body = orjson.loads(assembly.body())
    assert body["choices"][0]["message"]["content"] == "".join(pieces)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == usage
    assert first_seen


def test_a_stream_that_stops_early_is_broken() -> None:
    assembly, _ = _assemble(_chunk(None) + _chunk("half an ans"), [])
    with pytest.raises(StreamBroken, match="before the answer was complete"):
        assembly.body()


def test_an_error_inside_the_stream_is_reported() -> None:
    line = b'data: {"error": {"message": "server overloaded"}}'
    with pytest.raises(StreamBroken, match="server overloaded"):
        StreamAssembly().feed(line)


def test_streamed_tool_calls_are_put_together_by_index() -> None:
    def call(delta: dict[str, object]) -> bytes:
        choice = {"index": 0, "delta": {"tool_calls": [delta]}, "finish_reason": None}
        return b"data: " + orjson.dumps({"choices": [choice]})

    assembly = StreamAssembly()
    for line in (
        call({"index": 0, "id": "call_1", "type": "function", "function": {"name": "f"}}),
        call({"index": 0, "function": {"arguments": '{"a": '}}),
        call({"index": 0, "function": {"arguments": "1}"}}),
        _chunk(finish="tool_calls"),
        b"data: [DONE]",
    ):
        assembly.feed(line)
    message = orjson.loads(assembly.body())["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    ]
