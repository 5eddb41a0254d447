"""The simulated OpenAI API as an aiohttp application.

The handlers stay lean because benchmarks measure clients against this server:
no middlewares, no per-request logging, no sleep when there is no latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from pipeline.simulator import answer_shape, answers, faults, request_parsing
from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.faults import Fault, InvalidRequest
from pipeline.simulator.limits import RateLimits, Refusal, retry_after_headers
from pipeline.simulator.schema_values import UnsatisfiableSchema
from pipeline.simulator.stats import STATS_KEY, SimulatorStats

MAX_BODY_BYTES = 16 * 1024 * 1024
UNKNOWN_PATH = "(unknown)"
JSON_CONTENT_TYPE = "application/json"
EVENT_STREAM_CONTENT_TYPE = "text/event-stream; charset=utf-8"
# A stalled stream sends the role chunk and the first piece of content, then nothing.
STALL_AFTER_EVENTS = 2


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful answer: one JSON body, or the server-sent events of a stream."""

    body: bytes
    """The JSON body, or every event of the stream joined."""
    events: list[bytes] | None
    completion_tokens: int


@dataclass(slots=True)
class Exchange:
    """A valid request on its way through limits, faults and latency to its answer."""

    model: str
    digest: str
    trigger: faults.Trigger | None
    token_cost: int
    prompt_tokens: int
    answer: Callable[[Fault | None], Answer]
    """Renders the answer; a content fault (invalid_json, schema_violation) bends it."""
    streams: bool = False
    trigger_param: str | None = None
    """Which input of a packed request holds the trigger, e.g. `input[3]`."""
    inputs: list[str] = field(default_factory=list)
    """An embeddings request's texts, each counted in the stats."""
    limit_headers: dict[str, str] | None = None
    """The `x-ratelimit-*` headers as they stood just after this request was admitted: a
    provider counts at admission (a stream's headers leave before its first token)."""


