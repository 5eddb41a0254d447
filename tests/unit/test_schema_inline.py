"""The inline schema form, read into the JSON Schema it stands for."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.prepare.schema_inline import SCALARS, InlineSchemaError, inline_schema


def test_the_issue_example_reads_as_a_strict_object_schema() -> None:
    schema = inline_schema("label: positive|negative|neutral, score: int, reason: str")
    assert schema == {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
            "score": {"type": "integer"},
            "reason": {"type": "string"},
        },
        "required": ["label", "score", "reason"],
        "additionalProperties": False,
    }


def test_lists_and_nullable_fields() -> None:
    schema = inline_schema("tags: list[a|b], weights: list[float], note: str?, mood: up|down?")
    properties = schema["properties"]
    assert properties["tags"] == {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}
    assert properties["weights"] == {"type": "array", "items": {"type": "number"}}
    assert properties["note"] == {"type": ["string", "null"]}
    assert properties["mood"] == {"type": ["string", "null"], "enum": ["up", "down", None]}
    assert schema["required"] == ["tags", "weights", "note", "mood"]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "names no field"),
        ("label", "needs a type"),
        ("label:", "needs a type"),
        ("9lives: int", "not a field name"),
        ("a: int, a: str", "given twice"),
        ("score: integr", "'integr' is not a type"),
        ("mood: up|up", "is not a type"),
    ],
)
def test_mistakes_name_the_field_and_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(InlineSchemaError, match=complaint):
        inline_schema(text)


names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
kinds = st.sampled_from(sorted(SCALARS))


@given(st.dictionaries(names, kinds, min_size=1, max_size=8))
def test_any_list_of_fields_gives_each_field_its_type_in_order(fields: dict[str, str]) -> None:
    text = ", ".join(f"{name}: {kind}" for name, kind in fields.items())
    schema = inline_schema(text)
    assert schema["required"] == list(fields)
    assert {n: p["type"] for n, p in schema["properties"].items()} == {
        name: SCALARS[kind] for name, kind in fields.items()
    }
