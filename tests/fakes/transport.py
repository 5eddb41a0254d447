"""An in-process Transport (the engine's seam for HTTP): each send asks a script what happens."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pipeline.dispatch.transport import Response

Script = Callable[[int], Awaitable[Response]]  # the 1-based number of the send -> its answer


class ScriptedTransport:
    def __init__(self, script: Script, base_url: str = "http://127.0.0.1:9/v1") -> None:
        self.base_url = base_url
        self.sent = 0
        self._script = script

    async def send(self, path: str, payload: bytes, timeout: float) -> Response:
        self.sent += 1
        return await self._script(self.sent)