class Simulator:
    """The state every request shares: limits, fault streams, counters."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.stats = SimulatorStats()
        self._limits = RateLimits(config.rpm, config.tpm, config.burst_seconds, time.monotonic())
        self._random_faults = faults.RandomFaults(config)
        self._latency = faults.Latency(config)
        self._accepted = 0
        self._ids = itertools.count(1)
        self._released = asyncio.Event()
        self._known_models = config.models if config.strict_models else None
        self._models_body = orjson.dumps(answers.models_body(config.models))

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "/v1/chat/completions", self._chat_job)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "/v1/embeddings", self._embedding_job)

    def _chat_job(self, body: Any) -> Exchange:
        chat = request_parsing.parse_chat_request(body)
        request_parsing.check_model(chat.model, self._known_models)
        completion = _complete(chat)
        # OpenAI reserves max_tokens against the context window and the TPM limit.
        reserved = chat.max_tokens if chat.max_tokens is not None else completion.completion_tokens
        request_parsing.check_context_length(
            completion.prompt_tokens, reserved, self.config.context_length_for(chat.model)
        )

        def answer(fault: Fault | None) -> Answer:
            done = completion if fault is None else answers.complete(chat, fault)
            completion_id = f"chatcmpl-sim{next(self._ids):020x}"
            created = int(time.time())
            if chat.stream:
                events = answers.stream_events(
                    completion_id, created, chat.model, done, chat.include_usage
                )
                return Answer(b"".join(events), events, done.completion_tokens)
            body = answers.chat_completion_body(completion_id, created, chat.model, done)
            return Answer(orjson.dumps(body), None, done.completion_tokens)

        trigger = faults.find_trigger(answers.last_user_text(chat.messages))
        if chat.response_format.kind == "text":
            trigger = faults.without_content_fault(trigger)  # only JSON answers can be bent
        prompt = completion.prompt_tokens
        return Exchange(
            chat.model, chat.digest, trigger, prompt + reserved, prompt, answer, chat.stream
        )

    def _embedding_job(self, body: Any) -> Exchange:
        embed = request_parsing.parse_embedding_request(body)
        request_parsing.check_model(embed.model, self._known_models)
        token_counts = [answers.count_tokens(text) for text in embed.texts]
        request_parsing.check_input_lengths(
            token_counts, self.config.context_length_for(embed.model)
        )
        tokens = sum(token_counts)
        dimensions = embed.dimensions or self.config.embedding_dimensions

        def answer(fault: Fault | None) -> Answer:
            body = answers.embeddings_body(embed.model, embed.texts, dimensions, tokens)
            return Answer(orjson.dumps(body), None, 0)

        found = faults.find_input_trigger(embed.texts)
        trigger = None if found is None else faults.without_content_fault(found[1])
        where = None if found is None else f"input[{found[0]}]"
        return Exchange(
            embed.model,
            embed.digest,
            trigger,
            tokens,
            tokens,
            answer,
            trigger_param=where,
            inputs=embed.texts,
        )

    async def models(self, request: web.Request) -> web.StreamResponse:
        refusal = self._check_account(request, "/v1/models", check_quota=False)
        return refusal if refusal is not None else self._respond(200, self._models_body)

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        self._count_request(UNKNOWN_PATH)
        return self._respond(404, faults.not_found_body(request.method, request.path))

    async def stats_json(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.stats.to_json(), content_type=JSON_CONTENT_TYPE)

    async def release_hung(self, app: web.Application) -> None:
        """At shutdown, end hung requests at once instead of holding the server open."""
        self._released.set()

    async def _handle(
        self, request: web.Request, path: str, make_job: Callable[[Any], Exchange]
    ) -> web.StreamResponse:
        refusal = self._check_account(request, path)
        if refusal is not None:
            return refusal
        try:
            job = make_job(await _read_body(request))
        except InvalidRequest as invalid:
            body = faults.invalid_request_body(invalid.message, invalid.param, invalid.code)
            return self._respond(invalid.status, body)
        return await self._serve(request, job)

    async def _serve(self, request: web.Request, job: Exchange) -> web.StreamResponse:
        now = time.monotonic()
        if self._limits:
            refusal = self._limits.admit(job.token_cost, now)
            if refusal is not None:
                return self._rate_limited(refusal, job.model)
            job.limit_headers = self._limits.headers(now)
        self._accepted += 1
        stats = self.stats
        if stats.first_admitted_at is None:
            stats.first_admitted_at = now
        stats.last_admitted_at = now
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            return await self._accepted_request(request, job)
        finally:
            stats.in_flight -= 1

    async def _accepted_request(self, request: web.Request, job: Exchange) -> web.StreamResponse:
        counts = self.stats.requests_by_digest
        earlier = counts.get(job.digest, 0)
        counts[job.digest] = earlier + 1
        for text in job.inputs:
            self.stats.embedding_inputs_by_digest[answers.content_digest(text)] += 1
        if job.trigger is not None and job.trigger.fires(earlier):
            fault: Fault | None = job.trigger.fault
        else:
            fault = self._random_faults.draw()
        if fault is Fault.HANG or (fault is Fault.STALL and not job.streams):
            return await self._hang(request)
        delay = self._latency.draw()
        if delay > 0.0:
            await asyncio.sleep(delay)
        if fault is None or fault in faults.CONTENT_FAULTS:
            return await self._answer(request, job, fault)
        return await self._fault_response(request, fault, job)

    async def _answer(
        self, request: web.Request, job: Exchange, fault: Fault | None
    ) -> web.StreamResponse:
        answer = job.answer(fault)
        if fault is not None:
            self.stats.invalid_outputs += 1
        self.stats.prompt_tokens += job.prompt_tokens
        self.stats.completion_tokens += answer.completion_tokens
        if answer.events is None:
            return self._respond(200, answer.body, limits=job.limit_headers)
        return await self._stream(request, answer.events, job.limit_headers)

    async def _stream(
        self,
        request: web.Request,
        events: list[bytes],
        limits: dict[str, str] | None,
        stall: bool = False,
    ) -> web.StreamResponse:
        """Send the events; a stall sends the first few, then holds the connection and drops it."""
        self.stats.streamed += 1
        response = await _open_stream(request, self._headers(200, limits))
        if stall:
            self.stats.stalled += 1
            events = events[:STALL_AFTER_EVENTS]
        finished = await _send_events(response, events, self.config.stream_interval)
        if stall:
            await self._hold()
            _drop(request)
        elif finished:
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
        return response

    async def _fault_response(
        self, request: web.Request, fault: Fault, job: Exchange
    ) -> web.StreamResponse:
        if fault is Fault.STALL:
            events = job.answer(None).events or []
            return await self._stream(request, events, job.limit_headers, stall=True)
        if fault is Fault.DROP:
            self.stats.dropped += 1
            return _drop(request)
        if fault is Fault.MALFORMED:
            self.stats.malformed += 1
            variant = 0 if job.trigger is not None else self._random_faults.malformed_variant()
            content_type = EVENT_STREAM_CONTENT_TYPE if job.streams else JSON_CONTENT_TYPE
            body = faults.malformed_body(job.answer(None).body, variant)
            return self._respond(200, body, {"Content-Type": content_type}, job.limit_headers)
        if fault is Fault.INVALID:
            body = faults.triggered_invalid_body(job.trigger_param)
            return self._respond(400, body, limits=job.limit_headers)
        if fault is Fault.CONTEXT_LENGTH:
            limit = self.config.context_length_for(job.model)
            prompt = max(job.prompt_tokens, limit + 1)
            message = request_parsing.context_length_message(limit, prompt, 0)
            return self._respond(400, faults.context_length_body(message), limits=job.limit_headers)
        if fault in (Fault.RATE_LIMITED, Fault.LONG_RATE_LIMIT):
            long = fault is Fault.LONG_RATE_LIMIT
            wait = faults.LONG_RATE_LIMIT_WAIT if long else faults.TRIGGERED_RATE_LIMIT_WAIT
            refusal = Refusal("requests", wait, self.config.rpm or 0, used=0, requested=1)
            return self._rate_limited(refusal, job.model)
        status = faults.HTTP_STATUS_FAULTS[fault]
        return self._respond(status, faults.server_error_body(status), limits=job.limit_headers)

    async def _hang(self, request: web.Request) -> web.StreamResponse:
        self.stats.hung += 1
        await self._hold()
        return _drop(request)

    async def _hold(self) -> None:
        """Wait `hang_seconds`, or until shutdown releases every held request."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._released.wait(), self.config.hang_seconds)

    def _check_account(
        self, request: web.Request, path: str, check_quota: bool = True
    ) -> web.Response | None:
        """Count the request, then refuse it for a wrong key or an exhausted quota."""
        self._count_request(path)
        required_key = self.config.require_key
        if required_key is not None:
            refusal = faults.api_key_refusal(request.headers.get("Authorization"), required_key)
            if refusal is not None:
                return self._respond(401, refusal)
        quota = self.config.quota_requests
        if check_quota and quota is not None and self._accepted >= quota:
            self.stats.quota_exceeded += 1
            return self._respond(429, faults.INSUFFICIENT_QUOTA_BODY)
        return None

    def _rate_limited(self, refusal: Refusal, model: str) -> web.Response:
        self.stats.rate_limited += 1
        body = faults.rate_limited_body(refusal, model)
        return self._respond(429, body, retry_after_headers(refusal.wait))

    def _respond(
        self,
        status: int,
        body: bytes,
        extra_headers: dict[str, str] | None = None,
        limits: dict[str, str] | None = None,
    ) -> web.Response:
        headers = self._headers(status, limits)
        if extra_headers:
            headers.update(extra_headers)
        return web.Response(status=status, body=body, headers=headers)

    def _headers(self, status: int, limits: dict[str, str] | None = None) -> dict[str, str]:
        """Count the response by its status; give it a request id and the limit headers:
        `limits` as they stood when the request was admitted, else as they stand now."""
        self.stats.responses_by_status[status] += 1
        headers = {
            "Content-Type": JSON_CONTENT_TYPE,
            "x-request-id": f"req_sim{next(self._ids):020x}",
        }
        if limits is not None:
            headers.update(limits)
        elif self._limits:
            headers.update(self._limits.headers(time.monotonic()))
        return headers

    def _count_request(self, path: str) -> None:
        self.stats.requests_total += 1
        self.stats.requests_by_path[path] += 1


