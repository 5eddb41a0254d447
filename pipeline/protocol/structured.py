"""Structured answers: what `--schema` and `--json` ask of the model, and the local check
every answer passes before it is kept or served again from the cache (pure; no I/O).

A provider's own structured-output mode is a request, not a promise: gateways drop
it, local servers ignore it, and a cut-off answer is never valid JSON. So the
answer's text is parsed and validated here, with `jsonschema`, and an answer that
fails becomes an `invalid_output` with the validator's words.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from pipeline.core.errors import ConfigError

DEFAULT_SCHEMA_NAME = "output"
_NAME_CHARACTERS = re.compile(r"[^a-zA-Z0-9_-]+")
# Models that ignore response_format often wrap JSON in a Markdown code fence.
_FENCED = re.compile(r"\A\s*```(?:json|JSON)?[ \t]*\n(.*)\n```\s*\Z", re.DOTALL)


class NotStructured(Exception):
    """The answer is not the JSON asked for; the message says why, for the quarantine row."""


class StructuredOutput:
    """The JSON an answer must be: any object (`--json`), or one matching a JSON Schema."""

    def __init__(self, schema: dict[str, Any] | None, name: str = DEFAULT_SCHEMA_NAME) -> None:
        self.schema = schema
        self.name = schema_name(name)
        self._validator: Any = None
        if schema is not None:
            # Imported only for a schema: every other run starts without it (~0.1 s).
            import jsonschema
            import referencing.exceptions
            from jsonschema.exceptions import best_match

            self._unresolvable = referencing.exceptions.Unresolvable
            self._best_match = best_match
            checked = jsonschema.validators.validator_for(schema, jsonschema.Draft202012Validator)
            try:
                checked.check_schema(schema)
            except jsonschema.SchemaError as exc:
                raise ConfigError(
                    f"--schema is not a valid JSON Schema (at {exc.json_path}): {exc.message}"
                ) from exc
            self._validator = _int64_integers(checked)(schema)

    @property
    def response_format(self) -> dict[str, Any]:
        """The request field asking the provider for this shape."""
        if self.schema is None:
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "schema": self.schema, "strict": True},
        }

    def check(self, content: str, finish_reason: Any = None) -> Any:
        """The answer's value, parsed and validated; NotStructured saying what is wrong."""
        try:
            value = orjson.loads(_unfenced(content))
        except orjson.JSONDecodeError as exc:
            if finish_reason == "length":
                raise NotStructured(
                    "answer was cut off at max_tokens before its JSON ended; raise --max-tokens"
                ) from exc
            raise NotStructured(f"answer is not JSON: {exc}") from exc
        if self._validator is None:
            if not isinstance(value, dict):
                raise NotStructured(f"answer is JSON but not an object: {_kind(value)}")
            return value
        try:
            invalid = next(self._validator.iter_errors(value), None) is not None
        except self._unresolvable as exc:
            # Only met while validating: a run-ending mistake in the schema, not the answer.
            raise ConfigError(
                f"--schema has a $ref that cannot be resolved ({exc}); sluice follows only "
                "references inside the schema, such as #/$defs/NAME"
            ) from None
        if invalid:
            error = self._best_match(self._validator.iter_errors(value))
            raise NotStructured(
                f"answer does not match the schema at {error.json_path}: {error.message}"
            )
        return value


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _int64_integers(validator: Any) -> Any:
    """The validator, with `integer` bounded to what an int64 column holds: a larger one
    is an answer no result file can store, so it is refused like any other mismatch."""
    import jsonschema

    base = validator.TYPE_CHECKER

    def is_int64(checker: Any, value: Any) -> bool:
        return bool(base.is_type(value, "integer")) and INT64_MIN <= value <= INT64_MAX

    return jsonschema.validators.extend(validator, type_checker=base.redefine("integer", is_int64))


def schema_name(text: str) -> str:
    """A name the API accepts for the schema (letters, digits, _ and -, at most 64)."""
    name = _NAME_CHARACTERS.sub("_", text).strip("_")[:64]
    return name or DEFAULT_SCHEMA_NAME


def _unfenced(content: str) -> str:
    fenced = _FENCED.match(content)
    return fenced.group(1) if fenced else content


def _kind(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
