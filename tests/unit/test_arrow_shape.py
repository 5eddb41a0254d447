"""The typed `output` column of Parquet results: JSON Schemas mapped to Arrow types, and
answers that validated against a schema stored under its type and read back unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from pipeline.prepare.schema_inline import inline_schema
from pipeline.write.arrow_shape import OutputShape, json_text, output_shape

ISSUE_EXAMPLE = "label: positive|negative|neutral, score: int, reason: str"


def parquet_round_trip(shape: OutputShape, values: list[Any]) -> list[Any]:
    """The values as a Parquet `output` column, written and read back."""
    schema = pa.schema([("output", shape.type)])
    table = pa.Table.from_pylist([{"output": shape.fit(v)} for v in values], schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    read = pq.read_table(pa.BufferReader(sink.getvalue()))
    assert read.schema.field("output").type == shape.type
    return list(read.column("output").to_pylist())


@dataclass(frozen=True)
class JsonText:
    """Stands for a string column value that must be the JSON text of `value`."""

    value: Any


def same(read: Any, expected: Any) -> bool:
    """Equal values of the same types (True is not 1, 1.0 is not 1)."""
    if isinstance(expected, JsonText):
        return isinstance(read, str) and same(json.loads(read), expected.value)
    if isinstance(expected, dict):
        return (
            isinstance(read, dict)
            and list(read) == list(expected)
            and all(same(read[k], expected[k]) for k in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(read, list)
            and len(read) == len(expected)
            and all(same(r, e) for r, e in zip(read, expected, strict=True))
        )
    return type(read) is type(expected) and read == expected


# --- the mapping, case by case ---------------------------------------------------------

NULLABLE_TEXT = {"anyOf": [{"type": "object"}, {"type": "null"}]}


@pytest.mark.parametrize(
    ("schema", "arrow"),
    [
        ({"type": "string"}, pa.string()),
        ({"type": "string", "enum": ["a", "b"]}, pa.string()),
        ({"enum": ["a", "b", None]}, pa.string()),
        ({"const": "only"}, pa.string()),
        ({"type": "integer"}, pa.int64()),
        ({"type": "number"}, pa.float64()),
        ({"type": ["integer", "number"]}, pa.float64()),
        ({"anyOf": [{"type": "integer"}, {"type": "number"}]}, pa.float64()),
        ({"enum": [1, 2, 3]}, pa.int64()),
        ({"enum": [0.5, 1]}, pa.float64()),
        ({"type": "boolean"}, pa.bool_()),
        ({"enum": [True]}, pa.bool_()),
        ({"type": "array", "items": {"type": "integer"}}, pa.list_(pa.int64())),
        ({"type": ["string", "null"]}, pa.string()),
        ({"anyOf": [{"type": "number"}, {"type": "null"}]}, pa.float64()),
        ({"oneOf": [{"const": None}, {"type": "boolean"}]}, pa.bool_()),
        ({"anyOf": [{"enum": ["a"]}, {"enum": ["b"]}]}, pa.string()),
        ({"allOf": [{"type": "integer"}]}, pa.int64()),
        ({"type": "null"}, pa.string()),
        # no single Arrow type: JSON text
        ({"type": "object"}, pa.string()),
        ({"type": "object", "properties": {}}, pa.string()),
        ({"type": "object", "additionalProperties": {"type": "integer"}}, pa.string()),
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, pa.string()),
        ({"type": ["string", "integer"]}, pa.string()),
        ({"enum": ["a", 1]}, pa.string()),
        ({"enum": [True, 1.5]}, pa.string()),  # never a double: Arrow would store True as 1.0
        ({}, pa.string()),
        (True, pa.string()),
        ({"properties": {"a": {"type": "string"}}}, pa.string()),  # no type: not only objects
        ({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]}, pa.string()),
        ({"$ref": "https://example.com/label.json"}, pa.string()),  # only local refs followed
        ({"$ref": "#/$defs/missing"}, pa.string()),
        ({"type": "array"}, pa.list_(pa.string())),  # items of any kind: each its JSON text
    ],
)
def test_each_schema_form_maps_to_its_arrow_type(schema: Any, arrow: pa.DataType) -> None:
    assert output_shape(schema).type == arrow


def test_objects_become_structs_with_the_properties_in_declared_order() -> None:
    schema = {
        "type": "object",
        "properties": {
            "zeta": {"type": "string"},
            "alpha": {
                "type": ["object", "null"],
                "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
            },
            "meta": NULLABLE_TEXT,
        },
    }
    shape = output_shape(schema)
    assert shape.type == pa.struct(
        [
            ("zeta", pa.string()),
            ("alpha", pa.struct([("tags", pa.list_(pa.string()))])),
            ("meta", pa.string()),
        ]
    )
    assert shape.json_text_fields == ("meta",)


def test_local_refs_are_followed_as_pydantic_writes_them() -> None:
    schema = {
        "$defs": {
            "Label": {"enum": ["spam", "ham"], "title": "Label", "type": "string"},
            "Span": {
                "type": "object",
                "properties": {"start": {"type": "integer"}, "end": {"type": "integer"}},
                "required": ["start", "end"],
            },
        },
        "definitions": {"Score": {"type": "number"}},
        "type": "object",
        "properties": {
            "label": {"$ref": "#/$defs/Label"},
            "spans": {"type": "array", "items": {"$ref": "#/$defs/Span"}},
            "best": {"anyOf": [{"$ref": "#/$defs/Span"}, {"type": "null"}], "default": None},
            "score": {"$ref": "#/definitions/Score"},
        },
        "required": ["label", "spans", "best", "score"],
    }
    span = pa.struct([("start", pa.int64()), ("end", pa.int64())])
    assert output_shape(schema).type == pa.struct(
        [("label", pa.string()), ("spans", pa.list_(span)), ("best", span), ("score", pa.float64())]
    )


def test_a_recursive_ref_is_stored_as_json_text_where_it_recurs() -> None:
    schema = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
                "required": ["name", "children"],
            }
        },
        "$ref": "#/$defs/Node",
    }
    shape = output_shape(schema)
    assert shape.type == pa.struct([("name", pa.string()), ("children", pa.list_(pa.string()))])
    assert shape.json_text_fields == ("children[]",)
    tree = {"name": "root", "children": [{"name": "leaf", "children": []}]}
    assert Draft202012Validator(schema).is_valid(tree)
    [read] = parquet_round_trip(shape, [tree])
    assert same(read, {"name": "root", "children": [JsonText(tree["children"][0])]})


def test_a_ref_to_the_whole_schema_is_recursive_too() -> None:
    schema = {"type": "object", "properties": {"next": {"$ref": "#"}}}
    assert output_shape(schema).type == pa.struct([("next", pa.string())])


def test_a_top_level_schema_need_not_be_an_object() -> None:
    assert output_shape({"type": "array", "items": {"type": "number"}}).type == pa.list_(
        pa.float64()
    )
    assert output_shape({"enum": ["yes", "no"]}).type == pa.string()


# --- fitting ------------------------------------------------------------------------------


def test_the_common_case_needs_no_fitting_and_fit_returns_the_value_itself() -> None:
    shape = output_shape(inline_schema(ISSUE_EXAMPLE + ", tags: list[a|b], note: str?"))
    assert not shape.needs_fitting
    value = {"label": "neutral", "score": 3, "reason": "fine", "tags": ["a"], "note": None}
    assert shape.fit(value) is value


def test_json_text_holds_the_value_and_null_stays_null() -> None:
    shape = output_shape({"type": "object"})
    assert shape.needs_fitting
    assert shape.json_text_fields == ("",)
    assert shape.fit({"a": [1, 2.5, None, "é"]}) == '{"a":[1,2.5,null,"é"]}'
    assert shape.fit("text") == '"text"'
    assert shape.fit(None) is None


def test_integers_past_64_bits_still_become_json_text() -> None:
    huge = {"n": 2**80, "m": -(2**70)}
    assert json.loads(json_text(huge) or "") == huge


def test_numbers_take_integers_a_double_cannot_hold_exactly() -> None:
    """Why a `number` field needs fitting: Arrow refuses such an int rather than round it."""
    shape = output_shape(inline_schema("weight: float"))
    big = {"weight": 2**53 + 1}
    assert Draft202012Validator(inline_schema("weight: float")).is_valid(big)
    with pytest.raises(pa.ArrowInvalid):
        pa.array([big], type=shape.type)
    assert shape.needs_fitting
    assert parquet_round_trip(shape, [big]) == [{"weight": float(2**53 + 1)}]


def test_fitting_a_struct_leaves_the_answer_it_was_given_unchanged() -> None:
    shape = output_shape(
        {"type": "object", "properties": {"n": {"type": "number"}, "meta": {"type": "object"}}}
    )
    answer = {"n": 1, "meta": {"k": "v"}}
    assert shape.fit(answer) == {"n": 1.0, "meta": '{"k":"v"}'}
    assert answer == {"n": 1, "meta": {"k": "v"}}


# --- generated schemas, and values that validate against them -----------------------------


@dataclass(frozen=True)
class Node:
    """A schema, the Arrow type it must map to, values it accepts, and how they read back."""

    schema: Any
    arrow: pa.DataType
    values: st.SearchStrategy[Any]
    back: Callable[[Any], Any]


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
words = st.text(min_size=1, max_size=6)
# Ints past 2**53 too: a double column must take them, though not exactly.
inexact = st.integers(2**53 + 1, 2**63) | st.integers(-(2**63), -(2**53) - 1)
numbers = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53) | inexact


def as_text(value: Any) -> Any:
    return None if value is None else JsonText(value)


def _identity(value: Any) -> Any:
    return value


@st.composite
def leaves(draw: st.DrawFn) -> Node:
    kind = draw(st.sampled_from(["string", "enum", "const", "integer", "number", "boolean", "any"]))
    if kind == "string":
        return Node({"type": "string"}, pa.string(), st.text(), _identity)
    if kind == "enum":
        choices = draw(st.lists(words, min_size=1, max_size=4, unique=True))
        typed = {"type": "string"} if draw(st.booleans()) else {}
        return Node({**typed, "enum": choices}, pa.string(), st.sampled_from(choices), _identity)
    if kind == "const":
        word = draw(words)
        return Node({"const": word}, pa.string(), st.just(word), _identity)
    if kind == "integer":
        # Whole floats are integers to JSON Schema; Arrow stores them as such.
        whole = st.integers(-(2**53), 2**53).map(float)
        ints = st.integers(-(2**63), 2**63 - 1) | whole
        return Node({"type": "integer"}, pa.int64(), ints, int)
    if kind == "number":
        forms = [{"type": "number"}, {"type": ["integer", "number"]}]
        forms.append({"anyOf": [{"type": "integer"}, {"type": "number"}]})
        return Node(draw(st.sampled_from(forms)), pa.float64(), numbers, float)
    if kind == "boolean":
        return Node({"type": "boolean"}, pa.bool_(), st.booleans(), _identity)
    return draw(untyped())


@st.composite
def untyped(draw: st.DrawFn) -> Node:
    """Schemas with no single Arrow type, stored as the value's JSON text."""
    forms = [
        ({}, json_values),
        (True, json_values),
        ({"type": "object"}, st.dictionaries(st.text(max_size=5), json_values, max_size=3)),
        ({"type": ["string", "integer"]}, st.text() | st.integers()),
        (
            {"anyOf": [{"type": "boolean"}, {"type": "array"}]},
            st.booleans() | st.lists(json_values, max_size=3),
        ),
    ]
    schema, values = draw(st.sampled_from(forms))
    return Node(schema, pa.string(), values, as_text)


