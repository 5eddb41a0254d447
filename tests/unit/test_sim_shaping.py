"""The simulator's request shaping, pure parts: response_format checks, values made from
schemas, bent answers, stream chunks, per-input triggers, models and context lengths."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from pipeline.simulator.answer_shape import (
    TEXT_FORMAT,
    ResponseFormat,
    is_made_exactly,
    parse_response_format,
    schema_problem,
    stream_settings,
    validation_error,
)
from pipeline.simulator.answers import (
    Completion,
    answer_content,
    chat_content,
    complete,
    content_digest,
    content_pieces,
    count_tokens,
    cut_json,
    stream_chunks,
    stream_events,
)
from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.faults import (
    Fault,
    InvalidRequest,
    Trigger,
    find_input_trigger,
    find_trigger,
)
from pipeline.simulator.request_parsing import (
    ChatRequest,
    check_input_lengths,
    check_model,
    parse_chat_request,
    parse_embedding_request,
)
from pipeline.simulator.schema_values import UnsatisfiableSchema, value_for_schema, violating_value

digests = st.binary(min_size=1, max_size=16).map(lambda raw: hashlib.sha256(raw).hexdigest())
TEXT = "positive [sim:0123456789]"
json_scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
names = st.text("abcdefgh_", min_size=1, max_size=6)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def schema_format(schema: dict[str, Any], name: str = "answer") -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def is_valid(value: Any, schema: dict[str, Any]) -> bool:
    checker = Draft202012Validator.FORMAT_CHECKER
    return bool(Draft202012Validator(schema, format_checker=checker).is_valid(value))


# Schemas a generator must satisfy: every shape the brief names, nested.


@st.composite
def integer_schemas(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    low = draw(st.none() | st.integers(-(10**6), 10**6))
    span = draw(st.integers(2, 1000))
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if draw(st.booleans()):
        high = (low if low is not None else 0) + span
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = high
    return schema


@st.composite
def number_schemas(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number"}
    low = draw(st.none() | st.floats(-1e6, 1e6))
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if draw(st.booleans()):
        base = low if low is not None else 0.0
        high = base + draw(st.floats(0.5, 1e4))
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = high
    return schema


@st.composite
def string_schemas(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["plain", "enum", "lengths", "format"]))
    if kind == "enum":
        return {
            "type": "string",
            "enum": draw(st.lists(st.text(max_size=8), min_size=1, unique=True)),
        }
    if kind == "lengths":
        shortest = draw(st.integers(0, 40))
        return {
            "type": "string",
            "minLength": shortest,
            "maxLength": shortest + draw(st.integers(0, 40)),
        }
    if kind == "format":
        formats = ["date-time", "date", "time", "email", "uuid", "uri", "ipv4", "hostname"]
        return {"type": "string", "format": draw(st.sampled_from(formats))}
    return {"type": "string"}


leaf_schemas = (
    string_schemas()
    | integer_schemas()
    | number_schemas()
    | st.just({"type": "boolean"})
    | st.just({"type": "null"})
    | json_values.map(lambda value: {"const": value})
    | st.just({})
)


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if schema.get("type") == "null":
        return schema
    if isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


@st.composite
def object_schemas(draw: st.DrawFn, children: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    properties = draw(st.dictionaries(names, children, max_size=4))
    required = [name for name in properties if draw(st.booleans())]
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if draw(st.booleans()):
        schema["additionalProperties"] = False
    return schema


@st.composite
def array_schemas(draw: st.DrawFn, children: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": draw(children)}
    if draw(st.booleans()):
        fewest = draw(st.integers(0, 3))
        schema |= {"minItems": fewest, "maxItems": fewest + draw(st.integers(0, 3))}
    return schema


schemas = st.recursive(
    leaf_schemas,
    lambda children: (
        object_schemas(children)
        | array_schemas(children)
        | children.map(nullable)
        | st.tuples(children, children).map(lambda pair: {"anyOf": list(pair)})
    ),
    max_leaves=12,
)


@st.composite
def schemas_with_references(draw: st.DrawFn) -> dict[str, Any]:
    """A root object whose properties refer to `$defs` and `definitions`."""
    shared, legacy = draw(schemas), draw(schemas)
    return {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/Shared"}, "b": {"$ref": "#/definitions/Legacy"}},
        "required": ["a", "b"],
        "$defs": {"Shared": shared},
        "definitions": {"Legacy": legacy},
    }


# Values made from schemas.


@given(schemas | schemas_with_references(), digests)
def test_a_value_made_from_a_schema_always_validates_against_it(
    schema: dict[str, Any], digest: str
) -> None:
    assert schema_problem(schema) is None
    value = value_for_schema(schema, digest, TEXT)
    assert is_valid(value, schema), (schema, value)
    assert value == value_for_schema(schema, digest, TEXT)


@given(schemas | schemas_with_references())
def test_schemas_of_honoured_keywords_skip_the_per_answer_check(schema: dict[str, Any]) -> None:
    # The property above then proves the generator right without jsonschema's help.
    assert is_made_exactly(schema)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": "^a"},
        {"type": "array", "uniqueItems": True},
        {"type": "string", "enum": ["a", 1]},
        {"type": "object", "anyOf": [{"type": "object"}]},
        {"$ref": "#/$defs/A", "type": "object", "$defs": {"A": {}}},
        {"type": "object", "required": ["x"], "additionalProperties": False},
        {"type": "integer", "minimum": 5, "maximum": 3},
        {"type": "number", "exclusiveMinimum": 1, "maximum": 1},
        {"type": "array", "items": False, "minItems": 1},
        {"type": "number", "maximum": 1e300},
    ],
)
def test_schemas_the_generator_may_get_wrong_have_each_answer_checked(
    schema: dict[str, Any],
) -> None:
    assert not is_made_exactly(schema)
    try:
        value = value_for_schema(schema, "ab" * 32, TEXT)
    except UnsatisfiableSchema:
        return
    assert is_valid(value, schema)


@given(object_schemas(schemas), digests)
def test_an_object_gets_every_property_nested(schema: dict[str, Any], digest: str) -> None:
    value = value_for_schema(schema, digest, TEXT)
    assert list(value) == list(schema["properties"])


@given(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=6, unique=True))
def test_an_enum_member_is_chosen_by_the_digest(members: list[str]) -> None:
    schema = {"type": "string", "enum": members}
    chosen = {value_for_schema(schema, content_digest(n), TEXT) for n in range(60)}
    assert chosen <= set(members)
    assert len(chosen) == min(len(members), len(chosen)) and (len(members) == 1 or len(chosen) > 1)


def test_a_free_string_is_the_labelled_text_and_bounds_are_kept() -> None:
    schema = {
        "type": "object",
        "properties": {
            "reason": {"type": "string"},
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "share": {"type": "number", "minimum": 0, "maximum": 1},
            "tags": {"type": "array", "items": {"type": "string"}},
            "note": {"type": ["string", "null"]},
            "kind": {"anyOf": [{"type": "boolean"}, {"type": "string"}]},
            "version": {"const": 2},
        },
    }
    value = value_for_schema(schema, "ab" * 32, TEXT)
    assert value["reason"] == TEXT and value["note"] == TEXT
    assert 1 <= value["score"] <= 5 and 0 <= value["share"] <= 1
    assert 1 <= len(value["tags"]) <= 3 and isinstance(value["kind"], bool)
    assert value["version"] == 2


def test_a_recursive_schema_is_wound_down_to_a_finite_value() -> None:
    tree = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#"}},
        },
        "required": ["name", "children"],
    }
    value = value_for_schema(tree, "cd" * 32, TEXT)
    assert is_valid(value, tree)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": "^[A-Z]{3}$"},
        {"type": "integer", "minimum": 5, "maximum": 3},
        {"type": "number", "exclusiveMinimum": 1, "exclusiveMaximum": 1},
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}},
        {"type": "object", "properties": {"a": {"$ref": "https://example.com/schema"}}},
        {"type": "object", "properties": {"a": {"not": {}}}},
        {"type": "array", "items": {"enum": [1]}, "minItems": 2, "uniqueItems": True},
        {"type": "object", "properties": {"a": False}, "required": ["a"]},
    ],
)
def test_a_schema_the_generator_cannot_satisfy_is_refused_not_answered_wrongly(
    schema: dict[str, Any],
) -> None:
    with pytest.raises(UnsatisfiableSchema) as refused:
        value_for_schema(schema, "ab" * 32, TEXT)
    assert refused.value.message


@given(
    st.dictionaries(
        st.sampled_from(
            ["type", "properties", "items", "enum", "minimum", "required", "$ref", "anyOf"]
        ),
        json_values,
        max_size=4,
    ),
    digests,
)
def test_any_schema_is_refused_unsatisfiable_or_answered_validly(
    schema: dict[str, Any], digest: str
) -> None:
    if schema_problem(schema) is not None:
        return
    try:
        value = value_for_schema(schema, digest, TEXT)
    except UnsatisfiableSchema:
        return
    assert validation_error(value, schema) is None


# Bent answers.


@given(schemas, digests)
def test_a_violating_value_fails_its_schema(schema: dict[str, Any], digest: str) -> None:
    value = value_for_schema(schema, digest, TEXT)
    bent = violating_value(value, schema)
    if bent is not None:
        assert not is_valid(bent, schema)


@given(object_schemas(schemas), digests)
def test_an_object_with_a_required_property_can_always_be_violated(
    schema: dict[str, Any], digest: str
) -> None:
    assume(schema["required"])
    value = value_for_schema(schema, digest, TEXT)
    assert violating_value(value, schema) is not None


def test_a_violation_drops_the_first_required_property() -> None:
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string"}, "score": {"type": "integer"}},
        "required": ["label", "score"],
    }
    value = value_for_schema(schema, "ab" * 32, TEXT)
    assert violating_value(value, schema) == {"score": value["score"]}


def test_a_schema_that_accepts_everything_cannot_be_violated() -> None:
    assert violating_value("anything", {}) is None


@given(json_values)
def test_cut_json_never_parses(value: Any) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(cut_json(orjson.dumps(value).decode()))


@given(digests)
def test_json_object_answers_carry_the_usual_label_and_bend_on_request(digest: str) -> None:
    answer = orjson.loads(answer_content(digest, "json_object"))
    label, tag = answer_content(digest).split()
    assert answer == {"label": label, "sim": tag.removeprefix("[sim:").removesuffix("]")}
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(answer_content(digest, "json_object", fault=Fault.INVALID_JSON))
    assert not isinstance(
        orjson.loads(answer_content(digest, "json_object", fault=Fault.SCHEMA_VIOLATION)), dict
    )


def test_text_answers_are_not_bent() -> None:
    digest = content_digest(user("x"))
    assert answer_content(digest, "text", None, Fault.INVALID_JSON) == answer_content(digest)


def test_chat_content_gives_what_the_simulator_answers_for_a_response_format() -> None:
    schema = {
        "type": "object",
        "properties": {"label": {"enum": ["a", "b"]}},
        "required": ["label"],
    }
    messages = user("hello")
    expected = chat_content(messages, schema_format(schema))
    request = parse_chat_request(
        {"model": "m", "messages": messages, "response_format": schema_format(schema)}
    )
    assert complete(request).content == expected
    assert orjson.loads(expected)["label"] in ("a", "b")
    bent = chat_content(messages, schema_format(schema), bent_by="schema_violation")
    assert orjson.loads(bent) == {}
    assert chat_content(messages, {"type": "text"}) == chat_content(messages)


def test_max_tokens_cuts_a_json_answer_to_invalid_json() -> None:
    messages = user("hello")
    request = ChatRequest("m", messages, 2, content_digest(messages), ResponseFormat("json_object"))
    completion = complete(request)
    assert completion.finish_reason == "length" and completion.completion_tokens == 2
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(completion.content)


# response_format and stream checks.


@given(json_values)
def test_any_response_format_is_parsed_or_refused_naming_response_format(value: Any) -> None:
    try:
        parsed = parse_response_format(value)
    except InvalidRequest as refused:
        assert refused.param == "response_format" and refused.status == 400
        return
    assert parsed.kind in ("text", "json_object", "json_schema")


@pytest.mark.parametrize(
    ("response_format", "words"),
    [
        ("json", "expected an object"),
        ({}, "response_format.type"),
        ({"type": "xml"}, "Supported values are"),
        ({"type": "json_schema"}, "response_format.json_schema"),
        ({"type": "json_schema", "json_schema": {"schema": {}}}, "json_schema.name"),
        ({"type": "json_schema", "json_schema": {"name": "has space"}}, "does not match"),
        ({"type": "json_schema", "json_schema": {"name": "x" * 65}}, "does not match"),
        ({"type": "json_schema", "json_schema": {"name": 7}}, "does not match"),
        ({"type": "json_schema", "json_schema": {"name": "a", "schema": []}}, "json_schema.schema"),
        ({"type": "json_schema", "json_schema": {"name": "a", "strict": "yes"}}, "strict"),
        (schema_format({"type": "object", "properties": {"n": {"type": "intger"}}}), "'n'"),
        (schema_format({"type": "object", "properties": {"n": {"type": "intger"}}}), "intger"),
        (schema_format({"type": ["string", "text"]}), 'type "text" is not one of'),
        (schema_format({"type": "string", "minLength": "3"}), "minLength"),
        (schema_format({"$schema": 3}), "$schema"),
    ],
)
def test_a_bad_response_format_is_refused_naming_the_problem(
    response_format: Any, words: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_response_format(response_format)
    assert refused.value.param == "response_format"
    assert words in refused.value.message


def test_good_response_formats_are_read() -> None:
    assert parse_response_format(None) is TEXT_FORMAT
    assert parse_response_format({"type": "text"}).kind == "text"
    assert parse_response_format({"type": "json_object"}) == ResponseFormat("json_object")
    schema = {"type": "object", "$defs": {}}
    parsed = parse_response_format(schema_format(schema, "Labels_v-2"))
    assert parsed == ResponseFormat("json_schema", schema, "Labels_v-2")
    no_schema = parse_response_format({"type": "json_schema", "json_schema": {"name": "n"}})
    assert no_schema.schema is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, (False, False)),
        ({"stream": False}, (False, False)),
        ({"stream": True}, (True, False)),
        ({"stream": True, "stream_options": {"include_usage": True}}, (True, True)),
    ],
)
def test_stream_settings_are_read(body: dict[str, Any], expected: tuple[bool, bool]) -> None:
    assert stream_settings(body) == expected


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"stream": "yes"}, "stream"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"stream": True, "stream_options": []}, "stream_options"),
        ({"stream": True, "stream_options": {"include_usage": 1}}, "stream_options"),
    ],
)
def test_bad_stream_settings_are_refused(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        stream_settings(body)
    assert refused.value.param == param


def test_embeddings_refuse_stream() -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_embedding_request({"model": "e", "input": "a", "stream": True})
    assert refused.value.param == "stream"
    assert parse_embedding_request({"model": "e", "input": "a", "stream": False}).texts == ["a"]


# Stream chunks.


@given(st.text(min_size=1, max_size=200), st.integers(1, 10))
def test_content_pieces_rebuild_the_content(content: str, size: int) -> None:
    pieces = content_pieces(content, size)
    assert "".join(pieces) == content
    assert all(1 <= len(piece) <= size for piece in pieces)
    assert len(pieces) == -(-len(content) // size)


@given(st.text(min_size=1, max_size=100), st.sampled_from(["stop", "length"]), st.booleans())
def test_stream_chunks_carry_the_answer_as_openai_streams_it(
    content: str, finish_reason: str, include_usage: bool
) -> None:
    completion = Completion(content, finish_reason, 7, count_tokens(content), "d")
    chunks = stream_chunks("chatcmpl-x", 1, "m", completion, include_usage)
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert {chunk["id"] for chunk in chunks} == {"chatcmpl-x"}
    with_choices = [chunk for chunk in chunks if chunk["choices"]]
    deltas = [chunk["choices"][0]["delta"] for chunk in with_choices]
    assert deltas[0]["role"] == "assistant"
    assert "".join(delta.get("content", "") for delta in deltas) == content
    reasons = [chunk["choices"][0]["finish_reason"] for chunk in with_choices]
    assert reasons == [None] * (len(reasons) - 1) + [finish_reason]
    assert len(with_choices) >= 3  # role, the content in pieces, the finish
    if include_usage:
        assert chunks[-1]["choices"] == []
        assert chunks[-1]["usage"]["completion_tokens"] == count_tokens(content)
    else:
        assert len(with_choices) == len(chunks) and "usage" not in chunks[-1]


def test_stream_events_are_sse_data_lines_ending_with_done() -> None:
    completion = Completion("positive", "stop", 1, 2, "d")
    events = stream_events("c", 1, "m", completion, include_usage=False)
    assert events[-1] == b"data: [DONE]\n\n"
    for event in events[:-1]:
        assert event.startswith(b"data: {") and event.endswith(b"}\n\n")
        orjson.loads(event.removeprefix(b"data: "))


# Triggers, models and context lengths.


@pytest.mark.parametrize(
    ("text", "trigger"),
    [
        ("[[sim:invalid_json]]", Trigger(Fault.INVALID_JSON, None)),
        ("x [[sim:invalid_jsonx1]]", Trigger(Fault.INVALID_JSON, 1)),
        ("[[sim:schema_violationx2]]", Trigger(Fault.SCHEMA_VIOLATION, 2)),
        ("[[sim:stall]]", Trigger(Fault.STALL, None)),
        ("[[sim:stallx1]]", Trigger(Fault.STALL, 1)),
    ],
)
def test_the_shaping_triggers_are_found(text: str, trigger: Trigger) -> None:
    assert find_trigger(text) == trigger


def test_a_packed_request_names_the_input_holding_the_first_trigger() -> None:
    assert find_input_trigger(["a", "b"]) is None
    found = find_input_trigger(["a", "b [[sim:400]]", "c [[sim:500]]"])
    assert found == (1, Trigger(Fault.INVALID, None))


def test_an_embeddings_input_over_the_context_is_named() -> None:
    check_input_lengths([10, 20], limit=20)
    with pytest.raises(InvalidRequest) as refused:
        check_input_lengths([10, 21, 30], limit=20)
    assert refused.value.param == "input[1]"
    assert refused.value.code == "context_length_exceeded"
    assert "input[1]" in refused.value.message


def test_unknown_models_are_refused_only_when_models_are_strict() -> None:
    check_model("anything", None)
    check_model("sim-chat", ("sim-chat",))
    with pytest.raises(InvalidRequest) as refused:
        check_model("gpt-x", ("sim-chat",))
    assert refused.value.status == 404 and refused.value.code == "model_not_found"
    assert refused.value.param is None
    assert refused.value.message == (
        "The model `gpt-x` does not exist or you do not have access to it."
    )


def test_a_model_context_overrides_the_context_length() -> None:
    config = SimulatorConfig(context_length=1000, model_context_lengths={"small": 10})
    assert config.context_length_for("small") == 10
    assert config.context_length_for("other") == 1000


@pytest.mark.parametrize(
    "options",
    [
        {"model_context_lengths": {"small": 0}},
        {"stream_interval": -1.0},
        {"strict_models": True, "model_context_lengths": {"unlisted": 10}},
    ],
)
def test_config_refuses_shaping_settings_that_cannot_be_served(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(**options)
