"""`--schema FILE|FIELDS`: a JSON Schema file, or the short inline form, as a schema dict."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from pipeline.core.errors import ConfigError, InputMissing, InputUnreadable, UsageError
from pipeline.prepare.schema_inline import InlineSchemaError, inline_schema
from pipeline.protocol.structured import DEFAULT_SCHEMA_NAME, schema_name


def load_schema(value: str) -> tuple[dict[str, Any], str]:
    """The schema and the name it is sent under (the file's name, or "output")."""
    if os.path.exists(value):
        return _schema_file(Path(value))
    if ":" not in value:  # every inline field has one; this was meant as a file
        raise InputMissing(
            f"--schema file {value!r} does not exist "
            "(an inline schema names its fields: 'label: a|b, score: int')"
        )
    try:
        return inline_schema(value), DEFAULT_SCHEMA_NAME
    except InlineSchemaError as exc:
        raise UsageError(f"--schema: {exc}") from exc


def _schema_file(path: Path) -> tuple[dict[str, Any], str]:
    try:
        text = path.read_bytes()
    except IsADirectoryError as exc:
        raise InputMissing(f"--schema file {str(path)!r} is a directory") from exc
    except OSError as exc:
        raise InputUnreadable(f"cannot read --schema file {str(path)!r}: {exc.strerror}") from exc
    try:
        schema = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"--schema file {str(path)!r} is not JSON: {exc}") from exc
    if not isinstance(schema, dict):
        raise ConfigError(f"--schema file {str(path)!r} must hold a JSON object (a JSON Schema)")
    return schema_object(schema, path.name.split(".")[0])


def schema_object(schema: dict[str, Any], name: str) -> tuple[dict[str, Any], str]:
    """A JSON Schema given as an object, and the name it is sent under; OpenAI's own
    wrapper ({"name", "schema", "strict"}) is accepted as it is written there."""
    wrapped = schema.get("schema")
    if isinstance(wrapped, dict) and "type" not in schema and "properties" not in schema:
        given = schema.get("name")
        return wrapped, schema_name(given if isinstance(given, str) else name)
    return schema, schema_name(name)
