"""Streamed chat answers (`--stream`): server-sent events in, the whole answer out (pure).

A streamed answer is a series of `data: {chat.completion.chunk}` lines ending in
`data: [DONE]`. The chunks' deltas are put back together into the body a
non-streamed request would have had, so everything after the transport (parsing,
validation, the cache) sees one kind of answer. With `stream_options.include_usage`
the last chunk before [DONE] carries the usage, and no choices.
"""

from __future__ import annotations

from typing import Any

import orjson

DONE = b"[DONE]"


class StreamBroken(Exception):
    """The stream cannot be read as a chat answer; the message says why."""


class StreamAssembly:
    """Fed one event line at a time; `body()` is the answer they add up to."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.id: str | None = None
        self.done = False

    def feed(self, line: bytes) -> bool:
        """Take one line; True when it brought the answer's first text."""
        line = line.strip()
        if not line.startswith(b"data:"):
            return False  # blank separators, comments (": keep-alive"), event names
        data = line[5:].strip()
        if data == DONE:
            self.done = True
            return False
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise StreamBroken(f"a streamed chunk is not JSON: {exc}") from exc
        if not isinstance(chunk, dict):
            raise StreamBroken("a streamed chunk is not a JSON object")
        if "error" in chunk:
            raise StreamBroken(f"the stream ended in an error: {_message(chunk['error'])}")
        return self._take(chunk)

    def _take(self, chunk: dict[str, Any]) -> bool:
        self.id = self.id or chunk.get("id")
        self.model = self.model or chunk.get("model")
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        first = False
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                first = not self.parts
                self.parts.append(content)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return first

    def body(self) -> bytes:
        """The answer as a non-streamed chat.completion body."""
        if not self.done and self.finish_reason is None:
            raise StreamBroken("the stream ended before the answer was complete")
        message = {"role": "assistant", "content": "".join(self.parts)}
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
        }
        if self.usage is not None:
            body["usage"] = self.usage
        return orjson.dumps(body)


def _message(error: Any) -> str:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return str(error)
