"""The dispatcher on a fake clock: dead endpoints, oversize answers, redacted messages."""

from __future__ import annotations

import asyncio
import random

import orjson
import pytest

from pipeline.core.config import Endpoint, RetryConfig, Secret, TrafficConfig
from pipeline.core.errors import AuthRefused, ErrorKind, ServiceUnavailable
from pipeline.core.models import Failure, Item, Success
from pipeline.core.redact import Redactor
from pipeline.dispatch.dispatcher import Dispatcher
from pipeline.dispatch.first_contact import UNREACHABLE_LIMIT
from pipeline.dispatch.transport import AnswerTooLarge, Response, TransportError
from pipeline.observe.counters import RunStats
from pipeline.prepare.request_builder import Request
from pipeline.traffic.control import TrafficControl
from tests.fakes.clock import FakeClock
from tests.fakes.transport import Script, ScriptedTransport
from tests.leaks import key_fragments

REQUEST = Request(Endpoint.CHAT, "/chat/completions", {})
ANSWER = orjson.dumps(
    {"choices": [{"message": {"content": "fine"}, "finish_reason": "stop"}], "usage": {}}
)
REFUSED = "cannot connect to 127.0.0.1:9: Connection refused"


def _item(n: int) -> Item:
    return Item(n, "in.jsonl", n + 1, {"id": n}, n)


def _dispatcher(
    script: Script, retry: RetryConfig, key: Secret | None = None
) -> tuple[Dispatcher, ScriptedTransport]:
    clock, stats = FakeClock(), RunStats()
    traffic = TrafficControl(TrafficConfig(concurrency=4), clock, stats, random.Random(0))
    transport = ScriptedTransport(script)
    redact = Redactor(key)
    return Dispatcher(transport, traffic, retry, stats, redact, clock, random.Random(0)), transport


async def _refused(n: int) -> Response:
    raise TransportError(REFUSED, connect_failed=True)


def test_an_endpoint_nobody_answers_at_stops_the_run_and_no_item_is_blamed() -> None:
    # With no retries allowed, each refusal used to quarantine an item as transient.
    dispatcher, transport = _dispatcher(_refused, RetryConfig(max_retries=0))
    expected = rf"nothing answers at http://127\.0\.0\.1:9/v1: {REFUSED}"
    with pytest.raises(ServiceUnavailable, match=expected):
        asyncio.run(dispatcher.dispatch(_item(0), REQUEST))
    assert transport.sent == UNREACHABLE_LIMIT


def test_once_the_endpoint_has_answered_a_refusal_is_an_ordinary_transient_failure() -> None:
    async def answer_once(n: int) -> Response:
        if n == 1:
            return Response(200, {}, ANSWER, 0.01)
        return await _refused(n)

    dispatcher, _ = _dispatcher(answer_once, RetryConfig(max_retries=1))

    async def scenario() -> tuple[object, object]:
        return await dispatcher.dispatch(_item(0), REQUEST), await dispatcher.dispatch(
            _item(1), REQUEST
        )

    first, second = asyncio.run(scenario())
    assert isinstance(first, Success)
    assert isinstance(second, Failure) and second.kind is ErrorKind.TRANSIENT
    assert second.message == REFUSED and second.attempts == 2


def test_an_oversize_answer_is_an_invalid_output_retried_a_bounded_number_of_times() -> None:
    async def too_large(n: int) -> Response:
        raise AnswerTooLarge(200, 1000)

    dispatcher, transport = _dispatcher(too_large, RetryConfig(max_invalid_output_retries=2))
    outcome = asyncio.run(dispatcher.dispatch(_item(0), REQUEST))
    assert isinstance(outcome, Failure) and outcome.kind is ErrorKind.INVALID_OUTPUT
    assert outcome.status == 200 and "--max-response-size (1,000 bytes)" in outcome.message
    assert transport.sent == 3


@pytest.mark.parametrize("status", [400, 401, 503])
def test_a_server_quoting_the_key_past_the_cut_leaks_none_of_it(status: int) -> None:
    key = "tok_9fQ2xLmP4vRtZ8wYk3NcB7hJ6sDaE1gU5oIq"

    async def echo_key(n: int) -> Response:
        message = "x" * 480 + f"Authorization: Bearer {key}"
        return Response(status, {}, orjson.dumps({"error": {"message": message}}), 0.01)

    retry = RetryConfig(max_retries=0)
    dispatcher, _ = _dispatcher(echo_key, retry, Secret(key))
    try:
        outcome = asyncio.run(dispatcher.dispatch(_item(0), REQUEST))
        said = outcome.message if isinstance(outcome, Failure) else ""
    except AuthRefused as refused:
        said = refused.message
    assert said and not key_fragments(key, said)


class _SlowToOpen(ScriptedTransport):
    """Its first `ready` takes 0.3 s, as importing aiohttp does; a send makes it ready
    if nobody did before."""

    def __init__(self, script: Script, clock: FakeClock) -> None:
        super().__init__(script)
        self._clock = clock
        self._opened = False

    def ready(self) -> None:
        if not self._opened:
            self._opened = True
            self._clock.current += 0.3

    async def send(self, path: str, payload: bytes, timeout: float) -> Response:
        self.ready()
        return await super().send(path, payload, timeout)


def test_a_request_takes_its_place_in_the_rate_limits_only_once_it_can_go() -> None:
    async def answer(n: int) -> Response:
        return Response(200, {}, ANSWER, 0.01)

    clock, stats = FakeClock(), RunStats()
    config = TrafficConfig(concurrency=4, rpm=1200)  # a burst of 198 at once, 20 a second
    traffic = TrafficControl(config, clock, stats, random.Random(0))
    transport = _SlowToOpen(answer, clock)
    dispatcher = Dispatcher(
        transport, traffic, RetryConfig(), stats, Redactor(None), clock, random.Random(0)
    )
    assert isinstance(asyncio.run(dispatcher.dispatch(_item(0), REQUEST)), Success)
    # Counted as sent before the transport could send, the request would have earned
    # the limits 0.3 s of refill the server never gave: the burst would look whole.
    immediate = 0
    while traffic.limiter.reserve(0, clock.now()) == 0:
        immediate += 1
    assert immediate == 197
