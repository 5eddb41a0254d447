"""serve's job-finished webhooks over real HTTP: signed, retried, at least once across restarts.

A real aiohttp receiver on 127.0.0.1 records every POST; the outbox runs on
this test's event loop with a backoff of hundredths of a second, and the test
polls the receiver's record (and the outbox directory) until a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from pipeline.serve.webhooks import WebhookOutbox, job_finished_event
from tests.webhook_receiver import Answer, WebhookReceiver

SECRET = b"a shared secret of the test"
STATUS = {"id": "job-1", "state": "succeeded", "items": 3}
FAST = {"first_backoff": 0.01, "max_backoff": 0.05}
DEADLINE_SECONDS = 20.0


class RawReceiver(WebhookReceiver):
    """The webhook receiver, also keeping each body's exact bytes to check signatures on."""

    def __init__(self, answers: Sequence[Answer] = (), hang: bool = False) -> None:
        super().__init__(answers, hang)
        self.bodies: list[bytes] = []

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(await request.read())
        return await super()._receive(request)


def header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


def verified(secret: bytes, headers: Mapping[str, str], body: bytes) -> bool:
    """What a receiver does, written from the Standard Webhooks text, not from sluice."""
    message_id, timestamp = header(headers, "webhook-id"), header(headers, "webhook-timestamp")
    signatures = header(headers, "webhook-signature")
    if not (message_id and timestamp and signatures):
        return False
    content = f"{message_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(secret, content, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(signature.removeprefix("v1,"), expected)
        for signature in signatures.split()
        if signature.startswith("v1,")
    )


