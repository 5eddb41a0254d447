"""The Arrow type of the `output` column when answers follow a JSON Schema (pure; no I/O).

With `--schema`, Parquet results get a typed `output` column, so DuckDB can run
`SELECT output.label, count(*) ... GROUP BY 1` at once:

    string, string enum/const   -> string       array with `items` -> list of the item's type
    integer                     -> int64        object with `properties` -> struct, fields in
    number                      -> double         the declared order, nested the same way
    boolean                     -> bool         [X, "null"] / anyOf [X, null] -> X's type

A part of the schema that has no single Arrow type (an object without `properties`,
a mixed anyOf, several non-null types, no type at all, a recursive `$ref`) becomes a
string column holding the value's JSON text; null stays null. Only local `$ref`s
(`#/$defs/...`, `#/definitions/...`, any `#/...` pointer) are followed.

`OutputShape.fit` turns a value that validated into one Arrow stores as it is under
`OutputShape.type`. It has work to do only where the schema has JSON text parts (the text
is made here) or `number` fields (an int is made a float: Arrow refuses an int past 2**53
for a double column rather than round it). Otherwise it is the identity and
`needs_fitting` is False, so a writer can skip it for every row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pyarrow as pa

from pipeline.core.jsonio import dumps

Fit = Callable[[Any], Any]

_SCALARS: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
}


@dataclass(frozen=True)
class OutputShape:
    """The `output` column's Arrow type, and how to make a validated answer fit it."""

    type: pa.DataType
    fitter: Fit | None = field(default=None, repr=False)  # None: values fit as they are
    json_text_fields: tuple[str, ...] = ()  # where JSON text is stored: "" the whole, "a.b[]"

    @property
    def needs_fitting(self) -> bool:
        return self.fitter is not None

    def fit(self, value: Any) -> Any:
        return value if self.fitter is None else self.fitter(value)


def output_shape(schema: Mapping[str, Any] | bool) -> OutputShape:
    return _Mapper(schema).shape(schema, "", ("#",))  # the root is being mapped: "#" recurs


def json_text(value: Any) -> str | None:
    """The value as compact JSON; None (JSON null) stays None, so the column holds SQL NULL."""
    if value is None:
        return None
    try:
        return dumps(value).decode()
    except TypeError:  # orjson refuses integers past 64 bits; the standard library does not
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _as_float(value: Any) -> Any:
    return float(value) if type(value) is int else value


