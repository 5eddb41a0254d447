"""Job-finished webhooks, delivered at least once from an outbox on disk.

`enqueue` writes the delivery to the outbox, one owner-only file renamed into
place (format in webhook_rules.py), before anyone is told the job ended.
`run()` posts every pending file, including those a killed server left, and
deletes one only once the receiver answered 2xx: a crash between the POST and
the delete posts it again, and receivers de-duplicate on the `webhook-id`,
which is the same on every attempt.

Anything else (no connection, no answer within the timeout, a non-2xx, a
redirect, which is never followed) is retried with full-jitter backoff until
`retry_for` seconds after the first enqueue. Then, or on a 410 Gone, the
delivery is given up: deleted, with a note in `failed/` and a line to `log`,
both naming the URL as scheme://host[:port] only.

Memory holds one small entry per pending file (when to try it next), never the
bodies: each attempt reads its file again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import aiohttp
import orjson

from pipeline.cache.disk import private_directory
from pipeline.core.clock import Clock, SystemClock
from pipeline.core.errors import OutputError
from pipeline.core.jsonio import dumps
from pipeline.core.words import counted
from pipeline.report.webhook import redacted_url
from pipeline.serve.webhook_rules import (
    WEBHOOKS_OFF,
    PendingDelivery,
    check_target,
    file_name,
    normal_hosts,
    pending_delivery,
    retry_delay,
    sign,
    webhook_id_for,
    webhook_secret,
)
from pipeline.write.atomic import TEMP_SUFFIX, AtomicFile, sweep_stale_temps

__all__ = [
    "WEBHOOKS_OFF",
    "OutboxStore",
    "WebhookOutbox",
    "check_target",
    "job_finished_event",
    "sign",
    "webhook_secret",
]

TIMEOUT_SECONDS = 10.0
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 300.0
MAX_IN_FLIGHT = 8  # one slow receiver must not hold up the others
FAILED_FOLDER = "failed"


def job_finished_event(status: dict[str, Any]) -> dict[str, Any]:
    """The body posted when a job ends: its status object under `data`."""
    return {"type": "job.finished", "data": status}


@dataclass(frozen=True)
class _Attempt:
    delivered: bool
    reason: str = ""
    final: bool = False  # the receiver asked never to be tried again (410 Gone)


class WebhookOutbox:
    def __init__(
        self,
        directory: str,
        secret: bytes | None,
        retry_for: float,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        first_backoff: float = FIRST_BACKOFF_SECONDS,
        max_backoff: float = MAX_BACKOFF_SECONDS,
        timeout: float = TIMEOUT_SECONDS,
        allowed_hosts: frozenset[str] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        """`allowed_hosts`, when given, is checked again before each post, so a delivery
        an earlier server left for a host no longer allowed is given up, not sent.
        `log` gets one line (URL redacted) for each delivery given up."""
        self._store = OutboxStore(directory)
        self._secret = secret
        self._retry_for = retry_for
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._first_backoff, self._max_backoff = first_backoff, max_backoff
        self._timeout = timeout
        self._allowed = None if allowed_hosts is None else normal_hosts(allowed_hosts)
        self._log = log
        # file name -> when to try it next, on the monotonic clock (a wall clock set
        # back must not hold deliveries up); the retry window itself is wall time.
        self._next_try: dict[str, float] = {}
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._woken = asyncio.Event()
        self._closing = False
        self._stopped: asyncio.Event | None = None

    def enqueue(self, job_id: str, url: str, payload: dict[str, Any]) -> str:
        """Store the delivery durably, wake the loop, and return its webhook-id.

        The same job enqueued again replaces its pending delivery, under the same id.
        Raises OutputError when the outbox cannot be written."""
        webhook_id = webhook_id_for(job_id)
        pending = PendingDelivery(webhook_id, url, dumps(payload).decode(), self._clock.wall())
        self._next_try.pop(self._store.write(pending), None)
        self.wake()
        return webhook_id

    def wake(self) -> None:
        """Look at the outbox now (call from the event loop's thread)."""
        self._woken.set()

    async def run(self) -> None:
        """Deliver until `close()`; files still pending then stay for the next start."""
        self._stopped = asyncio.Event()
        self._store.sweep_temps()
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        try:
            while not self._closing:
                self._woken.clear()  # before looking, so a wake-up meanwhile is not lost
                await self._pause(self._start_due(session))
        finally:
            for task in self._in_flight.values():
                task.cancel()
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
            await session.close()
            self._stopped.set()

    async def close(self) -> None:
        """Stop the loop; a delivery cut off mid-post is posted again at the next start."""
        self._closing = True
        self.wake()
        if self._stopped is not None:
            await self._stopped.wait()

    def _start_due(self, session: aiohttp.ClientSession) -> float | None:
        """Start the deliveries that are due; seconds until the next one is, if any."""
        now = self._clock.now()
        soonest: float | None = None
        for name in self._store.names():
            if name in self._in_flight:
                continue
            due = self._next_try.get(name, now)
            if due > now:
                soonest = due if soonest is None else min(soonest, due)
            elif len(self._in_flight) < MAX_IN_FLIGHT:
                # Should an attempt end in a bug rather than an answer, this keeps it
                # from being started again at once, over and over.
                self._next_try[name] = now + self._first_backoff
                task = asyncio.create_task(self._deliver(session, name))
                self._in_flight[name] = task
                task.add_done_callback(functools.partial(self._finished, name))
        return None if soonest is None else soonest - now

    def _finished(self, name: str, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(name, None)
        error = None if task.cancelled() else task.exception()
        if error is not None and self._log:
            self._log(f"webhook delivery {name} failed: {type(error).__name__}")
        self.wake()

    async def _pause(self, seconds: float | None) -> None:
        """Until woken, or until `seconds` have passed on the clock."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._woken.wait())]
        if seconds is not None:
            waits.append(asyncio.ensure_future(self._clock.sleep(max(seconds, 0.0))))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _deliver(self, session: aiohttp.ClientSession, name: str) -> None:
        try:
            pending = self._store.read(name)
        except FileNotFoundError:
            self._next_try.pop(name, None)
            return
        except (OSError, ValueError):
            self._give_up(name, None, "its outbox file could not be read")
            return
        refusal = None if self._allowed is None else check_target(pending.url, self._allowed)
        if refusal:
            self._give_up(name, pending, refusal)
            return
        attempt = await self._post(session, pending)
        if attempt.delivered:
            self._store.remove(name)
            self._next_try.pop(name, None)
            return
        tried = replace(pending, attempts=pending.attempts + 1)
        deadline = pending.enqueued_at + self._retry_for
        delay = retry_delay(
            tried.attempts,
            self._clock.wall(),
            deadline,
            self._rng,
            self._first_backoff,
            self._max_backoff,
        )
        if attempt.final or delay is None:
            self._give_up(name, tried, attempt.reason)
            return
        self._store.write(tried)
        self._next_try[name] = self._clock.now() + delay

    async def _post(self, session: aiohttp.ClientSession, pending: PendingDelivery) -> _Attempt:
        body = pending.body.encode()
        timestamp = int(self._clock.wall())
        headers = {
            "content-type": "application/json",
            "webhook-id": pending.webhook_id,
            "webhook-timestamp": str(timestamp),
        }
        if self._secret:
            headers["webhook-signature"] = sign(self._secret, pending.webhook_id, timestamp, body)
        try:
            async with session.post(
                pending.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
        except TimeoutError:
            return _Attempt(False, f"no answer within {self._timeout:g} s")
        except (aiohttp.ClientError, OSError, ValueError) as error:
            # The type only: a library's message may quote the URL, token and all.
            return _Attempt(False, f"the connection failed ({type(error).__name__})")
        if 200 <= status < 300:
            return _Attempt(True)
        if status == 410:
            return _Attempt(False, "the receiver answered HTTP 410 Gone", final=True)
        return _Attempt(False, f"the receiver answered HTTP {status}")

    def _give_up(self, name: str, pending: PendingDelivery | None, reason: str) -> None:
        """Leave a note in failed/ (no URL path or query), then drop the delivery."""
        target = redacted_url(pending.url) if pending else "(unknown)"
        attempts = pending.attempts if pending else 0
        webhook_id = pending.webhook_id if pending else None
        self._store.note_failure(
            name,
            {
                "webhook_id": webhook_id,
                "target": target,
                "attempts": attempts,
                "reason": reason,
                "gave_up_at": self._clock.wall(),
            },
        )
        self._store.remove(name)
        self._next_try.pop(name, None)
        if self._log:
            tries = counted(attempts, "attempt")
            self._log(f"webhook {webhook_id or name} to {target} given up after {tries}: {reason}")


class OutboxStore:
    """The outbox directory: pending files, and notes in failed/ on deliveries given up."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        # 0700 (with the outbox itself): the files hold webhook URLs, tokens and all.
        private_directory(os.path.join(directory, FAILED_FOLDER))

    def names(self) -> list[str]:
        """The pending deliveries' file names (temps and failed/ left out)."""
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return []
        return sorted(
            entry.name
            for entry in entries
            if entry.name.endswith(".json")
            and not entry.name.startswith(".")
            and entry.is_file(follow_symlinks=False)
        )

    def write(self, pending: PendingDelivery) -> str:
        """Store the delivery durably (replacing one with its id); its file name."""
        name = file_name(pending.webhook_id)
        self._write(name, orjson.dumps(asdict(pending)))
        return name

    def read(self, name: str) -> PendingDelivery:
        """FileNotFoundError once delivered; ValueError for a file the outbox did not write."""
        with open(os.path.join(self.directory, name), "rb") as handle:
            return pending_delivery(orjson.loads(handle.read()))

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.directory, name))

    def note_failure(self, name: str, note: dict[str, Any]) -> None:
        """Why a delivery was given up; a note that cannot be written is skipped."""
        with contextlib.suppress(OSError, OutputError):
            self._write(os.path.join(FAILED_FOLDER, name), dumps(note))

    def sweep_temps(self) -> None:
        """Half-written files a killed server left (a temp is `.<name>.<random>.partial`)."""
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.directory):
                if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
                    name = entry.name[1:].rsplit(".", 2)[0]
                    sweep_stale_temps(os.path.join(self.directory, name))

    def _write(self, name: str, content: bytes) -> None:
        """Temp, fsync, rename: a killed server leaves the file whole or absent.
        OutputError when it cannot be written."""
        atomic = AtomicFile(os.path.join(self.directory, name))  # private: 0600
        atomic.handle.write(content)
        atomic.commit()
