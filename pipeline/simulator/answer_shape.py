"""What shape the answer must take: `response_format` (text, a JSON object, a JSON
Schema) and `stream`, checked the way the API checks them; whether a value fits a
schema (`validation_error`); and how the schema's keywords read: their bounds and
counts, and whether every value made from it fits by construction
(`is_made_exactly`, which lets schema_values.py skip the check). `jsonschema` does
the schema work behind these few functions.

Pure: no I/O, no clock. A refusal raises `InvalidRequest` naming `response_format`
(or `stream`) as the param. Schemas are checked once each, however many requests carry them.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any

import orjson
import referencing.exceptions
from jsonschema import Draft202012Validator, SchemaError, validators
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator

from pipeline.simulator.faults import InvalidRequest

SCHEMA_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
RESPONSE_FORMAT = "response_format"
MAX_SCHEMA_DEPTH = 64
SIMPLE_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")
# Keywords whose value is one subschema, a list of them, or a name -> subschema map.
_ONE_SCHEMA = (
    "items", "additionalProperties", "not", "contains", "if", "then", "else", "propertyNames",
    "unevaluatedItems", "unevaluatedProperties",
)  # fmt: skip
_SCHEMA_LISTS = ("prefixItems", "anyOf", "oneOf", "allOf")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """What shape the answer must take: `text`, `json_object` or `json_schema`."""

    kind: str = "text"
    schema: dict[str, Any] | None = None
    """The JSON Schema of a `json_schema` format; None when it gives none."""
    name: str | None = None


TEXT_FORMAT = ResponseFormat()


def parse_response_format(value: Any) -> ResponseFormat:
    """Check `response_format` as OpenAI does; refusals name `response_format` as the param."""
    if value is None:
        return TEXT_FORMAT
    if not isinstance(value, dict):
        raise wrong_type(RESPONSE_FORMAT, "an object", value, RESPONSE_FORMAT)
    kind = value.get("type")
    if kind is None:
        raise InvalidRequest("Missing required parameter: 'response_format.type'.", RESPONSE_FORMAT)
    if kind in ("text", "json_object"):
        return ResponseFormat(kind)
    if kind != "json_schema":
        raise InvalidRequest(
            f"Invalid value: {_shown(kind)}. Supported values are: 'text', 'json_object', "
            "and 'json_schema'.",
            RESPONSE_FORMAT,
            "invalid_value",
        )
    return _json_schema_format(value.get("json_schema"))


def _json_schema_format(spec: Any) -> ResponseFormat:
    where = "response_format.json_schema"
    if spec is None:
        raise InvalidRequest(f"Missing required parameter: '{where}'.", RESPONSE_FORMAT)
    if not isinstance(spec, dict):
        raise wrong_type(where, "an object", spec, RESPONSE_FORMAT)
    name = spec.get("name")
    if name is None:
        raise InvalidRequest(f"Missing required parameter: '{where}.name'.", RESPONSE_FORMAT)
    if not isinstance(name, str) or not SCHEMA_NAME.fullmatch(name):
        raise InvalidRequest(
            f"Invalid '{where}.name': {_shown(name)} does not match the pattern "
            f"'^{SCHEMA_NAME.pattern}$' (letters, digits, '_' and '-', at most 64).",
            RESPONSE_FORMAT,
            "invalid_value",
        )
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise wrong_type(f"{where}.strict", "a boolean", strict, RESPONSE_FORMAT)
    schema = spec.get("schema")
    if schema is None:
        return ResponseFormat("json_schema", None, name)
    if not isinstance(schema, dict):
        raise wrong_type(f"{where}.schema", "an object", schema, RESPONSE_FORMAT)
    problem = schema_problem(schema)
    if problem is not None:
        raise invalid_schema(name, problem)
    return ResponseFormat("json_schema", schema, name)


def invalid_schema(name: str | None, problem: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid schema for response_format '{name}': {problem}", RESPONSE_FORMAT, "invalid_value"
    )


def stream_settings(body: dict[str, Any]) -> tuple[bool, bool]:
    """`stream` and `stream_options.include_usage`, checked as the API does."""
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise wrong_type("stream", "a boolean", stream, "stream")
    options = body.get("stream_options")
    if options is None:
        return bool(stream), False
    if not stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    if not isinstance(options, dict):
        raise wrong_type("stream_options", "an object", options, "stream_options")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise wrong_type(
            "stream_options.include_usage", "a boolean", include_usage, "stream_options"
        )
    return True, include_usage


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Why the API would refuse this schema (an unknown type, a malformed keyword), or None."""
    try:
        canonical = canonical_schema(schema)
    except orjson.JSONEncodeError:
        return "the schema is nested too deeply."
    return _problem_of(canonical)


