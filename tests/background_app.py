"""An aiohttp application served on 127.0.0.1 from a thread of its own, for a test.

Subclasses add their routes (`routes`); the server runs between `__enter__` and
`__exit__`, so a test can point a real client, or a real `sluice` process, at it.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Self

from aiohttp import web

from pipeline.simulator.background import LOOPBACK, start_server

START_TIMEOUT_SECONDS = 10.0


class BackgroundApp:
    thread_name = "test-server"

    def __init__(self) -> None:
        self._base_url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    def routes(self, app: web.Application) -> None:
        """Add the handlers this server answers with."""
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, as the simulator's."""
        assert self._base_url is not None, f"the {self.thread_name} is not running"
        return self._base_url

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return self.base_url.removesuffix("/v1")

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_SECONDS) or self._base_url is None:
            raise RuntimeError(f"the {self.thread_name} did not start")
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

    async def stopping(self) -> None:
        """Wait until the server is told to stop (for handlers that hang on purpose)."""
        assert self._stop is not None
        await self._stop.wait()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        app = web.Application()
        self.routes(app)
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