class _Mapper:
    def __init__(self, root: Mapping[str, Any] | bool) -> None:
        self._root = root

    def shape(self, node: Any, path: str, refs: tuple[str, ...]) -> OutputShape:
        if not isinstance(node, Mapping):
            return _json_text(path)  # `true` (anything) or `false` (nothing) or not a schema
        if "$ref" in node:
            return self._ref(node["$ref"], path, refs)
        if "type" in node:
            return self._typed(node, path, refs)
        if "const" in node:
            return _of_values([node["const"]], path)
        if "enum" in node and isinstance(node["enum"], list):
            return _of_values(node["enum"], path)
        for keyword in ("anyOf", "oneOf"):
            if isinstance(node.get(keyword), list):
                return self._union(node[keyword], path, refs)
        all_of = node.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1:
            return self.shape(all_of[0], path, refs)
        return _json_text(path)

    def _ref(self, ref: Any, path: str, refs: tuple[str, ...]) -> OutputShape:
        if not isinstance(ref, str) or ref in refs:  # a recursive type has no Arrow type
            return _json_text(path)
        target = self._resolve(ref)
        return _json_text(path) if target is None else self.shape(target, path, (*refs, ref))

    def _resolve(self, ref: str) -> Any:
        """The node a local JSON pointer (`#/$defs/Label`) names; None for any other ref."""
        if ref != "#" and not ref.startswith("#/"):
            return None
        node: Any = self._root
        for token in ref[2:].split("/") if ref != "#" else []:
            key = unquote(token).replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                return None
        return node

    def _typed(self, node: Mapping[str, Any], path: str, refs: tuple[str, ...]) -> OutputShape:
        kinds = node["type"] if isinstance(node["type"], list) else [node["type"]]
        kinds = [kind for kind in kinds if kind != "null"]
        if not all(isinstance(kind, str) for kind in kinds):
            return _json_text(path)
        if set(kinds) == {"integer", "number"}:
            kinds = ["number"]  # every integer is a number too
        if not kinds:
            return OutputShape(pa.string())  # only null: an all-null column
        if len(kinds) > 1:
            return _json_text(path)
        kind = kinds[0]
        if kind == "array":
            return self._array(node, path, refs)
        if kind == "object":
            return self._object(node, path, refs)
        if kind not in _SCALARS:
            return _json_text(path)
        return OutputShape(_SCALARS[kind], _as_float if kind == "number" else None)

    def _array(self, node: Mapping[str, Any], path: str, refs: tuple[str, ...]) -> OutputShape:
        if "prefixItems" in node or isinstance(node.get("items"), list):
            return _json_text(path)  # a tuple: its positions may hold different types
        item = self.shape(node.get("items", True), path + "[]", refs)
        if item.fitter is None:
            return OutputShape(pa.list_(item.type), None, item.json_text_fields)
        fit_item = item.fitter

        def fit(value: Any) -> Any:
            return [fit_item(v) for v in value] if isinstance(value, list) else value

        return OutputShape(pa.list_(item.type), fit, item.json_text_fields)

    def _object(self, node: Mapping[str, Any], path: str, refs: tuple[str, ...]) -> OutputShape:
        properties = node.get("properties")
        if not isinstance(properties, Mapping) or not properties:
            return _json_text(path)  # a struct needs its fields named (and at least one)
        fields = {
            name: self.shape(sub, f"{path}.{name}" if path else name, refs)
            for name, sub in properties.items()
        }
        arrow = pa.struct([(name, shape.type) for name, shape in fields.items()])
        text = tuple(t for shape in fields.values() for t in shape.json_text_fields)
        fitters = {name: shape.fitter for name, shape in fields.items() if shape.fitter}
        return OutputShape(arrow, _struct_fitter(fitters) if fitters else None, text)

    def _union(self, options: list[Any], path: str, refs: tuple[str, ...]) -> OutputShape:
        shapes = [self.shape(option, path, refs) for option in options if not _null_only(option)]
        if not shapes:
            return OutputShape(pa.string())  # only null: an all-null column
        if len(shapes) == 1:
            return shapes[0]
        types = {shape.type for shape in shapes}
        if len(types) == 1 and not any(shape.needs_fitting for shape in shapes):
            return shapes[0]  # say, two string enums
        if types == {pa.int64(), pa.float64()}:
            return OutputShape(pa.float64(), _as_float)
        return _json_text(path)


def _struct_fitter(fitters: dict[str, Fit]) -> Fit:
    items = tuple(fitters.items())

    def fit(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        fitted = value
        for name, fit_field in items:
            if name in value:
                new = fit_field(value[name])
                if new is not value[name]:
                    if fitted is value:
                        fitted = dict(value)  # copied only when a field changes
                    fitted[name] = new
        return fitted

    return fit


def _null_only(node: Any) -> bool:
    """A schema only null matches, as nullable unions write it."""
    if not isinstance(node, Mapping):
        return False
    return (
        node.get("type") in ("null", ["null"])
        or ("const" in node and node["const"] is None)
        or node.get("enum") == [None]
    )


def _of_values(values: list[Any], path: str) -> OutputShape:
    """An enum or const without a type: typed by its values when they share one kind."""
    present = [value for value in values if value is not None]
    if present and all(isinstance(value, str) for value in present):
        return OutputShape(pa.string())
    if present and all(isinstance(value, bool) for value in present):
        return OutputShape(pa.bool_())
    if present and all(type(value) is int for value in present):
        return OutputShape(pa.int64())  # 2.0 matches 2 too, and Arrow stores it as 2
    if present and all(type(value) in (int, float) for value in present):
        return OutputShape(pa.float64(), _as_float)  # never with a bool: Arrow would make it 1.0
    return _json_text(path)


def _json_text(path: str) -> OutputShape:
    return OutputShape(pa.string(), json_text, (path,))
