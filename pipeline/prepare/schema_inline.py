"""The short inline form of an output schema (`--schema 'label: a|b, score: int'`) as the
JSON Schema it stands for (pure; no I/O).

    field   := NAME ":" type ["?"]           "?" allows null (the field is still present)
    type    := "str" | "int" | "float" | "bool"
             | WORD ("|" WORD)+              one of these strings
             | "list[" type "]"

Fields are separated by commas. The schema is what OpenAI's strict structured
outputs accept: every property required, no others allowed, a nullable field
written as a union with "null".
"""

from __future__ import annotations

import re
from typing import Any

SCALARS = {
    "str": "string",
    "string": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_WORD = re.compile(r"[^\s|,:\[\]?]+\Z")


class InlineSchemaError(ValueError):
    """The inline schema cannot be read; the message names the field and what is wrong."""


def inline_schema(text: str) -> dict[str, Any]:
    """The JSON Schema of an object with the fields `text` lists."""
    properties: dict[str, Any] = {}
    for part in _split_fields(text):
        name, sep, kind = part.partition(":")
        name, kind = name.strip(), kind.strip()
        if not sep or not kind:
            raise InlineSchemaError(f"{part.strip()!r} needs a type: write it as 'name: type'")
        if not _NAME.match(name):
            raise InlineSchemaError(f"{name!r} is not a field name (letters, digits and _)")
        if name in properties:
            raise InlineSchemaError(f"field {name!r} is given twice")
        properties[name] = _type(kind, name)
    if not properties:
        raise InlineSchemaError("the schema names no field: write 'name: type, ...'")
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _split_fields(text: str) -> list[str]:
    """Split at commas outside brackets (`tags: list[a|b], n: int`)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part for part in parts if part.strip()]


def _type(kind: str, field: str) -> dict[str, Any]:
    nullable = kind.endswith("?")
    schema = _bare_type(kind.removesuffix("?").strip(), field)
    if not nullable:
        return schema
    if "enum" in schema:
        return {"type": ["string", "null"], "enum": [*schema["enum"], None]}
    return {**schema, "type": [schema["type"], "null"]}


def _bare_type(kind: str, field: str) -> dict[str, Any]:
    if kind.startswith("list[") and kind.endswith("]"):
        return {"type": "array", "items": _bare_type(kind[5:-1].strip(), field)}
    if kind in SCALARS:
        return {"type": SCALARS[kind]}
    if "|" in kind:
        words = [word.strip() for word in kind.split("|")]
        if all(_WORD.match(word) for word in words) and len(set(words)) == len(words):
            return {"type": "string", "enum": words}
    raise InlineSchemaError(
        f"field {field!r}: {kind!r} is not a type; use str, int, float, bool, "
        "a|b|c (one of these words) or list[...]"
    )
