"""`sluice sim` in its own process, over real HTTP: structured outputs, streaming,
packed embeddings, per-model context lengths and strict model names."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from jsonschema import Draft202012Validator

from pipeline.simulator.answers import chat_content, content_digest, embedding
from tests.bench.harness import simulator
from tests.conftest import run_cli
from tests.integration.test_simulator import Client, Reply, chat_body, talk, user

LABEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string"},
        "flagged": {"type": "boolean"},
        "topics": {"type": "array", "items": {"$ref": "#/$defs/Topic"}},
        "note": {"type": ["string", "null"]},
        "source": {"anyOf": [{"$ref": "#/definitions/Source"}, {"type": "null"}]},
        "version": {"const": 1},
    },
    "required": ["label", "score", "confidence", "reason", "flagged", "topics", "note"],
    "additionalProperties": False,
    "$defs": {
        "Topic": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "weight": {"type": "number"}},
            "required": ["name", "weight"],
            "additionalProperties": False,
        }
    },
    "definitions": {"Source": {"type": "object", "properties": {"url": {"type": "string"}}}},
}
STRICT_FLAGS = (
    "--strict-models",
    "--models",
    "sim-chat,sim-embed",
    "--models",
    "sim-small",
    "--model-context",
    "sim-small=50",
)


def schema_format(schema: dict[str, Any], name: str = "review") -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def content(reply: Reply) -> str:
    assert reply.status == 200, reply.raw
    return str(reply.json["choices"][0]["message"]["content"])


def assert_valid(value: Any, schema: dict[str, Any]) -> None:
    Draft202012Validator(schema).validate(value)


def is_valid(value: Any, schema: dict[str, Any]) -> bool:
    return bool(Draft202012Validator(schema).is_valid(value))


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    """One `sluice sim` process with strict models, shared by the tests of this module.

    Tests use texts of their own, so per-item trigger counts never meet.
    """
    with simulator(*STRICT_FLAGS) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def slow_stream_url() -> Iterator[str]:
    with simulator("--stream-interval", "0.02") as base_url:
        yield base_url


async def post_stream(
    client: Client, body: dict[str, Any]
) -> tuple[int, str, list[dict[str, Any]], bool]:
    """Stream a request: its status, content type, decoded chunks, and whether [DONE] came."""
    async with client.session.post(
        client.base_url + "/chat/completions",
        json={**body, "stream": True},
        timeout=aiohttp.ClientTimeout(total=5),
    ) as response:
        raw = await response.read()
        content_type = response.headers["Content-Type"]
    events = [event for event in raw.split(b"\n\n") if event]
    assert all(event.startswith(b"data: ") for event in events), raw
    payloads = [event.removeprefix(b"data: ") for event in events]
    done = payloads[-1:] == [b"[DONE]"]
    chunks = [orjson.loads(payload) for payload in payloads if payload != b"[DONE]"]
    return response.status, content_type, chunks, done


def streamed_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        chunk["choices"][0]["delta"].get("content", "") for chunk in chunks if chunk["choices"]
    )


# Structured outputs.


def test_json_object_answers_a_json_object_with_the_usual_label(sim_url: str) -> None:
    response_format = {"type": "json_object"}
    reply = talk(sim_url, lambda c: c.chat("json please", response_format=response_format))
    answer = orjson.loads(content(reply))
    assert answer == orjson.loads(chat_content(user("json please"), response_format))
    assert answer["label"] == chat_content(user("json please")).split()[0]
    assert answer["sim"] == content_digest(user("json please"))[:10]


def test_json_schema_answers_validate_and_are_what_chat_content_predicts(sim_url: str) -> None:
    texts = [f"review {n}" for n in range(20)]
    response_format = schema_format(LABEL_SCHEMA)

    async def ask_all(client: Client) -> list[Reply]:
        return list(
            await asyncio.gather(
                *(client.chat(text, response_format=response_format) for text in texts)
            )
        )

    first, again = talk(sim_url, ask_all), talk(sim_url, ask_all)
    for text, reply, repeat in zip(texts, first, again, strict=True):
        answer = orjson.loads(content(reply))
        assert_valid(answer, LABEL_SCHEMA)
        assert content(reply) == chat_content(user(text), response_format) == content(repeat)
    labels = {orjson.loads(content(reply))["label"] for reply in first}
    assert len(labels) > 1  # the enum member depends on the item


def test_text_response_format_is_todays_answer(sim_url: str) -> None:
    reply = talk(sim_url, lambda c: c.chat("plain", response_format={"type": "text"}))
    assert content(reply) == chat_content(user("plain"))


@pytest.mark.parametrize(
    ("response_format", "words"),
    [
        ({"type": "xml"}, "Supported values are"),
        ({"type": "json_schema", "json_schema": {"schema": {}}}, "json_schema.name"),
        ({"type": "json_schema", "json_schema": {"name": "no spaces allowed"}}, "pattern"),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": "{}"}},
            "expected an object",
        ),
        (schema_format({"type": "object", "properties": {"n": {"type": "int"}}}), 'type "int"'),
        (schema_format({"type": "string", "pattern": "^[A-Z]{3}$"}), "cannot make a value"),
    ],
)
def test_a_bad_response_format_gets_400_naming_the_problem(
    sim_url: str, response_format: dict[str, Any], words: str
) -> None:
    reply = talk(sim_url, lambda c: c.chat("shaped", response_format=response_format))
    assert reply.status == 400
    assert reply.error["type"] == "invalid_request_error"
    assert reply.error["param"] == "response_format"
    assert words in reply.error["message"]


def test_a_small_max_tokens_cuts_the_json_with_finish_reason_length(sim_url: str) -> None:
    reply = talk(
        sim_url,
        lambda c: c.chat("cut me", max_tokens=3, response_format=schema_format(LABEL_SCHEMA)),
    )
    assert reply.json["choices"][0]["finish_reason"] == "length"
    assert reply.json["usage"]["completion_tokens"] == 3
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(content(reply))


def test_invalid_json_trigger_garbles_the_first_answer_then_answers_valid_json(
    sim_url: str,
) -> None:
    text = "bad json once [[sim:invalid_jsonx1]]"
    response_format = schema_format(LABEL_SCHEMA)

    async def twice(client: Client) -> list[Reply]:
        return [await client.chat(text, response_format=response_format) for _ in range(2)]

    garbled, good = talk(sim_url, twice)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(content(garbled))
    assert content(garbled) == chat_content(user(text), response_format, bent_by="invalid_json")
    assert_valid(orjson.loads(content(good)), LABEL_SCHEMA)


def test_schema_violation_trigger_answers_json_that_fails_the_schema(sim_url: str) -> None:
    text = "violate [[sim:schema_violation]]"
    response_format = schema_format(LABEL_SCHEMA)
    reply = talk(sim_url, lambda c: c.chat(text, response_format=response_format))
    answer = orjson.loads(content(reply))
    assert not is_valid(answer, LABEL_SCHEMA)
    assert "label" not in answer  # the first required property is the one missing
    assert content(reply) == chat_content(user(text), response_format, bent_by="schema_violation")


def test_content_triggers_leave_text_answers_alone(sim_url: str) -> None:
    text = "prose [[sim:invalid_json]]"
    reply = talk(sim_url, lambda c: c.chat(text))
    assert content(reply) == chat_content(user(text))


def test_stats_count_bent_answers(sim_url: str) -> None:
    async def bend(client: Client) -> Any:
        before = (await client.served_stats())["invalid_outputs"]
        await client.chat("count me [[sim:invalid_json]]", response_format={"type": "json_object"})
        return (await client.served_stats())["invalid_outputs"] - before

    assert talk(sim_url, bend) == 1


# Streaming.


def test_a_stream_carries_the_same_answer_as_server_sent_events(sim_url: str) -> None:
    response_format = schema_format(LABEL_SCHEMA)
    body = chat_body(
        "stream it", response_format=response_format, stream_options={"include_usage": True}
    )

    async def both(client: Client) -> tuple[Any, Reply]:
        streamed = await post_stream(client, body)
        return streamed, await client.chat("stream it", response_format=response_format)

    (status, content_type, chunks, done), plain = talk(sim_url, both)
    assert status == 200 and content_type.startswith("text/event-stream") and done
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len([chunk for chunk in chunks if chunk["choices"]]) > 3  # content in pieces
    assert streamed_text(chunks) == content(plain)
    assert_valid(orjson.loads(streamed_text(chunks)), LABEL_SCHEMA)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == plain.json["usage"]


def test_a_stream_without_include_usage_ends_with_the_finish_chunk(sim_url: str) -> None:
    status, _, chunks, done = talk(sim_url, lambda c: post_stream(c, chat_body("no usage")))
    assert status == 200 and done
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in chunk for chunk in chunks)
    assert streamed_text(chunks) == chat_content(user("no usage"))


def test_a_stream_is_cut_by_max_tokens_too(sim_url: str) -> None:
    _, _, chunks, _ = talk(sim_url, lambda c: post_stream(c, chat_body("short", max_tokens=1)))
    assert streamed_text(chunks) == chat_content(user("short"))[:4]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_a_stalled_stream_sends_its_first_chunks_then_nothing(sim_url: str) -> None:
    body = chat_body("stuck [[sim:stallx1]]", stream=True)

    async def stalled_then_whole(client: Client) -> tuple[list[bytes], Any]:
        received: list[bytes] = []
        async with client.session.post(
            client.base_url + "/chat/completions", json=body
        ) as response:
            assert response.status == 200
            while len(received) < 2:
                line = await response.content.readline()
                if line.strip():
                    received.append(line)
                    assert await response.content.readline() == b"\n"  # the event's end
            # A client's idle timeout is what notices a stall; the server sends no more.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(response.content.readline(), 0.3)
        return received, await post_stream(client, body)

    received, (status, _, chunks, done) = talk(sim_url, stalled_then_whole)
    first = orjson.loads(received[0].removeprefix(b"data: "))
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert status == 200 and done  # x1: the retry streams the whole answer
    assert streamed_text(chunks) == chat_content(user("stuck [[sim:stallx1]]"))
    stats = talk(sim_url, lambda c: c.served_stats())
    assert stats["stalled"] >= 1


def test_stream_interval_spaces_the_chunks(slow_stream_url: str) -> None:
    started = time.perf_counter()
    _, _, chunks, done = talk(slow_stream_url, lambda c: post_stream(c, chat_body("slowly")))
    assert done
    # Every event but the first waits the interval, so the stream lasts at least this long.
    assert time.perf_counter() - started >= 0.02 * len(chunks)


def test_embeddings_refuse_to_stream(sim_url: str) -> None:
    body = {"model": "sim-embed", "input": ["a"], "stream": True}
    reply = talk(sim_url, lambda c: c.send("POST", "/embeddings", body))
    assert reply.status == 400 and reply.error["param"] == "stream"


# Packed embeddings.


def test_packed_embeddings_answer_every_input_by_index(sim_url: str) -> None:
    texts = [f"packed text {n}" for n in range(40)]
    body = {"model": "sim-embed", "input": texts}
    reply = talk(sim_url, lambda c: c.send("POST", "/embeddings", body))
    assert reply.status == 200
    data = reply.json["data"]
    assert [item["index"] for item in data] == list(range(len(texts)))
    assert [item["embedding"] for item in data] == [embedding(text) for text in texts]
    assert reply.json["usage"]["prompt_tokens"] == sum(-(-len(text) // 4) for text in texts)


def test_one_poison_input_fails_the_packed_request_naming_it_so_halves_find_it(
    sim_url: str,
) -> None:
    texts = ["fine 0", "fine 1", "fine 2", "poison [[sim:400]]", "fine 4", "fine 5"]

    async def bisect(client: Client) -> list[Reply]:
        whole = await client.send("POST", "/embeddings", {"model": "sim-embed", "input": texts})
        halves = [
            await client.send("POST", "/embeddings", {"model": "sim-embed", "input": part})
            for part in (texts[:3], texts[3:])
        ]
        return [whole, *halves]

    whole, good_half, bad_half = talk(sim_url, bisect)
    assert whole.status == 400
    assert whole.error["param"] == "input[3]" and "input[3]" in whole.error["message"]
    assert good_half.status == 200 and len(good_half.json["data"]) == 3
    assert bad_half.status == 400 and bad_half.error["param"] == "input[0]"


def test_stats_count_each_packed_input(sim_url: str) -> None:
    async def send_twice(client: Client) -> Any:
        await client.send("POST", "/embeddings", {"model": "sim-embed", "input": ["p", "q"]})
        await client.send("POST", "/embeddings", {"model": "sim-embed", "input": ["q", "r"]})
        return await client.served_stats()

    counts = talk(sim_url, send_twice)["embedding_inputs_by_digest"]
    assert [counts.get(content_digest(text)) for text in "pqr"] == [1, 2, 1]


# Models and context lengths.


def test_strict_models_refuse_an_unknown_model_with_openais_404(sim_url: str) -> None:
    async def ask(client: Client) -> list[Reply]:
        return [
            await client.send("POST", "/chat/completions", {**chat_body("hi"), "model": "gpt-x"}),
            await client.send("POST", "/embeddings", {"model": "nope", "input": "a"}),
            await client.send(
                "POST", "/chat/completions", {**chat_body("hi"), "model": "sim-small"}
            ),
            await client.send("GET", "/models"),
        ]

    chat, embed, listed, models = talk(sim_url, ask)
    assert chat.status == embed.status == 404
    assert chat.json == {
        "error": {
            "message": "The model `gpt-x` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }
    assert embed.error["code"] == "model_not_found"
    assert listed.status == 200
    assert [model["id"] for model in models.json["data"]] == ["sim-chat", "sim-embed", "sim-small"]


def test_a_model_context_refuses_long_prompts_for_that_model_only(sim_url: str) -> None:
    long_text = "word " * 60

    async def ask(client: Client) -> list[Reply]:
        small = {**chat_body(long_text), "model": "sim-small"}
        packed = {"model": "sim-small", "input": ["short", long_text]}
        return [
            await client.send("POST", "/chat/completions", small),
            await client.chat(long_text),
            await client.send("POST", "/embeddings", packed),
        ]

    small, default, packed = talk(sim_url, ask)
    assert small.status == 400 and small.error["code"] == "context_length_exceeded"
    assert small.error["message"].startswith("This model's maximum context length is 50 tokens.")
    assert default.status == 200
    assert packed.status == 400 and packed.error["param"] == "input[1]"
    assert packed.error["code"] == "context_length_exceeded"


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--model-context", "sim-small"], "NAME=TOKENS"),
        (["--model-context", "sim-small=lots"], "NAME=TOKENS"),
        (["--model-context", "sim-small=0"], "at least 1"),
        (["--strict-models", "--model-context", "other=10"], "lacks"),
        (["--models", "a,,b"], "empty"),
        (["--stream-interval", "-1"], "stream-interval"),
    ],
)
def test_bad_shaping_options_are_usage_errors(flags: list[str], words: str) -> None:
    result = run_cli(["sim", "--port", "0", *flags])
    assert result.exit_code == 2
    assert words in result.output
    assert "Traceback" not in result.output
