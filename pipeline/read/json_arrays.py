"""JSON arrays as input: each element of a top-level array is one item, streamed.

A `.json` file may hold one big array (pretty-printed, say) or JSON Lines; the
first byte of content tells which. ijson parses the array incrementally, so
memory holds one element at a time, however large the file is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import orjson

from pipeline.core.errors import InputUnreadable
from pipeline.core.models import Record
from pipeline.read.nesting import TOO_DEEP, nests_too_deeply

UTF8_BOM = b"\xef\xbb\xbf"
JSON_WHITESPACE = b" \t\r\n"


class PeekableReader(Protocol):
    """A buffered binary file (open(..., "rb"), gzip.open): bytes can be looked at first."""

    def peek(self, size: int, /) -> bytes: ...
    def read(self, size: int | None = ..., /) -> bytes: ...
    def __iter__(self) -> Iterator[bytes]: ...


def skip_to_content(handle: PeekableReader) -> tuple[bytes, int]:
    """Reads past a byte order mark and whitespace: the first byte after them (left
    unread; empty at the end) and how many newlines were passed."""
    if handle.peek(len(UTF8_BOM))[: len(UTF8_BOM)] == UTF8_BOM:
        handle.read(len(UTF8_BOM))
    newlines = 0
    while chunk := handle.peek(1):
        content = chunk.lstrip(JSON_WHITESPACE)
        blank = len(chunk) - len(content)
        newlines += chunk.count(b"\n", 0, blank)
        handle.read(blank)
        if content:
            return content[:1], newlines
    return b"", newlines


def parse_json_array(handle: PeekableReader, source: str) -> Iterator[Record]:
    """Each element is an item, its 1-based index standing for the line; streamed."""
    import ijson  # here, not with the module: only a JSON array input needs it

    index = 0
    try:
        for index, element in enumerate(ijson.items(handle, "item", use_float=True), start=1):
            if isinstance(element, dict) and nests_too_deeply(element):
                yield Record(source, index, None, _element_text(element), TOO_DEEP)
            elif isinstance(element, dict):
                yield Record(source, index, element)
            else:
                kind = type(element).__name__
                problem = f"element is JSON {kind}, not an object"
                yield Record(source, index, None, _element_text(element), problem)
    except ijson.JSONError as exc:
        where = f"after element {index}" if index else "before its first element"
        raise InputUnreadable(
            f"cannot read {source!r} as a JSON array {where}: {_first_line(exc)}"
        ) from exc


def _element_text(element: Any) -> str:
    try:
        return orjson.dumps(element).decode()
    except orjson.JSONEncodeError:
        return repr(element)[:1000]


def _first_line(exc: Exception) -> str:
    """ijson's message, without the lines that draw the place (it shows a bytes' repr)."""
    message = exc.args[0] if exc.args else ""
    if isinstance(message, bytes):
        message = message.decode("utf-8", errors="replace")
    return str(message).strip().split("\n", 1)[0] or type(exc).__name__
