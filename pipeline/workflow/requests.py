"""Each step's request settings: the run's own (`-m`, `--max-tokens`, `-O`...) with the
step's options on top (pure; no I/O).

A step names only what differs from the run: a workflow whose steps share a model
says it once, on the command line or in the config file. Values are checked here,
as the flags of a run are, so a typo in a step is a ConfigError naming the step
and the option rather than a failed request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pipeline.core.config import Endpoint, RequestConfig
from pipeline.core.errors import ConfigError
from pipeline.workflow.steps import Step, Workflow


def step_request(run: RequestConfig, step: Step) -> RequestConfig:
    """The request settings of `step`, given the run's."""
    options = step.options
    changes: dict[str, Any] = {}
    for key in ("prompt", "system", "model", "input_field"):
        if key in options:
            changes[key] = _text(step, key)
    if "endpoint" in options:
        changes["endpoint"] = _endpoint(step)
    if "max_tokens" in options:
        changes["max_tokens"] = _whole_number(step, "max_tokens")
    if "temperature" in options:
        changes["temperature"] = _temperature(step)
    if "options" in options:
        changes["body_options"] = {**run.body_options, **_body_options(step)}
    if "schema" in options:
        changes["schema"] = _table(step, "schema")
        changes["schema_name"] = step.name
        changes["json_output"] = True
    request = replace(run, **changes)
    if request.endpoint is not Endpoint.EMBEDDINGS and not request.model:
        raise ConfigError(f"workflow: steps.{step.name} has no model: give -m or its model")
    return request


def _text(step: Step, key: str) -> str:
    value = step.options[key]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"workflow: steps.{step.name}.{key} must be a non-empty string")
    return value


def _endpoint(step: Step) -> Endpoint:
    value = step.options["endpoint"]
    choices = (Endpoint.CHAT, Endpoint.EMBEDDINGS)
    if value not in [str(choice) for choice in choices]:
        raise ConfigError(
            f"workflow: steps.{step.name}.endpoint must be chat or embeddings, not {value!r}"
        )
    return Endpoint(value)


def _whole_number(step: Step, key: str) -> int:
    value = step.options[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"workflow: steps.{step.name}.{key} must be a whole number above 0")
    return value


def _temperature(step: Step) -> float:
    value = step.options["temperature"]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"workflow: steps.{step.name}.temperature must be a number from 0")
    return float(value)


# Request fields the step's own options set; `options` may not set them behind their back.
SET_ELSEWHERE = frozenset({"model", "messages", "input", "stream", "response_format"})


def _body_options(step: Step) -> dict[str, Any]:
    options = _table(step, "options")
    for key in sorted(SET_ELSEWHERE & options.keys()):
        raise ConfigError(
            f"workflow: steps.{step.name}.options may not set {key!r}: use the step's own "
            "options (model, prompt, schema...)"
        )
    return options


def _table(step: Step, key: str) -> dict[str, Any]:
    value = step.options[key]
    if not isinstance(value, Mapping):
        raise ConfigError(f"workflow: steps.{step.name}.{key} must be a table")
    return dict(value)


# What a step's output column holds in Parquet when no schema says it.
_TEXT: dict[str, Any] = {"type": "string"}
_VECTOR: dict[str, Any] = {"type": "array", "items": {"type": "number"}}
_ANY_JSON: dict[str, Any] = {}


def answers_schema(run: RequestConfig, workflow: Workflow) -> dict[str, Any]:
    """One JSON Schema for a workflow row's output: an object with each step's output
    (its schema's; text; a vector; any JSON), so Parquet gives each step a typed column."""
    properties: dict[str, Any] = {}
    for name in workflow.outputs:
        step = workflow.steps[name]
        if step.call is not None:
            schema = step.options.get("schema")
            properties[name] = dict(schema) if isinstance(schema, Mapping) else _ANY_JSON
            continue
        request = step_request(run, step)
        if request.schema is not None:
            properties[name] = request.schema
        elif request.endpoint is Endpoint.EMBEDDINGS:
            properties[name] = _VECTOR
        else:
            properties[name] = _ANY_JSON if request.json_output else _TEXT
    return {"type": "object", "properties": properties}


def step_models(run: RequestConfig, workflow: Workflow) -> list[str]:
    """The models the steps ask, each once, in the order the steps name them."""
    models = [
        step_request(run, step).model for step in workflow.steps.values() if step.call is None
    ]
    return list(dict.fromkeys(model for model in models if model))
