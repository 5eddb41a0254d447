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
        self.tool_calls: dict[int, dict[str, Any]] = {}  # by their index, put together

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
            if isinstance(delta, dict) and isinstance(delta.get("tool_calls"), list):
                self._take_tool_calls(delta["tool_calls"])
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return first

    def _take_tool_calls(self, deltas: list[Any]) -> None:
        """A tool call streams its id and name once, and its arguments in pieces."""
        for delta in deltas:
            if not isinstance(delta, dict) or not isinstance(delta.get("index", 0), int):
                continue
            call = self.tool_calls.setdefault(
                delta.get("index", 0), {"type": "function", "function": {"arguments": ""}}
            )
            for key in ("id", "type"):
                if isinstance(delta.get(key), str):
                    call[key] = delta[key]
            function = delta.get("function")
            if isinstance(function, dict):
                if isinstance(function.get("name"), str):
                    call["function"]["name"] = function["name"]
                if isinstance(function.get("arguments"), str):
                    call["function"]["arguments"] += function["arguments"]

    def body(self) -> bytes:
        """The answer as a non-streamed chat.completion body."""
        if not self.done and self.finish_reason is None:
            raise StreamBroken("the stream ended before the answer was complete")
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.parts)}
        if self.tool_calls:
            message["content"] = message["content"] or None
            message["tool_calls"] = [self.tool_calls[index] for index in sorted(self.tool_calls)]
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
