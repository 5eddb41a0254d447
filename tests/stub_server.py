"""A small HTTP server on 127.0.0.1 for answers the simulator does not give.

with StubServer(handler) as server:   # handler(request, user_message) -> web.StreamResponse
    ...  # point sluice at server.base_url; server.asked lists each request's user message
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType

import orjson
from aiohttp import web

from pipeline.simulator.background import LOOPBACK, start_server

Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]
START_TIMEOUT_SECONDS = 10.0


def chat_answer(text: str) -> web.Response:
    body = {
        "choices": [{"message": {"content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    return web.json_response(body)


class StubServer:
    def __init__(self, handler: Handler) -> None:
        self.asked: list[str] = []  # the user message of every request, in arrival order
        self._handler = handler
        self._base_url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stub-server", daemon=True)

    @property
    def base_url(self) -> str:
        assert self._base_url is not None, "the stub server is not running"
        return self._base_url

    def __enter__(self) -> StubServer:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_SECONDS) or self._base_url is None:
            raise RuntimeError("the stub server did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._answer)
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        try:
            runner, self._base_url = await start_server(app, LOOPBACK, 0, 0.1)
        finally:
            self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        message = body["messages"][-1]["content"]
        self.asked.append(message)
        return await self._handler(request, message)
