"""Values made from a JSON Schema: one that validates against it, and one that does not.

Pure: no I/O, no clock. The simulator answers `response_format: json_schema` with
`value_for_schema`, and its `[[sim:schema_violation]]` trigger with `violating_value`.
A value is checked with `jsonschema` before it is returned, unless the schema uses only
keywords the generator honours exactly (`answer_shape.is_made_exactly`), so a schema it
cannot satisfy raises `UnsatisfiableSchema` instead of giving a wrong answer.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import orjson

from pipeline.simulator.answer_shape import (
    MAX_SCHEMA_DEPTH,
    is_made_exactly,
    keyword_count,
    schema_bounds,
    validation_error,
)

# Past this depth a recursive schema is wound down: optional properties are left out,
# arrays get their fewest items and nullable values are null.
WIND_DOWN_DEPTH = 8
DEFAULT_RANGE = 100
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00Z",
    "email": "sim@example.com",
    "hostname": "sim.example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}


class UnsatisfiableSchema(Exception):
    """A schema the simulator cannot make a valid value for."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def value_for_schema(schema: dict[str, Any], digest: str, text: str) -> Any:
    """A value valid against `schema`, chosen by `digest`; `text` fills free-form strings."""
    try:
        value = _Generator(schema, digest, text).value(schema, "", 0)
        orjson.dumps(value)
    except (RecursionError, orjson.JSONEncodeError) as error:
        raise UnsatisfiableSchema(
            "the schema asks for a value JSON cannot carry (nested too deeply, or too large)"
        ) from error
    problem = None if is_made_exactly(schema) else validation_error(value, schema)
    if problem is not None:
        raise UnsatisfiableSchema(f"sluice sim cannot make a value for this schema: {problem}")
    return value


def violating_value(value: Any, schema: dict[str, Any]) -> Any | None:
    """`value` bent to fail `schema`: its first required property dropped, or a wrong type.

    None when the schema accepts every value, so nothing can violate it.
    """
    for candidate in _violations(value):
        if validation_error(candidate, schema) is not None:
            return candidate
    return None


def _violations(value: Any) -> list[Any]:
    candidates: list[Any] = []
    if isinstance(value, dict):
        # Dropping each property in turn finds the first required one without
        # having to resolve the schema's references here.
        candidates += [{k: v for k, v in value.items() if k != name} for name in value]
        candidates += [{**value, name: _wrong_type(item)} for name, item in value.items()]
    return [*candidates, _wrong_type(value), ["sim: schema violation"], None]


def _wrong_type(value: Any) -> Any:
    return 12345 if isinstance(value, str) else "sim: schema violation"


