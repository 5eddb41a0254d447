import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.cache.keys import CacheKeys, FilledKeys, cache_key
from pipeline.core.config import Endpoint, RequestConfig
from pipeline.core.errors import UsageError
from pipeline.core.models import Item
from pipeline.prepare.request_builder import (
    InvalidItem,
    Request,
    RequestBuilder,
    Unbuilt,
    as_sent,
)
from pipeline.protocol.answers import InvalidAnswer, parse_answer
from pipeline.protocol.batch_lines import is_batch_line


def _item(row: dict) -> Item:
    return Item(0, "in.jsonl", 1, row, 0)


def test_chat_body_has_system_user_and_every_option() -> None:
    config = RequestConfig(
        endpoint=Endpoint.CHAT,
        model="m",
        prompt="Review: {{ text }}",
        system="Classify {{ product }}.",
        max_tokens=5,
        temperature=0.0,
        body_options={"seed": 7},
    )
    request = RequestBuilder(config).build(_item({"text": "great", "product": "kettle"}))
    assert request.path == "/chat/completions"
    assert request.body == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Classify kettle."},
            {"role": "user", "content": "Review: great"},
        ],
        "max_tokens": 5,
        "temperature": 0.0,
        "seed": 7,
    }
    assert orjson.loads(request.payload) == request.body


def test_missing_field_makes_the_item_invalid() -> None:
    builder = RequestBuilder(RequestConfig(Endpoint.CHAT, model="m", prompt="{{ text }}"))
    with pytest.raises(InvalidItem, match="'text' is undefined"):
        builder.build(_item({"body": "x"}))


def test_embeddings_take_the_input_field() -> None:
    builder = RequestBuilder(RequestConfig(Endpoint.EMBEDDINGS, model="e", input_field="doc"))
    assert builder.build(_item({"doc": "hello"})).body == {"model": "e", "input": "hello"}
    with pytest.raises(InvalidItem, match="no 'doc' field"):
        builder.build(_item({"text": "hello"}))


def test_batch_lines_are_detected_and_sent_as_they_are() -> None:
    builder = RequestBuilder(RequestConfig(endpoint=None))
    line = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "e", "input": "x"},
    }
    request = builder.build(_item(line))
    assert builder.endpoint is Endpoint.RAW
    assert request.path == "/embeddings" and request.body == line["body"]


@given(keys=st.sets(st.sampled_from(["custom_id", "url", "body", "method", "text", "id"])))
def test_a_batch_line_is_one_with_custom_id_url_and_body_whatever_else(keys: set[str]) -> None:
    row = dict.fromkeys(keys, "x")
    assert is_batch_line(row) == ({"custom_id", "url", "body"} <= keys)
    assert is_batch_line(sorted(keys)) == is_batch_line(row)  # a schema's column names


def test_batch_lines_cannot_choose_other_endpoints() -> None:
    builder = RequestBuilder(RequestConfig(endpoint=Endpoint.RAW))
    line = {"custom_id": "a", "method": "POST", "url": "https://evil.example/v1/x", "body": {}}
    with pytest.raises(InvalidItem, match="must be POST to one of"):
        builder.build(_item(line))


def test_chat_without_a_model_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--model is required"):
        RequestBuilder(RequestConfig(endpoint=None)).build(_item({"text": "x"}))


def test_answers_are_read_or_rejected() -> None:
    chat = orjson.dumps(
        {
            "choices": [{"message": {"content": "ok"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        }
    )
    output, usage, _ = parse_answer(Endpoint.CHAT, chat)
    assert output == "ok" and usage.total_tokens == 4
    vectors = b'{"data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}]}'
    assert parse_answer(Endpoint.EMBEDDINGS, vectors)[0] == [[1.0], [2.0]]
    for bad in (b"{not json", b"[]", b'{"choices": []}', b'{"choices": [{"message": {}}]}'):
        with pytest.raises(InvalidAnswer):
            parse_answer(Endpoint.CHAT, bad)


def test_a_schema_becomes_response_format_and_travels_with_the_request() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    config = RequestConfig(Endpoint.CHAT, "m", "{{ text }}", schema=schema, schema_name="labels")
    request = RequestBuilder(config).build(_item({"text": "hi"}))
    assert request.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "labels", "schema": schema, "strict": True},
    }
    assert request.structured is not None
    json_mode = RequestConfig(Endpoint.CHAT, "m", "{{ text }}", json_output=True)
    plain = RequestBuilder(json_mode).build(_item({"text": "hi"}))
    assert plain.body["response_format"] == {"type": "json_object"}


def test_a_schema_for_embeddings_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="embeddings are vectors"):
        RequestBuilder(RequestConfig(Endpoint.EMBEDDINGS, "m", json_output=True))


