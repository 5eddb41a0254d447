"""A small HTTP server on 127.0.0.1 for answers the simulator does not give.

with StubServer(handler) as server:   # handler(request, user_message) -> web.StreamResponse
    ...  # point sluice at server.base_url; server.asked lists each request's user message
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from tests.background_app import BackgroundApp

Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


def chat_answer(text: str) -> web.Response:
    body = {
        "choices": [{"message": {"content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    return web.json_response(body)


class StubServer(BackgroundApp):
    thread_name = "stub server"

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self.asked: list[str] = []  # the user message of every request, in arrival order
        self._handler = handler

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._answer)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        message = body["messages"][-1]["content"]
        self.asked.append(message)
        return await self._handler(request, message)
