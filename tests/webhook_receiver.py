"""An alert webhook on 127.0.0.1 that records every POST and answers as a test tells it.

with WebhookReceiver(answers=[500, 500]) as hook:   # two 500s, then 200 for good
    ...  # post to hook.url ("http://127.0.0.1:PORT/hooks/T000/SECRET-TOKEN")
    assert len(hook.posts) == 3 and hook.posts[-1]["job"] == "reviews"

An answer is a status code, or (status, headers). `hang=True` holds every
request open until the receiver stops, for a client's timeout to end it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from pipeline.simulator.background import LOOPBACK, start_server

START_TIMEOUT_SECONDS = 10.0
TOKEN_PATH = "/hooks/T000/SECRET-TOKEN"  # what a Slack webhook URL's path looks like

Answer = int | tuple[int, Mapping[str, str]]


class WebhookReceiver:
    def __init__(self, answers: Sequence[Answer] = (), hang: bool = False) -> None:
        self.posts: list[Any] = []  # each request's JSON body, in arrival order
        self.headers: list[Mapping[str, str]] = []
        self._answers = list(answers)
        self._hang = hang
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        assert self._port is not None, "the receiver is not running"
        return f"http://{LOOPBACK}:{self._port}{TOKEN_PATH}?token=QUERY-SECRET"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_SECONDS) or self._port is None:
            raise RuntimeError("the webhook receiver did not start")
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
        app.router.add_post(TOKEN_PATH, self._receive)
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        try:
            runner, base_url = await start_server(app, LOOPBACK, 0, 0.1)
            self._port = int(base_url.rsplit(":", 1)[1].split("/", 1)[0])
        finally:
            self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        self.posts.append(orjson.loads(await request.read()))
        self.headers.append(dict(request.headers))
        if self._hang:
            assert self._stop is not None
            await self._stop.wait()
        answer = self._answers.pop(0) if self._answers else 200
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        return web.Response(status=status, headers=headers, text="ok" if status < 300 else "no")