class _Generator:
    def __init__(self, root: dict[str, Any], digest: str, text: str) -> None:
        self._root = root
        self._digest = digest
        self._text = text

    def value(self, schema: Any, path: str, depth: int) -> Any:
        if depth > MAX_SCHEMA_DEPTH:
            raise UnsatisfiableSchema(f"the schema at {path or '/'} recurses without end")
        if schema is True or schema == {}:
            return self._text
        if not isinstance(schema, dict):
            raise UnsatisfiableSchema(f"no value satisfies the schema at {path or '/'}")
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self._enum_member(schema["enum"], path)
        if "$ref" in schema:
            return self.value(self._resolve(schema["$ref"]), path, depth + 1)
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                return self.value(self._choose(schema[keyword], path, depth), path, depth + 1)
        if isinstance(schema.get("allOf"), list):
            return self.value(self._merge(schema), path, depth + 1)
        return self._typed(schema, self._type(schema, depth), path, depth)

    def _typed(self, schema: dict[str, Any], kind: str, path: str, depth: int) -> Any:
        if kind == "object":
            return self._object(schema, path, depth)
        if kind == "array":
            return self._array(schema, path, depth)
        if kind == "integer":
            return self._integer(schema, path)
        if kind == "number":
            return self._number(schema, path)
        if kind == "boolean":
            return self._pick(path, 2) == 0
        if kind == "null":
            return None
        return self._string(schema)

    def _type(self, schema: dict[str, Any], depth: int) -> str:
        declared = schema.get("type")
        if isinstance(declared, str):
            return declared
        if isinstance(declared, list) and declared:
            others = [kind for kind in declared if kind != "null"]
            winding_down = depth > WIND_DOWN_DEPTH and "null" in declared
            return "null" if winding_down or not others else str(others[0])
        if isinstance(declared, list):
            raise UnsatisfiableSchema("an empty 'type' list allows no value")
        return _implied_type(schema)

    def _object(self, schema: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        declared = schema.get("properties")
        properties: dict[str, Any] = declared if isinstance(declared, dict) else {}
        listed = schema.get("required")
        required = (
            [name for name in listed if isinstance(name, str)] if isinstance(listed, list) else []
        )
        winding_down = depth > WIND_DOWN_DEPTH
        result: dict[str, Any] = {}
        for name, subschema in properties.items():
            if not winding_down or name in required:
                result[name] = self.value(subschema, f"{path}/{name}", depth + 1)
        extra = schema.get("additionalProperties", True)
        for name in required:
            if name not in result:
                result[name] = self.value(extra, f"{path}/{name}", depth + 1)
        return result

    def _array(self, schema: dict[str, Any], path: str, depth: int) -> list[Any]:
        fewest = keyword_count(schema.get("minItems")) or 0
        most = keyword_count(schema.get("maxItems"))
        count = fewest if depth > WIND_DOWN_DEPTH else max(fewest, 1 + self._pick(path, 3))
        declared_prefix = schema.get("prefixItems")
        prefix: list[Any] = declared_prefix if isinstance(declared_prefix, list) else []
        items = schema.get("items", {})
        if items is False:
            most = len(prefix) if most is None else min(most, len(prefix))
        if most is not None:
            count = min(count, most)
        result: list[Any] = []
        for index in range(count):
            item_schema = prefix[index] if index < len(prefix) else items
            item = self.value(item_schema, f"{path}/{index}", depth + 1)
            if not (schema.get("uniqueItems") is True and item in result):
                result.append(item)
        return result

    def _string(self, schema: dict[str, Any]) -> str:
        fmt = schema.get("format")
        text = _FORMATS.get(fmt, self._text) if isinstance(fmt, str) else self._text
        if fmt == "uuid":
            d = self._digest
            text = f"{d[:8]}-{d[8:12]}-4{d[13:16]}-8{d[17:20]}-{d[20:32]}"
        elif fmt == "uri":
            text = f"https://example.com/sim/{self._digest[:10]}"
        shortest = keyword_count(schema.get("minLength")) or 0
        if len(text) < shortest:
            text += "." * (shortest - len(text))
        longest = keyword_count(schema.get("maxLength"))
        return text if longest is None else text[:longest]

    def _integer(self, schema: dict[str, Any], path: str) -> int:
        low, high = schema_bounds(schema)
        lowest = None if low is None else math.floor(low[0]) + 1 if low[1] else math.ceil(low[0])
        highest = (
            None if high is None else math.ceil(high[0]) - 1 if high[1] else math.floor(high[0])
        )
        window = _window(lowest, highest)
        step = keyword_count(schema.get("multipleOf")) or 1
        first, last = -(-int(window[0]) // step), int(window[1]) // step
        if first > last:
            raise UnsatisfiableSchema(f"no integer fits the bounds at {path or '/'}")
        return (first + self._pick(path, last - first + 1)) * step

    def _number(self, schema: dict[str, Any], path: str) -> float:
        low, high = schema_bounds(schema)
        low_value, high_value = _window(
            None if low is None else float(low[0]), None if high is None else float(high[0])
        )
        if low_value > high_value:
            raise UnsatisfiableSchema(f"no number lies within the bounds at {path or '/'}")
        share = self._pick(path, 1001) / 1000
        value = round(low_value + share * (high_value - low_value), 2)
        value = min(max(value, low_value), high_value)
        touches_exclusive = (low is not None and low[1] and value <= low_value) or (
            high is not None and high[1] and value >= high_value
        )
        return (low_value + high_value) / 2 if touches_exclusive else value

    def _enum_member(self, members: Any, path: str) -> Any:
        if not isinstance(members, list) or not members:
            raise UnsatisfiableSchema(f"the 'enum' at {path or '/'} lists no value")
        return members[self._pick(path, len(members))]

    def _choose(self, options: Any, path: str, depth: int) -> Any:
        if not isinstance(options, list) or not options:
            raise UnsatisfiableSchema(f"'anyOf' or 'oneOf' at {path or '/'} lists no schema")
        if depth > WIND_DOWN_DEPTH:
            # A recursive schema ends where an option stops referring onwards.
            plain = [option for option in options if "$ref" not in orjson.dumps(option).decode()]
            if plain:
                return plain[0]
        return options[0]

    def _merge(self, schema: dict[str, Any]) -> dict[str, Any]:
        merged = {key: value for key, value in schema.items() if key != "allOf"}
        for part in schema["allOf"]:
            while isinstance(part, dict) and "$ref" in part:
                part = self._resolve(part["$ref"])
            if not isinstance(part, dict):
                raise UnsatisfiableSchema("'allOf' holds a schema that is not an object")
            for key, value in part.items():
                if key == "properties" and isinstance(value, dict):
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required" and isinstance(value, list):
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged.setdefault(key, value)
        return merged

    def _resolve(self, reference: Any) -> Any:
        if not isinstance(reference, str) or not reference.startswith("#"):
            raise UnsatisfiableSchema(
                f"only local references such as '#/$defs/Name' are supported, got {reference!r}"
            )
        target: Any = self._root
        for raw_part in reference.removeprefix("#").strip("/").split("/"):
            if raw_part == "":
                continue
            part = raw_part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise UnsatisfiableSchema(f"the reference {reference!r} points to nothing")
        return target

    def _pick(self, path: str, choices: int) -> int:
        """A number in range(choices) fixed by the request digest and the place in the value."""
        seed = hashlib.sha256(f"{self._digest}:{path}".encode()).hexdigest()
        return int(seed[:12], 16) % choices


def _implied_type(schema: dict[str, Any]) -> str:
    """The type an untyped schema's keywords imply; free text when they imply none."""
    if any(key in schema for key in ("properties", "required", "additionalProperties")):
        return "object"
    if any(key in schema for key in ("items", "prefixItems", "minItems", "maxItems")):
        return "array"
    if any(key in schema for key in ("minimum", "maximum", "exclusiveMinimum", "multipleOf")):
        return "number"
    return "string"


def _window(low: float | None, high: float | None) -> tuple[float, float]:
    """The bounds to choose within: a given one, or a span of DEFAULT_RANGE beside it."""
    if low is None and high is None:
        return 0, DEFAULT_RANGE
    if low is None:
        assert high is not None
        return high - DEFAULT_RANGE, high
    if high is None:
        return low, low + DEFAULT_RANGE
    return low, high