def arrays(item: Node) -> Node:
    return Node(
        {"type": "array", "items": item.schema},
        pa.list_(item.arrow),
        st.lists(item.values, max_size=3),
        lambda value: [item.back(v) for v in value],
    )


@st.composite
def objects(draw: st.DrawFn, children: st.SearchStrategy[Node]) -> Node:
    names = draw(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=4, unique=True))
    fields = {name: draw(children) for name in names}
    required = [name for name in names if draw(st.booleans())]
    schema = {
        "type": "object",
        "properties": {name: node.schema for name, node in fields.items()},
        "required": required,
        "additionalProperties": False,
    }
    values = st.fixed_dictionaries(
        {name: fields[name].values for name in required},
        optional={name: node.values for name, node in fields.items() if name not in required},
    )

    def back(value: dict[str, Any]) -> dict[str, Any]:
        return {
            name: node.back(value[name]) if name in value else None for name, node in fields.items()
        }

    return Node(schema, pa.struct([(n, f.arrow) for n, f in fields.items()]), values, back)


@st.composite
def nullable(draw: st.DrawFn, node: Node) -> Node:
    schema = node.schema
    if isinstance(schema, dict) and isinstance(schema.get("type"), str) and draw(st.booleans()):
        wider = {**schema, "type": [schema["type"], "null"]}
        if "enum" in wider:
            wider["enum"] = [*wider["enum"], None]
    else:
        wider = {"anyOf": [schema, {"type": "null"}]}

    def back(value: Any) -> Any:
        return None if value is None else node.back(value)

    return Node(wider, node.arrow, st.none() | node.values, back)


