import orjson
import pytest

from pipeline.core.config import Endpoint, RequestConfig
from pipeline.core.errors import UsageError
from pipeline.core.models import Item
from pipeline.prepare.request_builder import InvalidItem, RequestBuilder
from pipeline.protocol.answers import InvalidAnswer, parse_answer


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
