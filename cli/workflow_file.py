"""`--workflow FILE.toml`: the file read, its steps' files and schemas loaded, and the
whole checked before anything is sent (every problem is exit 78, naming the file).

Paths inside the file (`prompt_file`, `system_file`, a `schema` file) are taken
relative to the workflow file, so a workflow and its templates travel together.
A step's `schema` is a file, the inline form (`'label: a|b, score: int'`), or a
JSON Schema written as a TOML table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from cli.config_file import is_secret_name, looks_like_api_key, read_toml
from cli.schema_option import load_schema
from pipeline.core.config import Endpoint, RequestConfig
from pipeline.core.errors import ConfigError, SluiceError, UsageError
from pipeline.prepare.schema_inline import InlineSchemaError, inline_schema
from pipeline.workflow.requests import step_request
from pipeline.workflow.steps import Workflow, read_workflow

TEMPLATE_FILES = {"prompt_file": "prompt", "system_file": "system"}


def workflow_for_run(path: Path, request: RequestConfig, fallback_model: str | None) -> Workflow:
    """The --workflow file, read and checked, with every step's request settings made
    once here (the run's options are their defaults), so a mistake in any step stops the
    run before anything is sent."""
    workflow = load_workflow(path)
    check_workflow(workflow, request, fallback_model)
    return workflow


def served_workflow(tables: Mapping[str, Any]) -> Workflow:
    """A workflow a sluice serve job carries as JSON: schemas inline or as objects, never
    files (the job's options refused file names and `call` already)."""
    steps = tables.get("steps")
    if isinstance(steps, Mapping):
        inline = {name: _inline_schema(name, table) for name, table in steps.items()}
        tables = {**tables, "steps": inline}
    return read_workflow(tables)


def _inline_schema(name: str, table: Any) -> Any:
    if not isinstance(table, Mapping) or not isinstance(table.get("schema"), str):
        return table
    try:
        return {**table, "schema": inline_schema(table["schema"])}
    except InlineSchemaError as exc:
        raise ConfigError(f"workflow: steps.{name}.schema: {exc}") from None


def check_workflow(workflow: Workflow, request: RequestConfig, fallback_model: str | None) -> None:
    """Every step's request settings made once, so a mistake stops the run before
    anything is sent; and the run options that do not go with a workflow refused."""
    if fallback_model is not None:
        raise UsageError(
            "--fallback-model is for a single prompt; in a workflow, give a step a "
            "`fallback` step instead"
        )
    if request.endpoint is Endpoint.RAW:
        raise UsageError("--endpoint raw sends batch lines as they are; a workflow makes requests")
    for step in workflow.steps.values():
        if step.call is None:
            step_request(request, step)


def load_workflow(path: Path) -> Workflow:
    tables = read_toml(path, "workflow file")
    _refuse_keys(path, tables)
    steps = tables.get("steps")
    if isinstance(steps, Mapping):
        tables = {**tables, "steps": {name: _resolved(path, name, t) for name, t in steps.items()}}
    try:
        workflow = read_workflow(tables)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}") from None
    return replace(workflow, home=str(path.resolve().parent))


def _refuse_keys(path: Path, value: Any, trail: str = "") -> None:
    """Keys come from the environment only; never echo what looks like one."""
    if isinstance(value, Mapping):
        for key, inner in value.items():
            where = f"{trail}.{key}" if trail else str(key)
            if is_secret_name(str(key)):
                raise ConfigError(f"{path}: {where}: API keys are never read from a file")
            _refuse_keys(path, inner, where)
    elif isinstance(value, list):
        for inner in value:
            _refuse_keys(path, inner, trail)
    elif isinstance(value, str) and looks_like_api_key(value):
        raise ConfigError(f"{path}: {trail}: API keys are never read from a file")


def _resolved(path: Path, name: str, table: Any) -> Any:
    """The step's table with its files read and its schema loaded."""
    if not isinstance(table, Mapping):
        return table  # read_workflow says what is wrong with it
    step = dict(table)
    for file_key, text_key in TEMPLATE_FILES.items():
        if file_key not in step:
            continue
        if text_key in step:
            raise ConfigError(f"{path}: steps.{name}: give {text_key} or {file_key}, not both")
        step[text_key] = _text(path, name, file_key, step.pop(file_key))
    schema = step.get("schema")
    if isinstance(schema, str):
        step["schema"] = _schema(path, name, schema)
    elif schema is not None and not isinstance(schema, Mapping):
        raise ConfigError(f"{path}: steps.{name}.schema must be a file, fields, or a table")
    return step


def _text(path: Path, name: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{path}: steps.{name}.{key} must be a path")
    file = path.parent / value
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8"
        raise ConfigError(
            f"{path}: steps.{name}.{key}: cannot read {str(file)!r}: {reason}"
        ) from None


def _schema(path: Path, name: str, value: str) -> dict[str, Any]:
    relative = path.parent / value
    # A file beside the workflow, or the inline form (which always has a colon).
    target = str(relative) if relative.exists() or ":" not in value else value
    try:
        schema, _ = load_schema(target)
    except SluiceError as exc:  # a missing or unreadable schema is the workflow's problem
        raise ConfigError(f"{path}: steps.{name}.schema: {exc.message}") from None
    return schema
