"""A Transport that answers in the same process: the real seam, for tests and tools.

Like httpx's MockTransport, it is a Transport in its own right, not a patch: the
dispatcher and the engine run exactly as they do over HTTP, while a handler
decides each answer (a `Response`, or a `TransportError` for a failed exchange).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pipeline.dispatch.transport import Response

Handler = Callable[[str, bytes], Awaitable[Response]]  # (path, payload) -> the answer


class InProcessTransport:
    def __init__(self, handler: Handler, base_url: str = "http://127.0.0.1/v1") -> None:
        self.base_url = base_url
        self.sent = 0  # requests sent so far
        self._handler = handler

    def ready(self) -> None:
        pass  # always

    async def send(self, path: str, payload: bytes, timeout: float) -> Response:
        self.sent += 1
        return await self._handler(path, payload)