async def _read_body(request: web.Request) -> Any:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as error:
        raise InvalidRequest(f"The request body is larger than {MAX_BODY_BYTES} bytes.") from error
    except ConnectionError as error:
        # The client went away mid-body; answering keeps aiohttp from logging a traceback.
        raise InvalidRequest("The connection closed before the whole body arrived.") from error
    return request_parsing.parse_json_body(raw)


def _complete(chat: request_parsing.ChatRequest) -> answers.Completion:
    try:
        return answers.complete(chat)
    except UnsatisfiableSchema as unsatisfiable:
        name = chat.response_format.name
        raise answer_shape.invalid_schema(name, unsatisfiable.message) from None


async def _open_stream(request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
    """Send the 200 and its headers; the events follow with `_send_events`."""
    response = web.StreamResponse(
        status=200,
        headers={**headers, "Content-Type": EVENT_STREAM_CONTENT_TYPE, "Cache-Control": "no-cache"},
    )
    await response.prepare(request)
    return response


async def _send_events(response: web.StreamResponse, events: list[bytes], interval: float) -> bool:
    """Write the events `interval` seconds apart; False when the client left meanwhile."""
    for index, event in enumerate(events):
        if index and interval > 0.0:
            await asyncio.sleep(interval)
        try:
            await response.write(event)
        except ConnectionError:
            return False
    return True


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without a byte of answer; the client sees a disconnect."""
    if request.transport is not None:
        request.transport.close()
    # aiohttp's write to the closed transport fails quietly, so nothing reaches the client.
    return web.Response(status=200)


def build_app(config: SimulatorConfig | None = None) -> web.Application:
    """The simulator as an aiohttp app; its counters are at `app[STATS_KEY]`."""
    simulator = Simulator(config or SimulatorConfig())
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[STATS_KEY] = simulator.stats
    app.router.add_post("/v1/chat/completions", simulator.chat_completions)
    app.router.add_post("/v1/embeddings", simulator.embeddings)
    app.router.add_get("/v1/models", simulator.models)
    app.router.add_get("/sim/stats", simulator.stats_json)
    # Last, so unknown paths and wrong methods get an OpenAI-style 404 with our headers.
    app.router.add_route("*", "/{tail:.*}", simulator.not_found)
    app.on_shutdown.append(simulator.release_hung)
    return app
