"""The simulator over real HTTP on 127.0.0.1: shapes, triggers, limits, headers, stats."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest
from multidict import CIMultiDict

from pipeline.simulator.answers import chat_content, content_digest, embedding
from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig

T = TypeVar("T")
RATE_LIMIT_HEADERS = [
    f"x-ratelimit-{part}-{kind}"
    for kind in ("requests", "tokens")
    for part in ("limit", "remaining", "reset")
]


@dataclass
class Reply:
    status: int
    headers: CIMultiDict[str]
    raw: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.raw)

    @property
    def error(self) -> dict[str, Any]:
        return dict(self.json["error"])


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def chat_body(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "sim-chat", "messages": user(text), **extra}


def talk(server: BackgroundSimulator | str, conversation: Callable[[Client], Awaitable[T]]) -> T:
    """Run one client conversation against a simulator (or a base URL) and return its result."""
    base_url = server if isinstance(server, str) else server.base_url

    async def run() -> T:
        async with aiohttp.ClientSession() as session:
            return await conversation(Client(session, base_url))

    return asyncio.run(run())


@dataclass
class Client:
    session: aiohttp.ClientSession
    base_url: str

    async def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> Reply:
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        async with self.session.request(
            method,
            self.base_url + path,
            data=data,
            headers={"Content-Type": "application/json", **(headers or {})},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            return Reply(response.status, CIMultiDict(response.headers), await response.read())

    async def chat(self, text: str, **extra: Any) -> Reply:
        return await self.send("POST", "/chat/completions", chat_body(text, **extra))

    async def served_stats(self) -> Any:
        async with self.session.get(self.base_url.removesuffix("/v1") + "/sim/stats") as response:
            return orjson.loads(await response.read())


def test_chat_answer_has_openai_shape_and_its_own_items_content() -> None:
    with BackgroundSimulator() as sim:
        reply = talk(sim, lambda c: c.chat("I loved it", max_tokens=50))
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.headers["x-request-id"]
    answer = reply.json
    assert set(answer) == {"id", "object", "created", "model", "choices", "usage"}
    assert answer["object"] == "chat.completion" and answer["model"] == "sim-chat"
    assert answer["id"].startswith("chatcmpl-") and isinstance(answer["created"], int)
    (choice,) = answer["choices"]
    content = chat_content(user("I loved it"))
    assert choice == {
        "index": 0,
        "message": {"role": "assistant", "content": content},
        "finish_reason": "stop",
    }
    usage = answer["usage"]
    assert usage["prompt_tokens"] == 3 + 3  # 10 characters, plus 3 for the message
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_answers_are_deterministic_and_concurrent_answers_stay_with_their_items() -> None:
    texts = [f"item {n}" for n in range(40)]

    async def ask_all(client: Client) -> list[Reply]:
        return list(await asyncio.gather(*(client.chat(text) for text in texts)))

    with BackgroundSimulator() as first, BackgroundSimulator(SimulatorConfig(seed=9)) as second:
        replies = talk(first, ask_all)
        again = talk(second, ask_all)
    contents = [r.json["choices"][0]["message"]["content"] for r in replies]
    assert contents == [chat_content(user(text)) for text in texts]
    assert contents == [r.json["choices"][0]["message"]["content"] for r in again]


def test_max_tokens_cuts_the_answer_with_finish_reason_length() -> None:
    with BackgroundSimulator() as sim:
        reply = talk(sim, lambda c: c.chat("hello", max_tokens=1))
    (choice,) = reply.json["choices"]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == chat_content(user("hello"))[:4]
    assert reply.json["usage"]["completion_tokens"] == 1


def test_embeddings_have_openai_shape_for_a_string_or_a_list() -> None:
    async def embed(client: Client) -> tuple[Reply, Reply]:
        one = await client.send("POST", "/embeddings", {"model": "sim-embed", "input": "alpha"})
        body = {"model": "sim-embed", "input": ["alpha", "beta"], "dimensions": 16}
        return one, await client.send("POST", "/embeddings", body)

    with BackgroundSimulator() as sim:
        one, two = talk(sim, embed)
    assert one.status == two.status == 200
    assert one.json == {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": embedding("alpha")}],
        "model": "sim-embed",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    assert [d["embedding"] for d in two.json["data"]] == [
        embedding("alpha", 16),
        embedding("beta", 16),
    ]
    assert [d["index"] for d in two.json["data"]] == [0, 1]


def test_models_are_listed() -> None:
    with BackgroundSimulator() as sim:
        reply = talk(sim, lambda c: c.send("GET", "/models"))
    assert reply.status == 200
    assert [m["id"] for m in reply.json["data"]] == ["sim-chat", "sim-embed"]
    assert reply.json["object"] == "list"


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"not json", None),
        (b"", None),
        (b"[1, 2]", None),
        (b'{"messages": []}', "model"),
        (b'{"model": "m"}', "messages"),
        (b'{"model": "m", "messages": [{"role": "user"}], "max_tokens": -1}', "max_tokens"),
        (b"[" * 5000 + b"]" * 5000, None),
        (b'{"model": "m", "messages": [' + b"[" * 600 + b"]" * 600 + b"]}", "messages[0]"),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": '
            + b"[" * 600
            + b"]" * 600
            + b"}]}",
            "messages",
        ),
    ],
)
def test_garbage_gets_400_invalid_request_and_the_server_carries_on(
    raw: bytes, param: str | None
) -> None:
    async def garbage_then_good(client: Client) -> tuple[Reply, Reply]:
        return await client.send("POST", "/chat/completions", raw=raw), await client.chat("ok")

    with BackgroundSimulator() as sim:
        bad, good = talk(sim, garbage_then_good)
    assert bad.status == 400
    assert bad.error["type"] == "invalid_request_error"
    assert bad.error["param"] == param
    assert good.status == 200


def test_unknown_paths_and_methods_get_an_openai_404() -> None:
    async def lost(client: Client) -> tuple[Reply, Reply]:
        return await client.send("GET", "/nowhere"), await client.send("GET", "/chat/completions")

    with BackgroundSimulator() as sim:
        nowhere, wrong_method = talk(sim, lost)
    assert nowhere.status == wrong_method.status == 404
    assert nowhere.error["message"] == "Invalid URL (GET /v1/nowhere)"


def test_trigger_400_refuses_the_item_every_time() -> None:
    async def twice(client: Client) -> list[Reply]:
        return [await client.chat("x [[sim:400]]") for _ in range(2)]

    with BackgroundSimulator() as sim:
        replies = talk(sim, twice)
    for reply in replies:
        assert reply.status == 400
        assert reply.error["code"] == "invalid_request"
        assert reply.error["message"].startswith("Invalid request: ")


def test_trigger_context_length_answers_like_openai() -> None:
    with BackgroundSimulator() as sim:
        reply = talk(sim, lambda c: c.chat("[[sim:context_length]]"))
    assert reply.status == 400
    assert reply.error["code"] == "context_length_exceeded"
    assert reply.error["message"].startswith("This model's maximum context length is ")


def test_a_prompt_over_the_context_length_is_refused_without_a_trigger() -> None:
    with BackgroundSimulator(SimulatorConfig(context_length=100)) as sim:
        reply = talk(sim, lambda c: c.chat("x" * 300, max_tokens=50))
    assert reply.status == 400 and reply.error["code"] == "context_length_exceeded"


def test_trigger_500x2_fails_twice_then_answers_counting_per_item() -> None:
    async def four(client: Client) -> list[int]:
        statuses = [(await client.chat("a [[sim:500x2]]")).status for _ in range(3)]
        return [*statuses, (await client.chat("b [[sim:500x2]]")).status]

    with BackgroundSimulator() as sim:
        statuses = talk(sim, four)
        stats = sim.stats()
    assert statuses == [500, 500, 200, 500]
    assert stats.times_requested(user("a [[sim:500x2]]")) == 3
    assert stats.times_requested(user("b [[sim:500x2]]")) == 1


def test_trigger_dropx1_closes_the_connection_once() -> None:
    async def drop_then_answer(client: Client) -> int:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.chat("[[sim:dropx1]]")
        return (await client.chat("[[sim:dropx1]]")).status

    with BackgroundSimulator() as sim:
        assert talk(sim, drop_then_answer) == 200
        assert sim.stats().dropped == 1


def test_trigger_malformedx1_garbles_the_first_answer_only() -> None:
    async def twice(client: Client) -> list[Reply]:
        return [await client.chat("[[sim:malformedx1]]") for _ in range(2)]

    with BackgroundSimulator() as sim:
        garbled, good = talk(sim, twice)
        assert sim.stats().malformed == 1
    assert garbled.status == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(garbled.raw)
    assert good.json["choices"][0]["message"]["content"] == chat_content(
        user("[[sim:malformedx1]]")
    )


def test_trigger_hang_never_answers_and_does_not_hold_up_shutdown() -> None:
    async def hang(client: Client) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await client.send("POST", "/chat/completions", chat_body("[[sim:hang]]"), timeout=0.2)

    sim = BackgroundSimulator().start()
    talk(sim, hang)
    assert sim.stats().hung == 1
    started = time.perf_counter()
    sim.stop()
    assert time.perf_counter() - started < 0.5


def test_trigger_429_asks_for_a_short_wait_then_answers() -> None:
    async def twice(client: Client) -> list[Reply]:
        return [await client.chat("[[sim:429x1]]") for _ in range(2)]

    with BackgroundSimulator() as sim:
        limited, good = talk(sim, twice)
    assert limited.status == 429 and limited.error["code"] == "rate_limit_exceeded"
    assert limited.headers["retry-after-ms"] == "50" and limited.headers["retry-after"] == "1"
    assert good.status == 200


def test_embedding_input_carries_triggers_too() -> None:
    body = {"model": "sim-embed", "input": ["fine", "[[sim:503x1]]"]}
    with BackgroundSimulator() as sim:
        reply = talk(sim, lambda c: c.send("POST", "/embeddings", body))
    assert reply.status == 503 and reply.error["type"] == "server_error"


def test_require_key_refuses_missing_and_wrong_keys_without_echoing_them() -> None:
    right = "sk-right-key-0123456789"

    async def three(client: Client) -> list[Reply]:
        return [
            await client.send("POST", "/chat/completions", chat_body("hi")),
            await client.send(
                "POST",
                "/chat/completions",
                chat_body("hi"),
                headers={"Authorization": "Bearer sk-wrong-secret-wxyz"},
            ),
            await client.send(
                "POST",
                "/chat/completions",
                chat_body("hi"),
                headers={"Authorization": f"Bearer {right}"},
            ),
        ]

    with BackgroundSimulator(SimulatorConfig(require_key=right)) as sim:
        missing, wrong, good = talk(sim, three)
    assert missing.status == wrong.status == 401
    assert missing.error["code"] == wrong.error["code"] == "invalid_api_key"
    assert wrong.error["message"].startswith("Incorrect API key provided: sk-...wxyz.")
    assert b"wrong-secret" not in wrong.raw and b"right-key" not in wrong.raw
    assert good.status == 200


def test_quota_refuses_every_request_after_n_accepted() -> None:
    async def four(client: Client) -> list[Reply]:
        return [await client.chat(f"item {n}") for n in range(4)]

    with BackgroundSimulator(SimulatorConfig(quota_requests=2)) as sim:
        replies = talk(sim, four)
        assert sim.stats().quota_exceeded == 2
    assert [r.status for r in replies] == [200, 200, 429, 429]
    assert replies[2].error == {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }


def test_over_rpm_gets_429_with_retry_headers() -> None:
    async def three(client: Client) -> list[Reply]:
        return [await client.chat(f"item {n}") for n in range(3)]

    # 60 rpm with a 2-second burst: two requests at once, then one per second.
    with BackgroundSimulator(SimulatorConfig(rpm=60, burst_seconds=2)) as sim:
        first, second, third = talk(sim, three)
        assert sim.stats().rate_limited == 1
    assert first.status == second.status == 200
    assert third.status == 429
    assert third.error["type"] == "requests" and third.error["code"] == "rate_limit_exceeded"
    assert third.error["message"].startswith("Rate limit reached for sim-chat")
    assert third.headers["retry-after"] == "1"
    assert 0 < int(third.headers["retry-after-ms"]) <= 1000
    assert third.headers["x-ratelimit-limit-requests"] == "60"
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"


def test_the_remaining_count_is_what_was_left_when_the_request_was_admitted() -> None:
    async def streamed(client: Client) -> Reply:
        return await client.chat("item", stream=True)

    async def plain(client: Client) -> Reply:
        return await client.chat("item")

    # 600 rpm with a 1-second burst holds 10; the answer comes 0.3 s later, by when the
    # bucket has refilled to the full 10. The count is taken at admission, as a
    # provider's limiter takes it (a stream's headers leave before its first token).
    config = SimulatorConfig(rpm=600, burst_seconds=1, latency=0.3)
    for conversation in (streamed, plain):
        with BackgroundSimulator(config) as sim:
            reply = talk(sim, conversation)
        assert reply.status == 200
        assert reply.headers["x-ratelimit-remaining-requests"] == "9"


def test_over_tpm_counts_max_tokens_and_admits_a_huge_request_when_full() -> None:
    async def two(client: Client) -> list[Reply]:
        return [await client.chat(f"item {n}", max_tokens=500) for n in range(2)]

    # 600 tokens a minute with a 10-second burst holds 100 tokens: less than one request.
    with BackgroundSimulator(SimulatorConfig(tpm=600)) as sim:
        first, second = talk(sim, two)
    assert first.status == 200
    assert second.status == 429 and second.error["type"] == "tokens"
    assert int(second.headers["retry-after"]) >= 50
    assert first.headers["x-ratelimit-remaining-tokens"] == "0"


def test_every_response_carries_request_id_and_rate_limit_headers() -> None:
    key = "sk-right-key-0123456789"
    auth = {"Authorization": f"Bearer {key}"}

    async def everything(client: Client) -> list[Reply]:
        chat, embed = "/chat/completions", "/embeddings"
        return [
            await client.send("POST", chat, chat_body("ok"), headers=auth),
            await client.send("POST", chat, raw=b"{", headers=auth),
            await client.send("POST", chat, chat_body("[[sim:500x1]]"), headers=auth),
            await client.send("POST", chat, chat_body("ok")),
            await client.send("GET", "/nowhere", headers=auth),
            await client.send("GET", "/models", headers=auth),
            await client.send("POST", embed, {"model": "e", "input": "a"}, headers=auth),
            await client.send("POST", chat, chat_body("late"), headers=auth),
        ]

    config = SimulatorConfig(rpm=60, tpm=100_000, burst_seconds=3, require_key=key)
    with BackgroundSimulator(config) as sim:
        replies = talk(sim, everything)
    assert [r.status for r in replies] == [200, 400, 500, 401, 404, 200, 200, 429]
    for reply in replies:
        assert reply.headers["x-request-id"].startswith("req_")
        assert all(reply.headers[name] for name in RATE_LIMIT_HEADERS)
    assert len({r.headers["x-request-id"] for r in replies}) == len(replies)


def test_stats_count_requests_statuses_and_items() -> None:
    async def traffic(client: Client) -> Any:
        await client.chat("one")
        await client.chat("two")
        await client.chat("two")
        await client.send("POST", "/embeddings", {"model": "e", "input": "three"})
        await client.send("POST", "/chat/completions", raw=b"nope")
        await client.send("GET", "/nowhere")
        return await client.served_stats()

    with BackgroundSimulator() as sim:
        served = talk(sim, traffic)
        stats = sim.stats()
    assert stats.requests_total == 6
    assert stats.requests_by_path["/v1/chat/completions"] == 4
    assert stats.requests_by_path["/v1/embeddings"] == 1
    assert stats.responses_by_status == {200: 4, 400: 1, 404: 1}
    assert stats.times_requested(user("one")) == 1
    assert stats.times_requested(user("two")) == 2
    assert stats.requests_by_digest[content_digest("three")] == 1
    assert stats.prompt_tokens > 0 and stats.completion_tokens > 0
    assert served["requests_total"] == 6
    assert served["responses_by_status"] == {"200": 4, "400": 1, "404": 1}
    assert served["requests_by_digest"][content_digest(user("two"))] == 2


def test_stats_say_when_the_first_and_last_requests_were_admitted() -> None:
    async def three(client: Client) -> list[Reply]:
        return [await client.chat(f"item {n}") for n in range(3)]

    # Each request goes once the last is answered, 0.2 s after it was admitted.
    with BackgroundSimulator(SimulatorConfig(latency=0.2)) as sim:
        assert sim.stats().first_admitted_at is None
        talk(sim, three)
        stats = sim.stats()
    assert stats.first_admitted_at is not None and stats.last_admitted_at is not None
    assert stats.last_admitted_at - stats.first_admitted_at >= 2 * 0.2


def test_random_faults_replay_from_the_seed() -> None:
    async def twenty(client: Client) -> list[int]:
        return [(await client.chat(f"item {n}")).status for n in range(20)]

    config = SimulatorConfig(fail_rate=0.5, seed=7)
    with BackgroundSimulator(config) as first, BackgroundSimulator(config) as second:
        statuses = talk(first, twenty)
        assert statuses == talk(second, twenty)
    assert 200 in statuses and set(statuses) - {200} <= {500, 502, 503}
    assert set(statuses) != {200}


def test_latency_delays_every_answer() -> None:
    with BackgroundSimulator(SimulatorConfig(latency=0.05)) as sim:
        started = time.perf_counter()
        talk(sim, lambda c: c.chat("slow"))
        assert time.perf_counter() - started >= 0.05


def test_background_simulator_starts_and_stops_quickly_on_a_free_loopback_port() -> None:
    started = time.perf_counter()
    with BackgroundSimulator() as one, BackgroundSimulator() as two:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", one.base_url)
        assert one.base_url != two.base_url
    assert time.perf_counter() - started < 0.5
    assert one.stats().requests_total == 0  # still readable after shutdown


def test_sluice_sim_announces_its_address_serves_and_exits_0_on_sigint() -> None:
    sluice = Path(sys.executable).with_name("sluice")
    process = subprocess.Popen(
        [str(sluice), "sim", "--port", "0", "--rpm", "600"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert process.stderr is not None
    try:
        line = process.stderr.readline().strip()
        announced = re.fullmatch(
            r"sluice sim: serving an OpenAI-compatible API at (http://127\.0\.0\.1:\d+/v1) "
            r"\(Ctrl-C to stop\)",
            line,
        )
        assert announced, line
        reply = talk(announced.group(1), lambda c: c.send("GET", "/models"))
        assert reply.status == 200
        assert reply.headers["x-ratelimit-limit-requests"] == "600"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr.read() == ""
