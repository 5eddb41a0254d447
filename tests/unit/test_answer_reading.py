"""A chat answer read from whatever JSON a server sends: an output and whether it may be
served again, or InvalidAnswer; never another exception."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.config import Endpoint
from pipeline.protocol.answers import UNREUSABLE_FINISH_REASONS, InvalidAnswer, parse_answer

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=4,
)
texts = st.text(alphabet=" \t\n\u00a0\u2003ab", max_size=4)
finish_reasons = st.sampled_from(["stop", "length", "content_filter", "tool_calls"]) | json_values


def _answer(content: Any, finish_reason: Any) -> bytes:
    choice = {"message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
    return orjson.dumps({"choices": [choice], "usage": {"prompt_tokens": 1}})


@given(texts, finish_reasons)
def test_a_text_answer_is_reusable_when_finished_and_not_blank(text: str, reason: Any) -> None:
    answer = parse_answer(Endpoint.CHAT, _answer(text, reason))
    assert answer.output == text
    cut_off = isinstance(reason, str) and reason in UNREUSABLE_FINISH_REASONS
    assert answer.reusable == (not cut_off and text.strip() != "")


@given(json_values, finish_reasons)
def test_any_message_content_is_an_answer_or_invalid_never_a_crash(
    content: Any, reason: Any
) -> None:
    try:
        answer = parse_answer(Endpoint.CHAT, _answer(content, reason))
    except InvalidAnswer as refused:
        assert refused.usage.prompt_tokens == 1  # an unusable answer is still billed
    else:
        assert isinstance(answer.output, str) and answer.output == content


@given(json_values | st.builds(lambda choice: {"choices": [choice]}, json_values))
def test_any_json_body_is_an_answer_or_invalid_never_a_crash(body: Any) -> None:
    try:
        answer = parse_answer(Endpoint.CHAT, orjson.dumps(body))
    except InvalidAnswer as refused:
        assert str(refused)  # it says why
    else:
        message = body["choices"][0]["message"]
        assert answer.output in (message.get("content"), message.get("tool_calls"))
