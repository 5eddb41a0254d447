"""Workflow files read and checked before anything is sent, and one item's way through
its steps (pure)."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.errors import ConfigError
from pipeline.workflow.schedule import ItemSteps, StepState
from pipeline.workflow.steps import read_workflow

REVIEWS = """
[steps.label]
prompt = "Label: {{ text }}"
schema = "label: positive|negative|neutral"

[steps.embed]
endpoint = "embeddings"
input_field = "text"

[steps.reply]
after = ["label"]
when = 'steps.label.output.label == "negative"'
prompt = "Answer this unhappy customer: {{ text }} ({{ steps.label.output.label }})"
optional = true
"""


def test_a_workflow_reads_its_steps_in_order_with_their_options() -> None:
    workflow = read_workflow(tomllib.loads(REVIEWS))
    assert list(workflow.steps) == ["label", "embed", "reply"]
    assert workflow.order.index("label") < workflow.order.index("reply")
    reply = workflow.steps["reply"]
    assert reply.after == ("label",) and reply.optional
    assert reply.when is not None
    assert reply.when.matches({"steps": {"label": {"output": {"label": "negative"}}}})
    assert workflow.steps["embed"].options == {"endpoint": "embeddings", "input_field": "text"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[steps.a]\nafter = ['b']\n[steps.b]\nafter = ['a']", "cycle: a -> b -> a"),
        ("[steps.a]\nafter = ['nope']", "steps.a.after names 'nope', which is not a step"),
        ("[steps.a]\nfallback = 'gone'", "steps.a.fallback names 'gone'"),
        ("[steps.a]\nprompt = '{{ steps.b.output }}'\n[steps.b]", "not among its dependencies"),
        ("[steps.a]\nprompt = '{{ steps[\"zz\"].output }}'", "reads steps.zz, which is not a step"),
        ("[steps.a]\nwhen = 'steps.b.output == 1'\n[steps.b]", "steps.a.when reads steps.b"),
        ("[steps.a]\npromt = 'x'", "unknown option 'promt'"),
        ("[steps.a]\nwhen = 'x <'", "steps.a.when, column"),
        ("[steps.a]\nprompt = '{{ x'", "steps.a.prompt is not a valid template"),
        ("[other]\nx = 1", "unknown table 'other'"),
        ("", "no steps"),
        ("[steps.a]\ncall = 'no_colon'", "package.module:function"),
        ("[steps.a]\nfallback = 'a'", "its own fallback"),
    ],
)
def test_workflow_mistakes_are_config_errors_naming_them(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace(".", r"\.")):
        read_workflow(tomllib.loads(text))


def test_a_step_may_read_what_its_dependencies_read_before_it() -> None:
    text = """
    [steps.a]
    [steps.b]
    after = ["a"]
    [steps.c]
    after = ["b"]
    prompt = "{{ steps.a.output }} {{ steps.b.output }}"
    """
    assert read_workflow(tomllib.loads(text)).ancestors("c") == {"a", "b"}


@st.composite
def dags(draw: st.DrawFn) -> dict[str, Any]:
    """Steps s0..sN, each depending only on earlier ones, declared in a shuffled order."""
    count = draw(st.integers(1, 8))
    steps: dict[str, Any] = {}
    for index in range(count):
        earlier = [f"s{i}" for i in range(index)]
        after = draw(st.lists(st.sampled_from(earlier), unique=True)) if earlier else []
        optional = draw(st.booleans())
        steps[f"s{index}"] = {"after": after, "optional": optional}
    names = draw(st.permutations(list(steps)))
    return {"steps": {name: steps[name] for name in names}}


@given(dags())
def test_the_order_puts_every_step_after_its_dependencies(tables: dict[str, Any]) -> None:
    workflow = read_workflow(tables)
    assert sorted(workflow.order) == sorted(workflow.steps)
    for name, step in workflow.steps.items():
        assert all(workflow.order.index(b) < workflow.order.index(name) for b in step.after)


@given(tables=dags(), data=st.data())
def test_steps_start_only_after_their_dependencies_and_a_required_failure_ends_the_item(
    tables: dict[str, Any], data: st.DataObject
) -> None:
    workflow = read_workflow(tables)
    item = ItemSteps(workflow)
    running: list[str] = []
    while not item.over:
        for name in item.ready():
            assert all(
                item.states[b] not in (StepState.WAITING, StepState.RUNNING)
                for b in workflow.steps[name].after
            )
            item.started(name)
            running.append(name)
        finished = running.pop(data.draw(st.integers(0, len(running) - 1)))
        ending = data.draw(st.sampled_from(["answered", "skipped", "failed"]))
        if ending == "answered":
            item.answered(finished, {"from": finished})
        elif ending == "skipped":
            item.skipped(finished)
        else:
            item.failed(finished)
    assert not running
    if item.failed_step is None:
        assert all(state is not StepState.WAITING for state in item.states.values())
    else:
        assert not workflow.steps[item.failed_step].optional
        assert item.states[item.failed_step] is StepState.FAILED
    view = item.view()
    assert all(view[name]["output"] == item.outputs.get(name) for name in workflow.steps)


def test_a_template_or_condition_reading_a_field_the_schema_does_not_give_is_refused() -> None:
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string"}},
        "required": ["label"],
        "additionalProperties": False,
    }
    label = {"prompt": "x", "schema": schema}
    wrong_field = {"after": ["label"], "prompt": "{{ steps.label.output.sentiment }}"}
    with pytest.raises(ConfigError, match=r"steps.label.output.sentiment, a field its schema"):
        read_workflow({"steps": {"label": label, "reply": wrong_field}})
    wrong_when = {"after": ["label"], "when": 'steps.label.output.labl == "x"', "prompt": "y"}
    with pytest.raises(ConfigError, match=r"steps.reply.when reads steps.label.output.labl"):
        read_workflow({"steps": {"label": label, "reply": wrong_when}})
    not_output = {"after": ["label"], "prompt": "{{ steps.label.answer }}"}
    with pytest.raises(ConfigError, match=r"a step gives only steps.label.output"):
        read_workflow({"steps": {"label": label, "reply": not_output}})
    fine = {"after": ["label"], "prompt": "{{ steps['label'].output.label | upper }}"}
    assert read_workflow({"steps": {"label": label, "reply": fine}}).order == ("label", "reply")
    # Without a closed list of properties, any field may be there.
    open_label = {"prompt": "x", "schema": {"type": "object"}}
    other = {"after": ["label"], "prompt": "{{ steps.label.output.anything }}"}
    assert read_workflow({"steps": {"label": open_label, "reply": other}})
