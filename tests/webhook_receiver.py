"""An alert webhook on 127.0.0.1 that records every POST and answers as a test tells it.

with WebhookReceiver(answers=[500, 500]) as hook:   # two 500s, then 200 for good
    ...  # post to hook.url ("http://127.0.0.1:PORT/hooks/T000/SECRET-TOKEN")
    assert len(hook.posts) == 3 and hook.posts[-1]["job"] == "reviews"

An answer is a status code, or (status, headers). `hang=True` holds every
request open until the receiver stops, for a client's timeout to end it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

from tests.background_app import BackgroundApp

TOKEN_PATH = "/hooks/T000/SECRET-TOKEN"  # what a Slack webhook URL's path looks like

Answer = int | tuple[int, Mapping[str, str]]


class WebhookReceiver(BackgroundApp):
    thread_name = "webhook receiver"

    def __init__(self, answers: Sequence[Answer] = (), hang: bool = False) -> None:
        super().__init__()
        self.posts: list[Any] = []  # each request's JSON body, in arrival order
        self.headers: list[Mapping[str, str]] = []
        self._answers = list(answers)
        self._hang = hang

    @property
    def url(self) -> str:
        return f"{self.origin}{TOKEN_PATH}?token=QUERY-SECRET"

    def routes(self, app: web.Application) -> None:
        app.router.add_post(TOKEN_PATH, self._receive)

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        self.posts.append(orjson.loads(await request.read()))
        self.headers.append(dict(request.headers))
        if self._hang:
            await self.stopping()
        answer = self._answers.pop(0) if self._answers else 200
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        return web.Response(status=status, headers=headers, text="ok" if status < 300 else "no")
