"""What a client may set for its job, checked before anything is stored or spent (pure).

A job's options are a run's request options, plus its webhook. Anything that would
let a client reach the server's files or run code on it (a template or schema file,
a workflow step's `call`, another base URL or key) is not among them; the server's
own options are the defaults for what a job leaves out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson


class JobRefused(Exception):
    """A request the server turns away before storing anything; `status` is its HTTP
    status and `kind` the error's type in the answer."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"type": self.kind, "message": self.message}}


TEXT = ("prompt", "system", "model", "webhook_url", "input_field", "id_field")
WHOLE = ("max_tokens",)
NUMBER = ("temperature",)
TABLES = ("workflow", "options")  # JSON objects (JSON text in a query string)
SCHEMA = "schema"  # inline fields ('label: a|b') or a JSON Schema object
ENDPOINTS = ("chat", "embeddings")
OPTIONS = frozenset({*TEXT, *WHOLE, *NUMBER, *TABLES, SCHEMA, "endpoint"})
# Steps of a served workflow may not read the server's files or run its code.
STEP_REFUSED = ("prompt_file", "system_file", "call")


def job_options(given: Mapping[str, Any], from_query: bool = False) -> dict[str, Any]:
    """The job's options, checked; JobRefused (400 or 422) naming the first problem.
    Values from a query string are text: numbers and objects are parsed here."""
    unknown = sorted(set(given) - OPTIONS)
    if unknown:
        raise JobRefused(
            400,
            "unknown_option",
            f"unknown option {unknown[0]!r}; a job takes: {', '.join(sorted(OPTIONS))}",
        )
    return {name: _checked(name, value, from_query) for name, value in given.items()}


def _checked(name: str, value: Any, from_query: bool) -> Any:
    if from_query and name in (*WHOLE, *NUMBER, *TABLES):
        value = _parsed(name, value)
    if from_query and name == SCHEMA and isinstance(value, str) and value.lstrip()[:1] == "{":
        value = _parsed(name, value)
    if name in TEXT or name == "endpoint":
        if not isinstance(value, str) or not value:
            raise _invalid(f"{name} must be a non-empty string")
        if name == "endpoint" and value not in ENDPOINTS:
            raise _invalid(f"endpoint must be chat or embeddings, not {value!r}")
    elif name in WHOLE:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _invalid(f"{name} must be a whole number above 0")
    elif name in NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise _invalid(f"{name} must be a number from 0")
    elif name in TABLES:
        if not isinstance(value, Mapping):
            raise _invalid(f"{name} must be a JSON object")
        if name == "workflow":
            _check_workflow(value)
    elif not isinstance(value, str | Mapping) or not value:
        raise _invalid("schema must be inline fields ('label: a|b') or a JSON Schema object")
    return value


def _check_workflow(workflow: Mapping[str, Any]) -> None:
    steps = workflow.get("steps")
    if not isinstance(steps, Mapping):
        return  # read_workflow says what is wrong with it
    for name, step in steps.items():
        if not isinstance(step, Mapping):
            continue
        for key in STEP_REFUSED:
            if key in step:
                raise _invalid(
                    f"workflow: steps.{name}.{key} is not allowed in a served job "
                    "(it would read the server's files or run its code); give prompts inline"
                )
        schema = step.get("schema")
        if isinstance(schema, str) and ":" not in schema:
            raise _invalid(
                f"workflow: steps.{name}.schema must be inline fields or a JSON Schema object, "
                "not a file name"
            )


def _parsed(name: str, text: Any) -> Any:
    try:
        return orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        raise _invalid(f"{name} in the query string must be JSON") from None


def _invalid(message: str) -> JobRefused:
    return JobRefused(422, "invalid_option", message)