@functools.lru_cache(maxsize=64)
def _problem_of(canonical: bytes) -> str | None:
    """Every item of a job sends the same schema: check it once."""
    schema = orjson.loads(canonical)
    unknown = _unknown_type(schema, (), 0)
    if unknown is not None:
        return unknown
    dialect = schema.get("$schema")
    if dialect is not None and not isinstance(dialect, str):
        return "'$schema' must be a string."
    try:
        validator_class(schema).check_schema(schema)
    except SchemaError as error:
        return f"{error.message} (at {schema_pointer(error.absolute_path)})"
    except RecursionError:
        return "the schema is nested too deeply."
    return None


def _unknown_type(schema: Any, context: tuple[str, ...], depth: int) -> str | None:
    """The first unknown `type` in the schema, named where it sits, as OpenAI words it."""
    if not isinstance(schema, dict):
        return None
    if depth > MAX_SCHEMA_DEPTH:
        return f"the schema is nested more than {MAX_SCHEMA_DEPTH} levels deep."
    declared = schema.get("type")
    for kind in declared if isinstance(declared, list) else [declared]:
        if kind is not None and kind not in SIMPLE_TYPES:
            return (
                f"In context={context}, type {orjson.dumps(kind).decode()} is not one of: "
                f"{', '.join(SIMPLE_TYPES)}."
            )
    for key, child, place in _subschemas(schema):
        found = _unknown_type(child, (*context, key, *place), depth + 1)
        if found is not None:
            return found
    return None


def _subschemas(schema: dict[str, Any]) -> list[tuple[str, Any, tuple[str, ...]]]:
    children: list[tuple[str, Any, tuple[str, ...]]] = []
    for key in _ONE_SCHEMA:
        if key in schema:
            value = schema[key]
            many = value if isinstance(value, list) else [value]  # `items` as a list, draft 7
            children += [
                (key, child, (str(i),) if len(many) > 1 else ()) for i, child in enumerate(many)
            ]
    for key in _SCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            children += [(key, child, (str(i),)) for i, child in enumerate(schema[key])]
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            children += [(key, child, (str(name),)) for name, child in schema[key].items()]
    return children


def validation_error(value: Any, schema: dict[str, Any]) -> str | None:
    """Why `value` fails `schema`, in jsonschema's words with the place it fails, or None."""
    try:
        error = best_match(_validator(canonical_schema(schema)).iter_errors(value))
    except (referencing.exceptions.Unresolvable, RecursionError, orjson.JSONEncodeError) as problem:
        return f"the schema cannot be applied: {problem}"
    return None if error is None else f"{error.message} (at {schema_pointer(error.absolute_path)})"


def validator_class(schema: dict[str, Any]) -> type[Validator]:
    cls: type[Validator] = validators.validator_for(schema, default=Draft202012Validator)
    return cls


def canonical_schema(schema: dict[str, Any]) -> bytes:
    return orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)


@functools.lru_cache(maxsize=64)
def _validator(canonical_schema: bytes) -> Validator:
    """One compiled validator per schema: every item of a job shares its schema."""
    schema = orjson.loads(canonical_schema)
    return validator_class(schema)(schema)


def schema_pointer(path: Any) -> str:
    return "/" + "/".join(str(part) for part in path) if path else "the top level"


def wrong_type(where: str, expected: str, value: Any, param: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for '{where}': expected {expected}, but got {_json_type(value)} instead.",
        param,
        "invalid_type",
    )


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", str: "a string", int: "an integer", float: "a decimal"}
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return names.get(type(value), "an unknown value")


def _shown(value: Any) -> str:
    """A request value quoted for a message, cut short so a huge value cannot flood it."""
    if not isinstance(value, str):
        return _json_type(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# The generator makes a valid value, or raises, for any schema built only of these
# keywords (most schemas are); values from other schemas are checked one by one.
_ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "$comment", "$schema", "$id", "format",
    "$defs", "definitions",
})  # fmt: skip
_HONOURED = _ANNOTATIONS | {
    "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
    "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "enum", "const", "anyOf", "$ref",
}  # fmt: skip
_CHOICES = frozenset({"enum", "const", "anyOf", "$ref"})
_LOCAL_REF = re.compile(r"#(/(\$defs|definitions)/[^/~]+)?")
# Beyond this a float bound loses the precision the choice within bounds relies on.
_LARGEST_EXACT_BOUND = 1e15


