"""`sluice serve` put together: the job store, the scheduler on shared limits and one HTTP
client, the webhook outbox, the API, and a graceful end on SIGTERM or SIGINT.

On start, every job a stopped or killed server left unfinished is queued again
(it resumes from its last committed batch), and webhooks not yet delivered are
sent. On SIGTERM the server stops taking jobs, lets requests in flight land,
commits what is complete, and exits 0: queued and stopped jobs resume at the next
start. Finished jobs are deleted once they are older than --retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from pipeline.core.config import RunConfig, Secret
from pipeline.core.errors import UsageError
from pipeline.core.events import DISCARD
from pipeline.core.words import counted
from pipeline.dispatch.transport import HttpTransport
from pipeline.engines.hosting import TrafficPool
from pipeline.run.assembly import account_of
from pipeline.serve.app import Api, ApiSettings
from pipeline.serve.auth import TokenCheck
from pipeline.serve.intake import ConfigFor
from pipeline.serve.jobs import JobRecord, JobStore
from pipeline.serve.metrics import ServeMetrics
from pipeline.serve.scheduler import Scheduler, Shared
from pipeline.serve.webhooks import FAILED_FOLDER, WebhookOutbox, job_finished_event
from pipeline.spend.prices import pricing_for
from pipeline.state.lock import RunLock, StateLocked

READY_CHECK_EVERY = 10.0  # seconds a readiness answer about the upstream is reused
SWEEP_EVERY = 3600.0


@dataclass(frozen=True, slots=True)
class ServeSettings:
    host: str
    port: int
    data_dir: str
    api: ApiSettings
    tokens: TokenCheck
    max_running_jobs: int
    grace: float
    retention: float  # seconds a finished job is kept
    webhook_retry_for: float
    webhook_secret: bytes | None


async def serve(
    settings: ServeSettings,
    base: RunConfig,
    config_for: ConfigFor,
    say: Callable[[str], None],
) -> int:
    """Serve until SIGTERM or SIGINT; the exit code (0 after a graceful stop)."""
    lock = RunLock(settings.data_dir)
    try:
        lock.acquire()
    except StateLocked as exc:  # two servers on one data directory would run its jobs twice
        raise StateLocked(
            f"{exc.message} (each sluice serve needs a --data-dir of its own)"
        ) from None
    try:
        return await _serve(settings, base, config_for, say)
    finally:
        lock.release()


async def _serve(
    settings: ServeSettings,
    base: RunConfig,
    config_for: ConfigFor,
    say: Callable[[str], None],
) -> int:
    store = JobStore(settings.data_dir)
    metrics = ServeMetrics(pricing_for(base.spend))
    webhooks = os.path.join(settings.data_dir, "webhooks")
    given_up = os.path.join(webhooks, FAILED_FOLDER)
    outbox = WebhookOutbox(
        webhooks,
        settings.webhook_secret,
        settings.webhook_retry_for,
        allowed_hosts=settings.api.webhook_allow,
        log=say,
    )
    connection = base.connection
    transport = HttpTransport(
        connection.base_url,
        connection.api_key,
        base.traffic.concurrency * 4,  # several models, one pool of connections
        connection.max_response_size,
        base.traffic.idle_timeout,
    )
    async with transport:
        pool = TrafficPool(base.traffic, DISCARD, account=account_of(base))
        shared = Shared(pool, transport, (metrics.sink(),))

        def finished(record: JobRecord) -> None:
            if record.webhook_url:
                status = scheduler.status(record)
                outbox.enqueue(record.id, record.webhook_url, job_finished_event(status))

        scheduler = Scheduler(
            store, config_for, shared, settings.max_running_jobs, settings.grace, finished
        )
        ready = _UpstreamCheck(connection.base_url, connection.api_key)
        api = Api(settings.api, store, scheduler, config_for, settings.tokens, metrics, ready)
        resumed = scheduler.resume_unfinished()
        runner = web.AppRunner(api.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:  # the port is taken, the address is not this host's...
            await runner.cleanup()
            raise UsageError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}; "
                "give another --host or --port"
            ) from None
        resuming = f"; {counted(resumed, 'unfinished job')} resumed" if resumed else ""
        say(f"listening on http://{_address(site)}{resuming}")
        stopping = _stop_on_signal()
        tasks = [
            asyncio.create_task(scheduler.run()),
            asyncio.create_task(outbox.run()),
            asyncio.create_task(_sweep(store, scheduler, settings.retention, given_up)),
        ]
        try:
            await stopping.wait()
            say("stopping: no new jobs; requests in flight land, then the server exits")
            api.accepting = False
            await scheduler.shutdown()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await outbox.close()
            await runner.cleanup()
            await ready.close()
    say("stopped; unfinished jobs resume at the next start")
    return 0


def _stop_on_signal() -> asyncio.Event:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stopping.set)
    return stopping


def _address(site: web.TCPSite) -> str:
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    if sockets:
        host, port = sockets[0].getsockname()[:2]
        return f"{host}:{port}"
    return site.name.removeprefix("http://")


async def _sweep(store: JobStore, scheduler: Scheduler, retention: float, given_up: str) -> None:
    """Finished jobs older than the retention are deleted, results and all, and so are
    the notes of webhooks given up."""
    while True:
        cutoff = time.time() - retention
        with contextlib.suppress(OSError):
            for note in os.scandir(given_up):
                if note.is_file() and note.stat().st_mtime < cutoff:
                    os.unlink(note.path)
        for job_id in list(store.ids()):
            with contextlib.suppress(Exception):
                record = store.load(job_id)
                if record is not None and record.final and (record.finished_at or 0) < cutoff:
                    store.remove(job_id)
                    scheduler.forget(job_id)
        await asyncio.sleep(min(SWEEP_EVERY, max(1.0, retention / 10)))


class _UpstreamCheck:
    """Whether the upstream answers at all (any HTTP answer will do), asked at most
    every READY_CHECK_EVERY seconds."""

    def __init__(self, base_url: str, key: Secret | None) -> None:
        self._url = base_url.rstrip("/") + "/models"
        self._key = key
        self._session: aiohttp.ClientSession | None = None
        self._checked_at = -READY_CHECK_EVERY
        self._answer: str | None = None

    async def __call__(self) -> str | None:
        if time.monotonic() - self._checked_at < READY_CHECK_EVERY:
            return self._answer
        self._checked_at = time.monotonic()
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        headers = {"Authorization": f"Bearer {self._key.reveal()}"} if self._key else {}
        try:
            async with self._session.get(self._url, headers=headers, allow_redirects=False):
                self._answer = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._answer = f"the upstream does not answer: {type(exc).__name__}"
        return self._answer

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
