"""The simulator's deterministic answers, token counts and request checks."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.simulator.answers import (
    chat_content,
    complete,
    content_digest,
    count_tokens,
    embedding,
    prompt_tokens,
)
from pipeline.simulator.request_parsing import (
    ChatRequest,
    EmbeddingRequest,
    InvalidRequest,
    check_context_length,
    parse_chat_request,
    parse_embedding_request,
    parse_json_body,
)

CONTENT = re.compile(r"^(positive|negative|neutral) \[sim:([0-9a-f]{10})\]$")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def chat(messages: list[dict[str, Any]], max_tokens: int | None = None) -> ChatRequest:
    return ChatRequest("m", messages, max_tokens, content_digest(messages))


def test_chat_content_is_a_label_tagged_with_the_digest_of_the_messages() -> None:
    messages = user("I loved it")
    match = CONTENT.match(chat_content(messages))
    assert match is not None
    assert match.group(2) == content_digest(messages)[:10]
    canonical = orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)
    assert match.group(2) == hashlib.sha256(canonical).hexdigest()[:10]


def test_chat_content_ignores_key_order_but_not_content() -> None:
    forwards = [{"role": "user", "content": "a"}]
    backwards = [{"content": "a", "role": "user"}]
    assert chat_content(forwards) == chat_content(backwards)
    assert chat_content(user("a")) != chat_content(user("b"))


def test_every_label_occurs() -> None:
    labels = {chat_content(user(f"item {i}")).split()[0] for i in range(60)}
    assert labels == {"positive", "negative", "neutral"}


@given(st.text(max_size=200), st.integers(1, 100))
def test_embedding_is_deterministic_and_unit_length(text: str, dimensions: int) -> None:
    vector = embedding(text, dimensions)
    assert len(vector) == dimensions
    assert vector == embedding(text, dimensions)
    assert math.fsum(value * value for value in vector) == pytest.approx(1.0)


def test_embedding_defaults_to_8_dimensions_and_depends_on_the_text() -> None:
    assert len(embedding("a")) == 8
    assert embedding("a") != embedding("b")
    with pytest.raises(ValueError):
        embedding("a", 0)


@given(st.text(max_size=500))
def test_count_tokens_is_a_quarter_of_the_characters_rounded_up(text: str) -> None:
    assert count_tokens(text) == max(1, math.ceil(len(text) / 4))


def test_prompt_tokens_add_three_per_message_and_read_content_parts() -> None:
    messages = [
        {"role": "system", "content": "12345678"},
        {"role": "user", "content": [{"type": "text", "text": "1234"}, {"type": "image_url"}]},
        {"role": "assistant", "content": None},
    ]
    assert prompt_tokens(messages) == (2 + 3) + (1 + 3) + (1 + 3)


def test_completion_stops_naturally_without_max_tokens() -> None:
    request = chat(user("hello"))
    completion = complete(request)
    assert completion.content == chat_content(request.messages)
    assert completion.finish_reason == "stop"
    assert completion.prompt_tokens == count_tokens("hello") + 3
    assert completion.completion_tokens == count_tokens(completion.content)


def test_completion_is_cut_to_max_tokens_with_finish_reason_length() -> None:
    completion = complete(chat(user("hello"), max_tokens=2))
    assert completion.finish_reason == "length"
    assert completion.content == chat_content(user("hello"))[:8]
    assert completion.completion_tokens == 2
    assert complete(chat(user("hello"), max_tokens=100)).finish_reason == "stop"


def test_parse_chat_request_accepts_an_openai_body() -> None:
    body = {"model": "gpt-4o-mini", "messages": user("hi"), "max_completion_tokens": 5}
    request = parse_chat_request(body)
    assert (request.model, request.max_tokens) == ("gpt-4o-mini", 5)
    assert request.digest == content_digest(user("hi"))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"messages": user("hi")}, "model"),
        ({"model": "", "messages": user("hi")}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m", "messages": [{"content": "hi"}]}, "messages[0]"),
        ({"model": "m", "messages": user("hi"), "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "messages": user("hi"), "max_tokens": True}, "max_tokens"),
        ({"model": "m", "messages": user("hi"), "max_tokens": "5"}, "max_tokens"),
        ({"model": "m", "messages": user("hi"), "stream": "yes"}, "stream"),
    ],
)
def test_parse_chat_request_names_what_is_wrong(body: Any, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_chat_request(body)
    assert refused.value.param == param


def test_deeply_nested_messages_are_refused_not_crashed_on() -> None:
    nested: Any = "x"
    for _ in range(400):
        nested = [nested]
    with pytest.raises(InvalidRequest):
        parse_chat_request({"model": "m", "messages": [{"role": "user", "content": nested}]})


@given(json_values)
def test_any_json_chat_body_is_either_a_request_or_refused(body: Any) -> None:
    try:
        request = parse_chat_request(body)
    except InvalidRequest:
        return
    assert complete(request).content


@given(json_values)
def test_any_json_embedding_body_is_either_a_request_or_refused(body: Any) -> None:
    try:
        request = parse_embedding_request(body)
    except InvalidRequest:
        return
    assert isinstance(request, EmbeddingRequest)


@given(st.binary(max_size=100))
def test_any_bytes_parse_as_json_or_are_refused(raw: bytes) -> None:
    try:
        parse_json_body(raw)
    except InvalidRequest as refused:
        assert "JSON" in refused.message


def test_parse_embedding_request_takes_a_string_or_a_list() -> None:
    single = parse_embedding_request({"model": "e", "input": "a"})
    many = parse_embedding_request({"model": "e", "input": ["a", "b"], "dimensions": 3})
    assert single.texts == ["a"]
    assert (many.texts, many.dimensions) == (["a", "b"], 3)
    assert many.digest == content_digest(["a", "b"])


@pytest.mark.parametrize(
    "extra",
    [{"input": ""}, {"input": []}, {"input": [1, 2]}, {"input": ["a", ""]}, {"dimensions": 0}],
)
def test_parse_embedding_request_refuses_bad_input(extra: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        parse_embedding_request({"model": "e", "input": "a"} | extra)


def test_context_length_is_refused_in_openai_words() -> None:
    check_context_length(prompt=100, completion=28, limit=128)
    with pytest.raises(InvalidRequest) as refused:
        check_context_length(prompt=100, completion=29, limit=128)
    assert refused.value.code == "context_length_exceeded"
    assert refused.value.message.startswith("This model's maximum context length is 128 tokens.")