def is_made_exactly(schema: dict[str, Any]) -> bool:
    """Whether every value made from `schema` is valid by construction, needing no check.

    Checking an answer with jsonschema costs more than making it, and every item of
    a job shares its schema: the answer is worked out once per schema.
    """
    try:
        canonical = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return False
    return _is_exact_schema(canonical)


@functools.lru_cache(maxsize=64)
def _is_exact_schema(canonical: bytes) -> bool:
    try:
        return _exact(orjson.loads(canonical), 0)
    except RecursionError:
        return False


def _exact(schema: Any, depth: int) -> bool:
    if schema is True:
        return True
    if not isinstance(schema, dict) or depth > MAX_SCHEMA_DEPTH:
        return False
    if not schema.keys() <= _HONOURED:
        return False
    children = [*_schema_values(schema.get("$defs")), *_schema_values(schema.get("definitions"))]
    keys = schema.keys() - _ANNOTATIONS
    if keys & _CHOICES:
        exact_here = _exact_choice(schema, keys)
        children += schema["anyOf"] if isinstance(schema.get("anyOf"), list) else []
    else:
        exact_here = _consistentschema_bounds(schema) and _fits_closed_object(schema)
        children += _schema_values(schema.get("properties"))
        extra = schema.get("additionalProperties")
        children += [extra] if isinstance(extra, dict) else []
        children += [schema["items"]] if "items" in schema else []  # `items: false` is not exact
    return exact_here and all(_exact(child, depth + 1) for child in children)


def _exact_choice(schema: dict[str, Any], keys: set[str]) -> bool:
    """The generator follows `enum`, `const`, `anyOf` or `$ref` and nothing beside them."""
    if keys == {"$ref"}:
        return isinstance(schema["$ref"], str) and bool(_LOCAL_REF.fullmatch(schema["$ref"]))
    if keys == {"anyOf"}:
        return isinstance(schema["anyOf"], list) and bool(schema["anyOf"])
    if not keys <= {"enum", "type"} and not keys <= {"const", "type"}:
        return False
    members = [schema["const"]] if "const" in keys else schema["enum"]
    kind = {"type": schema["type"]} if "type" in schema else {}
    return bool(members) and all(validation_error(member, kind) is None for member in members)


def _consistentschema_bounds(schema: dict[str, Any]) -> bool:
    for shortest, longest in (("minLength", "maxLength"), ("minItems", "maxItems")):
        fewest, most = keyword_count(schema.get(shortest)), keyword_count(schema.get(longest))
        if fewest is not None and most is not None and fewest > most:
            return False
    keywords = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
    if any(key in schema and not is_number(schema[key]) for key in keywords):
        return False  # draft 4's boolean exclusiveMinimum, say, which the generator ignores
    low, high = schema_bounds(schema)
    limits = [bound[0] for bound in (low, high) if bound is not None]
    if any(abs(limit) > _LARGEST_EXACT_BOUND for limit in limits):
        return False
    if low is None or high is None:
        return True
    exclusive = low[1] or high[1]
    return high[0] - low[0] > 1e-6 or (high[0] == low[0] and not exclusive)


def _fits_closed_object(schema: dict[str, Any]) -> bool:
    """A closed object must list every required name among its properties."""
    if schema.get("additionalProperties") is not False:
        return True
    required = schema.get("required") or []
    return set(required) <= set(schema.get("properties") or {})


def _schema_values(mapping: Any) -> list[Any]:
    return list(mapping.values()) if isinstance(mapping, dict) else []


Bound = tuple[float, bool]


def schema_bounds(schema: dict[str, Any]) -> tuple[Bound | None, Bound | None]:
    """The lower and upper bounds, each (limit, exclusive), the tighter one where both exist."""
    low = _bound(schema, "minimum", "exclusiveMinimum", max)
    high = _bound(schema, "maximum", "exclusiveMaximum", min)
    return low, high


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str, tighter: Any) -> Bound | None:
    found: list[Bound] = [
        (float(schema[key]), key == exclusive)
        for key in (inclusive, exclusive)
        if is_number(schema.get(key))
    ]
    if not found:
        return None
    best = tighter(limit for limit, _ in found)
    return best, any(limit == best and is_exclusive for limit, is_exclusive in found)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def keyword_count(value: Any) -> int | None:
    """A non-negative integer keyword (minItems, maxLength...), or None when absent or odd."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON Schema counts 3.0 as the integer 3
    is_count = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value if is_count else None