@st.composite
def referenced(draw: st.DrawFn, node: Node, defs: dict[str, dict[str, Any]]) -> Node:
    """The node's schema moved into the root's $defs (or definitions), named by a $ref."""
    container = draw(st.sampled_from(["$defs", "definitions"]))
    name = f"shape/{len(defs.setdefault(container, {}))}"  # the "/" is escaped as ~1
    defs[container][name] = node.schema
    ref = f"#/{container}/{name.replace('/', '~1')}"
    return Node({"$ref": ref}, node.arrow, node.values, node.back)


def nodes(depth: int, defs: dict[str, dict[str, Any]]) -> st.SearchStrategy[Node]:
    if depth == 0:
        return leaves()
    inner = nodes(depth - 1, defs)
    plain = leaves() | inner.map(arrays) | objects(inner)
    return st.one_of(
        plain,
        plain.flatmap(nullable),
        plain.flatmap(lambda node: referenced(node, defs)),
    )


def with_defs(schema: Any, defs: dict[str, dict[str, Any]]) -> Any:
    if not defs:
        return schema
    return {**(schema if isinstance(schema, dict) else {}), **defs}


@given(st.data())
def test_values_that_validate_are_stored_under_the_schema_type_and_read_back(
    data: st.DataObject,
) -> None:
    defs: dict[str, dict[str, Any]] = {}
    node = data.draw(nodes(3, defs))
    schema = with_defs(node.schema, defs)
    validator = Draft202012Validator(schema)
    values = data.draw(st.lists(node.values, min_size=1, max_size=4))
    assert all(validator.is_valid(v) for v in values)

    shape = output_shape(schema)
    assert shape.type == node.arrow
    read = parquet_round_trip(shape, values)
    assert same(read, [node.back(v) for v in values])


