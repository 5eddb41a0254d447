"""Running the simulator: in a daemon thread beside a test, or in the foreground until a signal."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import threading
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.server import build_app
from pipeline.simulator.stats import STATS_KEY, SimulatorStats

LOOPBACK = "127.0.0.1"
# How long shutdown waits for answers still in flight (latency sleeps) before
# cancelling them; hung requests are released at once regardless.
BACKGROUND_GRACE_SECONDS = 0.1
FOREGROUND_GRACE_SECONDS = 2.0
START_TIMEOUT_SECONDS = 10.0


async def start_server(
    app: web.Application, host: str, port: int, grace_seconds: float
) -> tuple[web.AppRunner, str]:
    """Listen on host:port (0 picks a free port); return the runner and the API's base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=grace_seconds)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{_url_host(bound_host)}:{bound_port}/v1"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def serve_until_signalled(
    config: SimulatorConfig, host: str, port: int, on_listening: Callable[[str], None]
) -> None:
    """Serve in the foreground until SIGINT or SIGTERM, then shut down cleanly.

    `on_listening` gets the base URL once the socket is bound. OSError (port in
    use, bad host) propagates before anything is served.
    """
    asyncio.run(_serve_until_signalled(config, host, port, on_listening))


async def _serve_until_signalled(
    config: SimulatorConfig, host: str, port: int, on_listening: Callable[[str], None]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner, base_url = await start_server(build_app(config), host, port, FOREGROUND_GRACE_SECONDS)
    try:
        on_listening(base_url)
        await stop.wait()
    finally:
        await runner.cleanup()


class BackgroundSimulator:
    """The simulator on 127.0.0.1 (free port), on its own event loop in a daemon thread.

    with BackgroundSimulator(SimulatorConfig(rpm=60)) as sim:
        ...  # point a client at sim.base_url
        assert sim.stats().requests_total == 3
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self._app = build_app(self.config)
        self._base_url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping = False
        self._startup_error: BaseException | None = None

    @property
    def base_url(self) -> str:
        """Like `http://127.0.0.1:PORT/v1`; what a client uses as its OpenAI base URL."""
        if self._base_url is None:
            raise RuntimeError("the simulator is not running")
        return self._base_url

    def start(self) -> BackgroundSimulator:
        if self._thread is not None:
            raise RuntimeError("a BackgroundSimulator can only be started once")
        self._thread = threading.Thread(target=self._run, name="sluice-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_SECONDS):
            raise RuntimeError("the simulator did not start in time")
        if self._startup_error is not None:
            raise self._startup_error
        return self

    def stop(self) -> None:
        self._stopping = True
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None:
            # The loop may have closed already; then there is nothing left to stop.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            thread.join()

    def stats(self) -> SimulatorStats:
        """A consistent copy of the counters, safe to read from any thread."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive() and not self._stopping:
            answer: concurrent.futures.Future[SimulatorStats] = concurrent.futures.Future()
            try:
                loop.call_soon_threadsafe(_copy_into, self._app[STATS_KEY], answer)
                return answer.result(timeout=START_TIMEOUT_SECONDS)
            except (RuntimeError, TimeoutError):
                pass  # the loop closed meanwhile: read the counters once the thread is done
        if self._thread is not None:
            self._thread.join()
        return self._app[STATS_KEY].snapshot()

    def __enter__(self) -> BackgroundSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            runner, self._base_url = await start_server(
                self._app, LOOPBACK, 0, BACKGROUND_GRACE_SECONDS
            )
        except BaseException as error:  # handed to the starting thread, which raises it
            self._startup_error = error
            self._ready.set()
            return
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()


def _copy_into(stats: SimulatorStats, answer: concurrent.futures.Future[SimulatorStats]) -> None:
    answer.set_result(stats.snapshot())
