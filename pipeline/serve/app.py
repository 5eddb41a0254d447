"""The HTTP API of `sluice serve` (aiohttp): jobs, synchronous answers, health and metrics.

    POST   /v1/jobs                  a job (JSON, or NDJSON items) -> 202 {"id", "status"}
    GET    /v1/jobs                  recent jobs, newest first
    GET    /v1/jobs/{id}             its status
    GET    /v1/jobs/{id}/results     its result rows (NDJSON, input order) once finished
    GET    /v1/jobs/{id}/quarantine  its quarantine rows, likewise
    DELETE /v1/jobs/{id}             cancel: nothing new is sent, requests in flight land
    POST   /v1/process               a job answered within --sync-timeout, else 202 as above
    GET    /healthz, /readyz, /metrics

Every error is `{"error": {"type", "message"}}` with its status. Requests carry a
bearer token (auth.py); the health checks need none.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from pipeline.serve.auth import TokenCheck
from pipeline.serve.intake import ConfigFor, IntakeLimits, accept
from pipeline.serve.job_options import JobRefused
from pipeline.serve.jobs import FINAL, QUARANTINE, RESULTS, JobRecord, JobStore, RecordDamaged
from pipeline.serve.metrics import ServeMetrics
from pipeline.serve.scheduler import Scheduler
from pipeline.serve.webhook_rules import check_target

LIST_LIMIT = 50
UNAUTHENTICATED = frozenset({"/healthz", "/readyz"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ApiSettings:
    limits: IntakeLimits
    max_queued_jobs: int
    sync_timeout: float
    webhook_allow: frozenset[str]
    data_dir: str
    # A synchronous answer carries its rows up to this many bytes; beyond, where they are.
    max_sync_answer: int = 16 << 20


class Api:
    def __init__(
        self,
        settings: ApiSettings,
        store: JobStore,
        scheduler: Scheduler,
        config_for: ConfigFor,
        tokens: TokenCheck,
        metrics: ServeMetrics,
        upstream_ready: Callable[[], Awaitable[str | None]],
    ) -> None:
        self._settings = settings
        self._store = store
        self._scheduler = scheduler
        self._config_for = config_for
        self._tokens = tokens
        self._metrics = metrics
        self._upstream_ready = upstream_ready  # None when the upstream answers, else why
        self.accepting = True

    def app(self) -> web.Application:
        application = web.Application(
            client_max_size=self._settings.limits.max_body_bytes,
            middlewares=[self._observed, self._errors, self._authorized],
        )
        routes = [
            web.post("/v1/jobs", self.submit),
            web.get("/v1/jobs", self.list_jobs),
            web.get("/v1/jobs/{id}", self.job),
            web.get("/v1/jobs/{id}/results", self.results),
            web.get("/v1/jobs/{id}/quarantine", self.quarantine),
            web.delete("/v1/jobs/{id}", self.cancel),
            web.post("/v1/process", self.process),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics),
        ]
        application.add_routes(routes)
        return application

    # Jobs.

    async def submit(self, request: web.Request) -> web.StreamResponse:
        record = await self._accept(request)
        return _accepted(record)

    async def process(self, request: web.Request) -> web.StreamResponse:
        record = await self._accept(request)
        finished = await self._scheduler.wait(record.id, self._settings.sync_timeout)
        if finished is None:
            return _accepted(record)
        paths = [self._store.path(finished.id, name) for name in (RESULTS, QUARANTINE)]
        answer = self._scheduler.status(finished)
        if sum(_size(path) for path in paths) > self._settings.max_sync_answer:
            # Too large to hold and send in one body: the rows stay where GET finds them.
            answer["rows_at"] = {
                "results": f"/v1/jobs/{finished.id}/results",
                "quarantine": f"/v1/jobs/{finished.id}/quarantine",
            }
            return _json(answer, 200)
        answer["results"], answer["quarantine"] = _rows(paths[0]), _rows(paths[1])
        return _json(answer, 200)

    async def list_jobs(self, request: web.Request) -> web.StreamResponse:
        limit = _limit(request.query.get("limit"))
        ids = list(self._store.ids())[-limit:]
        jobs = []
        for job_id in reversed(ids):
            record = self._load(job_id)
            if record is not None:
                jobs.append(self._scheduler.status(record))
        return _json({"jobs": jobs}, 200)

    async def job(self, request: web.Request) -> web.StreamResponse:
        return _json(self._scheduler.status(self._found(request)), 200)

    async def results(self, request: web.Request) -> web.StreamResponse:
        return self._rows_of(self._found(request), RESULTS)

    async def quarantine(self, request: web.Request) -> web.StreamResponse:
        return self._rows_of(self._found(request), QUARANTINE)

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        record = self._scheduler.cancel(self._found(request))
        return _json(self._scheduler.status(record), 200)

    # Health.

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        return _json({"status": "ok"}, 200)

    async def readyz(self, request: web.Request) -> web.StreamResponse:
        problems = []
        if not self.accepting:
            problems.append("shutting down")
        if not _writable(self._settings.data_dir):
            problems.append(f"the data directory {self._settings.data_dir} is not writable")
        upstream = await self._upstream_ready()
        if upstream is not None:
            problems.append(upstream)
        if problems:
            return _json({"status": "not ready", "problems": problems}, 503)
        return _json({"status": "ready"}, 200)

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        self._metrics.set_jobs(self._scheduler.counts_by_status())
        self._metrics.set_queue_depth(self._scheduler.queued)
        body, content_type = self._metrics.render()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    # The parts.

    async def _accept(self, request: web.Request) -> JobRecord:
        if not self.accepting:
            raise JobRefused(503, "shutting_down", "the server is shutting down")
        if self._scheduler.queued >= self._settings.max_queued_jobs:
            raise _QueueFull(self._settings.max_queued_jobs)
        record = await accept(request, self._store, self._settings.limits, self._checked_config)
        self._scheduler.submit(record)
        return record

    def _checked_config(self, options: dict[str, Any], directory: str) -> Any:
        url = options.get("webhook_url")
        if url is not None:
            why = check_target(url, self._settings.webhook_allow)
            if why is not None:
                raise JobRefused(422, "invalid_option", f"webhook_url: {why}")
        return self._config_for(options, directory)

    def _found(self, request: web.Request) -> JobRecord:
        record = self._load(request.match_info["id"])
        if record is None:
            raise JobRefused(404, "not_found", f"no job {request.match_info['id']!r}")
        return record

    def _load(self, job_id: str) -> JobRecord | None:
        try:
            return self._store.load(job_id)
        except RecordDamaged as exc:
            raise JobRefused(500, "damaged", str(exc)) from None

    def _rows_of(self, record: JobRecord, name: str) -> web.StreamResponse:
        if record.status not in FINAL:
            raise JobRefused(
                409,
                "not_finished",
                f"job {record.id} is {record.status}; its rows come when it ends",
            )
        path = self._store.path(record.id, name)
        if not os.path.exists(path):
            return web.Response(body=b"", content_type="application/x-ndjson")
        response = web.FileResponse(path)
        response.headers["Content-Type"] = "application/x-ndjson"
        return response

    # Middlewares: outermost first.

    @web.middleware
    async def _observed(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = request.match_info.route.resource
            template = route.canonical if route is not None else "unmatched"
            self._metrics.observe_http(template, status, time.monotonic() - started)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except JobRefused as refused:
            response = _json(refused.body(), refused.status)
            if isinstance(refused, _QueueFull):
                response.headers["Retry-After"] = str(refused.retry_after)
            return response
        except web.HTTPException as exc:
            kind = "too_large" if exc.status == 413 else "http"
            body = {"error": {"type": kind, "message": exc.reason}}
            return _json(body, exc.status)

    @web.middleware
    async def _authorized(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in UNAUTHENTICATED and not self._tokens.allows(
            request.headers.get("Authorization")
        ):
            response = _json(
                {"error": {"type": "unauthorized", "message": "a valid bearer token is needed"}},
                401,
            )
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return await handler(request)


class _QueueFull(JobRefused):
    def __init__(self, limit: int, retry_after: int = 5) -> None:
        super().__init__(
            429, "queue_full", f"{limit:,} jobs are already queued (--max-queued-jobs); try later"
        )
        self.retry_after = retry_after


def _accepted(record: JobRecord) -> web.StreamResponse:
    response = _json({"id": record.id, "status": record.status}, 202)
    response.headers["Location"] = f"/v1/jobs/{record.id}"
    return response


def _json(body: Any, status: int) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _rows(path: str) -> list[Any]:
    """A finished job's rows, for a synchronous answer (small by --sync-timeout's nature)."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as handle:
        return [orjson.loads(line) for line in handle if line.strip()]


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _limit(text: str | None) -> int:
    try:
        return max(1, min(500, int(text))) if text else LIST_LIMIT
    except ValueError:
        raise JobRefused(400, "invalid_request", "limit must be a whole number") from None


def _writable(directory: str) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".ready-"):
            return True
    except OSError:
        return False