@given(st.data())
def test_values_needing_no_fitting_go_into_arrow_as_they_are(data: st.DataObject) -> None:
    defs: dict[str, dict[str, Any]] = {}
    node = data.draw(nodes(2, defs))
    shape = output_shape(with_defs(node.schema, defs))
    values = data.draw(st.lists(node.values, min_size=1, max_size=4))
    if not shape.needs_fitting:
        assert all(shape.fit(v) is v for v in values)
        pa.array(values, type=shape.type)


@given(json_values)
def test_json_text_parses_back_to_the_value(value: Any) -> None:
    text = output_shape({}).fit(value)
    assert text is None if value is None else same(json.loads(text), value)


# --- as users query it ----------------------------------------------------------------------


def test_duckdb_groups_by_a_field_of_the_output_at_once(tmp_path: Path) -> None:
    schema = inline_schema(ISSUE_EXAMPLE)
    schema["properties"]["extra"] = {"type": "object"}
    schema["required"].append("extra")
    shape = output_shape(schema)
    answers = [
        {"label": "positive", "score": 5, "reason": "great", "extra": {"lang": "en"}},
        {"label": "negative", "score": 1, "reason": "broke", "extra": {"lang": "de"}},
        {"label": "positive", "score": 4.0, "reason": "good", "extra": {"lang": "en"}},
    ]
    validator = Draft202012Validator(schema)
    assert all(validator.is_valid(answer) for answer in answers)
    rows = [{"id": i, "output": shape.fit(answer)} for i, answer in enumerate(answers)]
    table = pa.Table.from_pylist(
        rows, schema=pa.schema([("id", pa.int64()), ("output", shape.type)])
    )
    path = tmp_path / "results.parquet"
    pq.write_table(table, path)

    with duckdb.connect() as db:
        counts = db.execute(
            "SELECT output.label, count(*), sum(output.score) FROM read_parquet(?) "
            "GROUP BY 1 ORDER BY 1",
            [str(path)],
        ).fetchall()
        extras = db.execute(
            "SELECT output.extra, output.extra::JSON ->> 'lang' FROM read_parquet(?) ORDER BY id",
            [str(path)],
        ).fetchall()
    assert counts == [("negative", 1, 1), ("positive", 2, 9)]
    assert [json.loads(text) for text, _ in extras] == [a["extra"] for a in answers]
    assert [lang for _, lang in extras] == ["en", "de", "en"]
