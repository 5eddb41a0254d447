"""Structured answers: response_format, parsing and local validation (pure)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.config import Endpoint
from pipeline.core.errors import ConfigError
from pipeline.prepare.schema_inline import inline_schema
from pipeline.protocol.answers import InvalidAnswer, parse_answer
from pipeline.protocol.structured import NotStructured, StructuredOutput, schema_name

LABELS = inline_schema("label: positive|negative|neutral, score: int, reason: str?")


def chat_body(content: str, finish_reason: str = "stop") -> bytes:
    message = {"role": "assistant", "content": content}
    choice = {"index": 0, "message": message, "finish_reason": finish_reason}
    usage = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    return orjson.dumps({"choices": [choice], "usage": usage})


def test_response_format_is_strict_json_schema_or_json_object() -> None:
    assert StructuredOutput(LABELS, "labels").response_format == {
        "type": "json_schema",
        "json_schema": {"name": "labels", "schema": LABELS, "strict": True},
    }
    assert StructuredOutput(None).response_format == {"type": "json_object"}


@given(
    label=st.sampled_from(["positive", "negative", "neutral"]),
    score=st.integers(-(2**53), 2**53),
    reason=st.one_of(st.none(), st.text()),
)
def test_every_answer_that_matches_the_schema_is_its_parsed_value(
    label: str, score: int, reason: str | None
) -> None:
    value = {"label": label, "score": score, "reason": reason}
    output, usage, reusable = parse_answer(
        Endpoint.CHAT, chat_body(orjson.dumps(value).decode()), StructuredOutput(LABELS)
    )
    assert output == value
    assert usage.total_tokens == 12
    assert reusable


FRACTIONS = st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x != int(x))


# JSON Schema counts 3.0 as an integer; a fraction, a string, a boolean or null is not one.
@given(score=st.one_of(st.text(), FRACTIONS, st.booleans(), st.none()))
def test_a_wrong_type_is_refused_naming_where(score: Any) -> None:
    value = {"label": "positive", "score": score, "reason": None}
    with pytest.raises(NotStructured, match=r"at \$\.score"):
        StructuredOutput(LABELS).check(orjson.dumps(value).decode())


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ('{"label": "positive", "score": 3}', "'reason' is a required property"),
        ('{"label": "great", "score": 3, "reason": null}', "'great' is not one of"),
        ('{"label": "positive", "score": 3, "reason": null, "x": 1}', "Additional properties"),
        ('["positive", 3]', "is not of type 'object'"),
        ("positive [sim:abc]", "answer is not JSON"),
    ],
)
def test_answers_that_do_not_match_say_why(answer: str, words: str) -> None:
    with pytest.raises(NotStructured, match=words):
        StructuredOutput(LABELS).check(answer)


def test_an_unusable_answer_keeps_its_text_and_its_billed_tokens() -> None:
    with pytest.raises(InvalidAnswer) as caught:
        parse_answer(Endpoint.CHAT, chat_body('{"label": "meh"}'), StructuredOutput(LABELS))
    assert caught.value.answer == '{"label": "meh"}'
    assert caught.value.usage.total_tokens == 12


def test_a_cut_off_answer_says_to_raise_max_tokens() -> None:
    with pytest.raises(InvalidAnswer, match="cut off at max_tokens"):
        parse_answer(Endpoint.CHAT, chat_body('{"label": "pos', "length"), StructuredOutput(None))


def test_a_refusal_is_reported_as_the_models_words() -> None:
    message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    body = orjson.dumps({"choices": [{"message": message, "finish_reason": "stop"}]})
    with pytest.raises(InvalidAnswer, match=r"the model refused: I can't help with that\."):
        parse_answer(Endpoint.CHAT, body, StructuredOutput(LABELS))


def test_json_mode_wants_an_object_and_reads_a_fenced_one() -> None:
    json_mode = StructuredOutput(None)
    assert json_mode.check('```json\n{"a": 1}\n```') == {"a": 1}
    with pytest.raises(NotStructured, match="not an object: an array"):
        json_mode.check("[1, 2]")


def test_an_invalid_json_schema_is_a_config_error_naming_where() -> None:
    with pytest.raises(ConfigError, match=r"not a valid JSON Schema \(at \$\.properties\.a"):
        StructuredOutput({"type": "object", "properties": {"a": {"type": "strin"}}})


@given(st.text())
def test_schema_names_are_what_the_api_accepts(text: str) -> None:
    name = schema_name(text)
    assert 1 <= len(name) <= 64
    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in name)


def test_an_integer_no_int64_column_can_hold_does_not_match() -> None:
    schema = inline_schema("n: int")
    assert StructuredOutput(schema).check('{"n": 9223372036854775807}') == {"n": 2**63 - 1}
    with pytest.raises(NotStructured, match=r"at \$\.n"):
        StructuredOutput(schema).check('{"n": 9223372036854775808}')


@pytest.mark.parametrize("ref", ["#/$defs/nope", "https://example.com/schema.json"])
def test_a_reference_that_cannot_be_resolved_ends_the_run_as_a_config_error(ref: str) -> None:
    structured = StructuredOutput({"type": "object", "properties": {"a": {"$ref": ref}}})
    with pytest.raises(ConfigError, match=r"\$ref that cannot be resolved"):
        structured.check('{"a": 1}')
