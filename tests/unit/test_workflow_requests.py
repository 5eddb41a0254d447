"""Each step's request settings: the run's, with the step's options on top (pure)."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.config import Endpoint, RequestConfig
from pipeline.core.errors import ConfigError
from pipeline.workflow.requests import step_request
from pipeline.workflow.steps import Step, read_workflow

RUN = RequestConfig(
    Endpoint.CHAT, "run-model", "{{ text }}", max_tokens=50, body_options={"seed": 7}
)


def _step(text: str) -> Step:
    return read_workflow(tomllib.loads(text)).steps["s"]


def test_a_step_sets_only_what_differs_from_the_run() -> None:
    request = step_request(RUN, _step('[steps.s]\nprompt = "Label: {{ text }}"\ntemperature = 0'))
    assert (request.model, request.max_tokens, request.body_options) == (
        "run-model",
        50,
        {"seed": 7},
    )
    assert (request.prompt, request.temperature) == ("Label: {{ text }}", 0.0)


def test_a_step_schema_asks_for_json_named_after_the_step() -> None:
    step = _step('[steps.s]\nschema = { type = "object" }\noptions = { top_p = 0.5 }')
    request = step_request(RUN, step)
    assert request.schema == {"type": "object"}
    assert request.schema_name == "s" and request.json_output
    assert request.body_options == {"seed": 7, "top_p": 0.5}


def test_an_embeddings_step_needs_no_prompt() -> None:
    step = _step('[steps.s]\nendpoint = "embeddings"\nmodel = "embed"\ninput_field = "body"')
    request = step_request(RUN, step)
    assert (request.endpoint, request.model, request.input_field) == (
        Endpoint.EMBEDDINGS,
        "embed",
        "body",
    )


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ('endpoint = "raw"', "steps.s.endpoint must be chat or embeddings"),
        ("max_tokens = 0", "steps.s.max_tokens must be a whole number above 0"),
        ("max_tokens = true", "steps.s.max_tokens"),
        ("temperature = -1", "steps.s.temperature"),
        ('temperature = "hot"', "steps.s.temperature"),
        ('model = ""', "steps.s.model must be a non-empty string"),
        ('schema = "not a table"', "steps.s.schema must be a table"),
        ('options = { model = "x" }', "may not set 'model'"),
        ("options = { stream = true }", "may not set 'stream'"),
    ],
)
def test_step_option_mistakes_name_the_step_and_option(options: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        step_request(RUN, _step(f"[steps.s]\n{options}"))


def test_a_chat_step_without_any_model_is_refused() -> None:
    without = RequestConfig(Endpoint.CHAT, None, "{{ text }}")
    with pytest.raises(ConfigError, match=r"steps\.s has no model"):
        step_request(without, _step('[steps.s]\nprompt = "x"'))


@given(
    max_tokens=st.integers(1, 10**6),
    temperature=st.floats(0, 2, allow_nan=False),
    model=st.text(alphabet="abcdefghij-0123456789", min_size=1, max_size=12),
)
def test_valid_values_reach_the_request_unchanged(
    max_tokens: int, temperature: float, model: str
) -> None:
    text = f'[steps.s]\nmax_tokens = {max_tokens}\ntemperature = {temperature!r}\nmodel = "{model}"'
    request = step_request(RUN, _step(text))
    assert (request.max_tokens, request.temperature, request.model) == (
        max_tokens,
        temperature,
        model,
    )