async def eventually(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + DEADLINE_SECONDS
    while not condition():
        assert loop.time() < give_up_at, f"still waiting for {what}"
        await asyncio.sleep(0.01)


def pending_files(outbox: Path) -> list[str]:
    """Everything in the outbox but failed/ and a writer's hidden temp files."""
    return sorted(n for n in os.listdir(outbox) if n != "failed" and not n.startswith("."))


def failed_notes(outbox: Path) -> list[dict[str, Any]]:
    folder = outbox / "failed"
    return [json.loads((folder / name).read_bytes()) for name in sorted(os.listdir(folder))]


async def running(outbox: WebhookOutbox, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run the outbox's loop while the scenario plays, then close it as serve would."""
    loop_task = asyncio.create_task(outbox.run())
    try:
        await scenario()
    finally:
        await outbox.close()
        await loop_task


def test_a_failed_post_is_retried_with_the_same_id_and_a_valid_signature(tmp_path: Path) -> None:
    outbox_dir = tmp_path / "outbox"
    with RawReceiver(answers=[500]) as hook:

        async def scenario() -> None:
            outbox = WebhookOutbox(str(outbox_dir), SECRET, 60.0, **FAST)

            async def delivered() -> None:
                webhook_id = outbox.enqueue("job-1", hook.url, job_finished_event(STATUS))
                assert webhook_id == "msg_job-1"
                await eventually(lambda: len(hook.posts) == 2, "the retry")
                await eventually(lambda: not pending_files(outbox_dir), "the file to go")

            await running(outbox, delivered)

        asyncio.run(scenario())
    assert [header(h, "webhook-id") for h in hook.headers] == ["msg_job-1", "msg_job-1"]
    assert hook.posts == [{"type": "job.finished", "data": STATUS}] * 2
    for headers, body in zip(hook.headers, hook.bodies, strict=True):
        assert verified(SECRET, headers, body)
        assert not verified(b"another secret", headers, body)
        assert header(headers, "content-type") == "application/json"
    assert failed_notes(outbox_dir) == []


def test_a_delivery_left_by_a_killed_outbox_is_delivered_at_the_next_start(
    tmp_path: Path,
) -> None:
    outbox_dir = tmp_path / "outbox"
    with RawReceiver() as hook:
        # The server that enqueued it died before posting: its outbox never ran.
        killed = WebhookOutbox(str(outbox_dir), None, 60.0, **FAST)
        killed.enqueue("job-7", hook.url, job_finished_event({"id": "job-7"}))
        assert len(pending_files(outbox_dir)) == 1 and hook.posts == []

        async def restarted() -> None:
            outbox = WebhookOutbox(str(outbox_dir), None, 60.0, **FAST)
            await running(outbox, lambda: eventually(lambda: bool(hook.posts), "the post"))

        asyncio.run(restarted())
    assert hook.posts == [{"type": "job.finished", "data": {"id": "job-7"}}]
    assert header(hook.headers[0], "webhook-id") == "msg_job-7"
    assert header(hook.headers[0], "webhook-signature") is None  # no secret, no signature
    assert pending_files(outbox_dir) == []


# A server process that enqueues one delivery and keeps retrying it, an hour apart.
_SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from pipeline.serve.webhooks import WebhookOutbox, job_finished_event

    async def main() -> None:
        outbox = WebhookOutbox(sys.argv[1], b"k", 7200.0, first_backoff=3600.0)
        outbox.enqueue("job-9", sys.argv[2], job_finished_event({"id": "job-9"}))
        await outbox.run()

    asyncio.run(main())
    """
)


def test_a_server_killed_between_attempts_delivers_after_its_restart(tmp_path: Path) -> None:
    outbox_dir = tmp_path / "outbox"
    with RawReceiver(answers=[500]) as hook:
        server = subprocess.Popen([sys.executable, "-c", _SERVER, str(outbox_dir), hook.url])
        try:
            give_up_at = time.monotonic() + DEADLINE_SECONDS
            while not _attempts_recorded(outbox_dir):  # the 500 is on disk: attempts 1
                assert server.poll() is None and time.monotonic() < give_up_at
                time.sleep(0.01)
        finally:
            server.send_signal(signal.SIGKILL)
            server.wait()
        restarted = WebhookOutbox(str(outbox_dir), b"k", 7200.0, **FAST)
        asyncio.run(running(restarted, lambda: eventually(lambda: len(hook.posts) == 2, "post")))
    assert [header(h, "webhook-id") for h in hook.headers] == ["msg_job-9", "msg_job-9"]
    assert all(verified(b"k", h, b) for h, b in zip(hook.headers, hook.bodies, strict=True))
    assert pending_files(outbox_dir) == [] and failed_notes(outbox_dir) == []


def _attempts_recorded(outbox: Path) -> bool:
    if not outbox.is_dir():
        return False
    records = [json.loads((outbox / name).read_bytes()) for name in pending_files(outbox)]
    return any(record["attempts"] == 1 for record in records)


def test_a_delivery_still_failing_after_retry_for_is_given_up_deleted_and_noted(
    tmp_path: Path,
) -> None:
    outbox_dir = tmp_path / "outbox"
    logged: list[str] = []
    with RawReceiver(answers=[500] * 10_000) as hook:

        async def scenario() -> None:
            outbox = WebhookOutbox(str(outbox_dir), SECRET, 0.3, log=logged.append, **FAST)

            async def given_up() -> None:
                outbox.enqueue("job-2", hook.url, job_finished_event(STATUS))
                await eventually(lambda: bool(failed_notes(outbox_dir)), "the give-up note")

            await running(outbox, given_up)

        asyncio.run(scenario())
    assert pending_files(outbox_dir) == []
    [note] = failed_notes(outbox_dir)
    assert note["webhook_id"] == "msg_job-2" and note["attempts"] == len(hook.posts) >= 2
    assert note["reason"] == "the receiver answered HTTP 500"
    assert note["target"] == hook.origin
    [line] = logged
    assert line.startswith(f"webhook msg_job-2 to {hook.origin} given up after ")
    for text in (json.dumps(note), line, *os.listdir(outbox_dir / "failed")):
        assert "SECRET" not in text and "hooks" not in text


def test_410_gone_stops_retrying_at_once(tmp_path: Path) -> None:
    outbox_dir = tmp_path / "outbox"
    with RawReceiver(answers=[410]) as hook:
        outbox = WebhookOutbox(str(outbox_dir), SECRET, 60.0, **FAST)

        async def gone() -> None:
            outbox.enqueue("job-3", hook.url, job_finished_event(STATUS))
            await eventually(lambda: bool(failed_notes(outbox_dir)), "the give-up note")

        asyncio.run(running(outbox, gone))
    assert len(hook.posts) == 1 and pending_files(outbox_dir) == []
    assert failed_notes(outbox_dir)[0]["reason"] == "the receiver answered HTTP 410 Gone"


def test_a_redirect_is_not_followed_but_retried_at_the_same_url(tmp_path: Path) -> None:
    outbox_dir = tmp_path / "outbox"
    with (
        RawReceiver() as elsewhere,
        RawReceiver(answers=[(307, {"Location": elsewhere.url})]) as hook,
    ):
        outbox = WebhookOutbox(str(outbox_dir), SECRET, 60.0, **FAST)

        async def redirected() -> None:
            outbox.enqueue("job-4", hook.url, job_finished_event(STATUS))
            await eventually(lambda: not pending_files(outbox_dir), "the delivery")

        asyncio.run(running(outbox, redirected))
    assert len(hook.posts) == 2 and elsewhere.posts == []


def test_a_receiver_that_never_answers_times_out_and_is_retried(tmp_path: Path) -> None:
    outbox_dir = tmp_path / "outbox"
    with RawReceiver(hang=True) as hook:
        outbox = WebhookOutbox(str(outbox_dir), SECRET, 0.5, timeout=0.1, **FAST)

        async def silent() -> None:
            outbox.enqueue("job-5", hook.url, job_finished_event(STATUS))
            await eventually(lambda: bool(failed_notes(outbox_dir)), "the give-up note")

        asyncio.run(running(outbox, silent))
    assert len(hook.posts) >= 2
    assert failed_notes(outbox_dir)[0]["reason"] == "no answer within 0.1 s"


def test_closing_mid_post_keeps_the_delivery_for_the_next_start(tmp_path: Path) -> None:
    outbox_dir = tmp_path / "outbox"
    with RawReceiver(hang=True) as hook:
        outbox = WebhookOutbox(str(outbox_dir), SECRET, 60.0, **FAST)

        async def cut_off() -> None:
            outbox.enqueue("job-6", hook.url, job_finished_event(STATUS))
            await eventually(lambda: bool(hook.posts), "the post to arrive")

        asyncio.run(running(outbox, cut_off))
    assert len(pending_files(outbox_dir)) == 1 and failed_notes(outbox_dir) == []


def test_a_delivery_for_a_host_no_longer_allowed_is_given_up_unsent(tmp_path: Path) -> None:
    outbox_dir = tmp_path / "outbox"
    with RawReceiver() as hook:
        WebhookOutbox(str(outbox_dir), SECRET, 60.0).enqueue("job-8", hook.url, {"x": 1})
        narrower = frozenset({"hooks.example.com"})
        outbox = WebhookOutbox(str(outbox_dir), SECRET, 60.0, allowed_hosts=narrower, **FAST)

        async def refused() -> None:
            await eventually(lambda: bool(failed_notes(outbox_dir)), "the give-up note")

        asyncio.run(running(outbox, refused))
    assert hook.posts == [] and pending_files(outbox_dir) == []
    note = failed_notes(outbox_dir)[0]
    assert "is not one the server allows" in note["reason"] and note["attempts"] == 0


def test_many_jobs_are_each_delivered_once_under_their_own_id(tmp_path: Path) -> None:
    outbox_dir = tmp_path / "outbox"
    jobs = [f"job-{n}" for n in range(30)]
    with RawReceiver() as hook:
        outbox = WebhookOutbox(str(outbox_dir), SECRET, 60.0, **FAST)

        async def many() -> None:
            for job in jobs:
                outbox.enqueue(job, hook.url, job_finished_event({"id": job}))
            await eventually(lambda: not pending_files(outbox_dir), "every delivery")

        asyncio.run(running(outbox, many))
    assert sorted(header(h, "webhook-id") or "" for h in hook.headers) == sorted(
        f"msg_{job}" for job in jobs
    )
    assert all(verified(SECRET, h, b) for h, b in zip(hook.headers, hook.bodies, strict=True))
