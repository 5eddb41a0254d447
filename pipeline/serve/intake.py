"""A job's request turned into a job on disk, or refused before anything is spent.

Two forms: a JSON body `{"items": [...], <options>}`, or NDJSON items streamed to
disk line by line (`Content-Type: application/x-ndjson`) with the options in the
query string, for uploads too large to hold in memory. Either way the items are
written to the job's directory, the job's run settings are made from its options
(an unknown option, a bad value, a template that renders for none of the first
items: refused), and only then is the record written that makes it a job.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from pipeline.core.config import RunConfig
from pipeline.core.errors import SluiceError
from pipeline.prepare.request_builder import InvalidItem
from pipeline.read.ids import SeenIds, identify
from pipeline.read.sources import read_records
from pipeline.run.assembly import item_requests
from pipeline.serve.job_options import JobRefused, job_options
from pipeline.serve.jobs import ITEMS, JobRecord, JobStore, new_job_id
from pipeline.write.atomic import AtomicFile

NDJSON = "application/x-ndjson"
CHECKED_ITEMS = 20  # a template that renders none of these is wrong, not the data
READ_CHUNK = 1 << 16

# The run settings of a job: its options over the server's defaults (made by the CLI,
# which owns the options' meaning); SluiceError when they do not make a valid run.
ConfigFor = Callable[[dict[str, Any], str], RunConfig]


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    max_items: int
    max_body_bytes: int
    instance: str = ""


async def accept(
    request: web.Request, store: JobStore, limits: IntakeLimits, config_for: ConfigFor
) -> JobRecord:
    """The job the request describes, on disk; JobRefused otherwise (nothing kept)."""
    job_id = new_job_id(limits.instance)
    directory = store.new_directory(job_id)
    try:
        if request.content_type == NDJSON:
            options = job_options(dict(request.query), from_query=True)
            count = await _stream_items(request, store.path(job_id, ITEMS), limits)
        else:
            options, items = await _json_body(request, limits)
            count = _write_items(store.path(job_id, ITEMS), (orjson.dumps(i) for i in items))
        if count == 0:
            raise JobRefused(400, "invalid_request", "the job has no items")
        config = _config(config_for, options, directory)
        check_renders(config)
        record = JobRecord(
            job_id, options, count, time.time(), webhook_url=options.get("webhook_url")
        )
        store.save(record)  # from here on, the job exists
    except BaseException:
        store.remove(job_id)
        raise
    return record


async def _json_body(
    request: web.Request, limits: IntakeLimits
) -> tuple[dict[str, Any], list[Any]]:
    try:
        body = orjson.loads(await request.read())
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limits) from None
    except orjson.JSONDecodeError as exc:
        raise JobRefused(400, "invalid_request", f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise JobRefused(400, "invalid_request", 'the body must be {"items": [...], ...options}')
    items = body.pop("items")
    if len(items) > limits.max_items:
        raise _too_many(limits)
    return job_options(body), items


async def _stream_items(request: web.Request, path: str, limits: IntakeLimits) -> int:
    """NDJSON lines to the items file as they arrive, never all in memory."""
    received = 0
    lines = _lines(request)
    target = AtomicFile(path)
    count = 0
    try:
        async for line in lines:
            received += len(line)
            if received > limits.max_body_bytes:
                raise _too_large(limits)
            if not line.strip():
                continue
            count += 1
            if count > limits.max_items:
                raise _too_many(limits)
            target.handle.write(line.rstrip(b"\r\n") + b"\n")
        target.commit()
    except BaseException:
        target.abort()
        raise
    return count


async def _lines(request: web.Request) -> AsyncIterator[bytes]:
    pending = b""
    while chunk := await request.content.read(READ_CHUNK):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line + b"\n"
        if len(pending) > READ_CHUNK * 64:  # one line of 4 MiB: a line that never ends
            raise JobRefused(413, "too_large", "an NDJSON line is longer than 4 MiB")
    if pending:
        yield pending


def _write_items(path: str, lines: Iterable[bytes]) -> int:
    target = AtomicFile(path)
    count = 0
    try:
        for line in lines:
            target.handle.write(line + b"\n")
            count += 1
        target.commit()
    except BaseException:
        target.abort()
        raise
    return count


def _config(config_for: ConfigFor, options: dict[str, Any], directory: str) -> RunConfig:
    try:
        return config_for(options, directory)
    except SluiceError as exc:
        raise JobRefused(422, "invalid_option", exc.message) from None


def check_renders(config: RunConfig) -> None:
    """Refuse a job whose templates render for none of its first items."""
    seen = SeenIds()
    reasons: list[str] = []
    try:
        builder = item_requests(config)
        items = identify(read_records(config.read.inputs), config.read.id_field, seen)
        for item in itertools.islice(items, CHECKED_ITEMS):
            if item.problem is not None:
                reasons.append(item.problem)
                continue
            try:
                if builder.wanted(item):
                    builder.prepare(item)
                return
            except InvalidItem as exc:
                reasons.append(str(exc))
    except SluiceError as exc:
        raise JobRefused(422, "invalid_option", exc.message) from None
    finally:
        seen.close()
    if reasons:
        raise JobRefused(
            422, "invalid_template", f"no item of the first {len(reasons)} renders: {reasons[0]}"
        )


def _too_large(limits: IntakeLimits) -> JobRefused:
    return JobRefused(
        413,
        "too_large",
        f"the body is larger than the server takes ({limits.max_body_bytes:,} bytes)",
    )


def _too_many(limits: IntakeLimits) -> JobRefused:
    return JobRefused(
        413, "too_many_items", f"more than {limits.max_items:,} items (--max-items-per-job)"
    )