@given(text=st.text(max_size=80), limit=st.integers(1, 40))
def test_truncate_cuts_what_the_template_sees_never_the_item(text: str, limit: int) -> None:
    config = RequestConfig(Endpoint.CHAT, "m", "<{{ text }}>", truncate=(("text", limit),))
    row = {"text": text, "n": 1}
    request = RequestBuilder(config).build(_item(row))
    assert request.body["messages"][0]["content"] == f"<{text[:limit]}>"
    assert row == {"text": text, "n": 1}


def test_a_prompt_over_max_input_tokens_is_an_invalid_item() -> None:
    config = RequestConfig(Endpoint.CHAT, "m", "{{ text }}", max_input_tokens=10)
    builder = RequestBuilder(config)
    assert builder.build(_item({"text": "a" * 24})).body  # 6 tokens + 4 for the message
    with pytest.raises(InvalidItem, match="about 11 tokens, over --max-input-tokens 10"):
        builder.build(_item({"text": "a" * 25}))


def test_where_selects_and_an_unevaluable_item_is_invalid() -> None:
    builder = RequestBuilder(RequestConfig(Endpoint.CHAT, "m", "{{ text }}", where="n > 2"))
    assert builder.wanted(_item({"n": 3}))
    assert not builder.wanted(_item({"n": 2}))
    assert not builder.wanted(_item({}))  # missing is null: no ordering holds
    with pytest.raises(InvalidItem, match="--where, column"):
        builder.wanted(_item({"n": "three"}))


texts = st.text(max_size=30)


@given(
    system=st.none() | st.just("Be {{ tone }}."),
    prompt=st.none() | st.just("Review: {{ text }}") | st.just("{{ text | upper }}"),
    json_output=st.booleans(),
    temperature=st.none() | st.floats(0, 2),
    body_options=st.dictionaries(st.sampled_from(["seed", "user", "top_p"]), texts, max_size=2),
    row=st.fixed_dictionaries({"text": texts, "tone": texts}),
)
def test_a_chat_item_prepared_unbuilt_is_the_request_and_key_of_its_built_self(
    system: str | None,
    prompt: str | None,
    json_output: bool,
    temperature: float | None,
    body_options: dict[str, str],
    row: dict[str, str],
) -> None:
    config = RequestConfig(
        Endpoint.CHAT, "m", prompt, system, temperature=temperature,
        body_options=body_options, json_output=json_output,
    )  # fmt: skip
    builder = RequestBuilder(config)
    prepared = builder.prepare(_item(row))
    built = builder.build(_item(row))
    assert isinstance(prepared, Unbuilt)
    assert prepared.build() == built == as_sent(prepared)
    assert (prepared.endpoint, prepared.structured, prepared.model) == (
        built.endpoint, built.structured, built.model,
    )  # fmt: skip
    form, base_url = prepared.form, "http://127.0.0.1:8000/v1"
    keys = FilledKeys(CacheKeys(base_url), form.path, form.body, form.text_count)
    assert keys.from_texts
    assert keys.key(prepared.texts) == cache_key(base_url, built.path, built.body)


def test_requests_whose_whole_body_is_checked_or_not_chat_are_prepared_built() -> None:
    limited = RequestBuilder(RequestConfig(Endpoint.CHAT, "m", "{{ text }}", max_input_tokens=99))
    embeddings = RequestBuilder(RequestConfig(Endpoint.EMBEDDINGS, "e"))
    batch_lines = RequestBuilder(RequestConfig(endpoint=None))
    line = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m"},
    }
    for builder, row in [
        (limited, {"text": "hi"}),
        (embeddings, {"text": "hi"}),
        (batch_lines, line),
    ]:
        prepared = builder.prepare(_item(row))
        assert isinstance(prepared, Request) and prepared == builder.build(_item(row))


def test_an_item_that_cannot_fill_the_template_is_invalid_when_prepared_too() -> None:
    builder = RequestBuilder(RequestConfig(Endpoint.CHAT, model="m", prompt="{{ text }}"))
    with pytest.raises(InvalidItem, match="'text' is undefined"):
        builder.prepare(_item({"body": "x"}))
