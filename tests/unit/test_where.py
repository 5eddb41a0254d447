"""`--where`: the expression language, compiled once and evaluated per item without eval.

Generated expressions are checked against a reference computed here the plain
Python way; generated text (arbitrary, token soup, and hostile forms placed in
valid expressions) can only ever compile, or raise a WhereError naming the right
column; and in a child process watched by an audit hook, nothing any of it does
opens a file, imports a module or executes code.
"""

from __future__ import annotations

import ast
import contextlib
import json
import operator
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipeline.core.errors import UsageError
from pipeline.prepare.where import (
    MAX_DEPTH,
    MAX_LENGTH,
    WhereError,
    WhereEvalError,
    WhereSyntaxError,
    compile_where,
)

REVIEW = {
    "rating": 2,
    "lang": "en",
    "text": "RE: the parcel came late and the box was crushed",
    "label": "a",
    "meta": {"source": "bot", "odd key": 5, "lang": "en"},
    "tags": ["late", "damaged"],
    "steps": {"label": {"output": {"label": "negative", "score": 0.2}}},
    "from": "ann@example.com",
}


def matches(text: str, row: dict[str, Any]) -> bool:
    return compile_where(text).matches(row)


# The examples from the issue and the brief.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rating <= 2", True),
        ('lang == "en" and len(text) > 20', True),
        ('label in ["a", "b"]', True),
        ('text.startswith("RE:")', True),
        ('not (meta.source == "bot")', False),
        ('steps.label.output.label == "negative"', True),
        ("steps.label.output.score < 0.5", True),
        ('tags[0] == "late" and tags[-1] == "damaged"', True),
        ('meta["odd key"] == 5', True),
        ('field("from").endswith("@example.com")', True),
        ("1 < rating < 5", True),
        ("rating > 2 or lower(meta.lang) == 'en'", True),
        ('text.lower().startswith(["fw:", "re:"])', True),
        ('"crushed" in text and "late" in tags and "source" in meta', True),
        ("(rating * 2 + 1) % 5 == 0 and rating / 4 == 0.5 and -rating == -2", True),
        ("abs(-rating) == int('2') and float(rating) == 2.0 and str(rating) == '2'", True),
        ("upper(lang) == 'EN' and lang.upper() == 'EN' and '  x '.strip() == 'x'", True),
        ("rating == True or rating == true", False),  # booleans are not numbers
        ("label not in ('b', 'c') and meta.missing is null and lang is not None", True),
    ],
)
def test_examples_select_as_documented(text: str, expected: bool) -> None:
    assert matches(text, REVIEW) is expected


def test_fields_names_the_top_level_fields_read() -> None:
    where = compile_where('steps.label.output.label == "x" or len(text) > rating or field("a b")')
    assert where.fields == frozenset({"steps", "text", "rating", "a b"})
    assert compile_where("true and 1 < 2").fields == frozenset()


def test_fields_with_awkward_names_are_reached_with_field() -> None:
    row = {"true": 1, "null": 2, "from": 3, "review text": 4, "len": 5}
    assert matches(
        'field("true") + field("null") + field("from") + field("review text") == 10', row
    )
    assert matches("len == 5 and true and null is null", row)  # true and null stay literals


def test_syntax_errors_are_usage_errors_and_name_their_origin() -> None:
    with pytest.raises(WhereSyntaxError) as caught:
        compile_where("rating >", label="steps.label.when")
    assert isinstance(caught.value, UsageError)
    assert caught.value.exit_code == 2
    assert caught.value.message == "steps.label.when, column 9: invalid syntax"
    assert str(caught.value) == caught.value.message
    assert issubclass(WhereEvalError, WhereError)
    assert not issubclass(WhereEvalError, UsageError)  # a per-item problem, for the caller


# Null is SQL-like: unknown compares false, and flows through functions as null.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("missing < 1", False),
        ("missing >= 1", False),
        ("null < null", False),
        ("missing == null", True),
        ("missing != null", False),
        ("missing == 1", False),
        ("missing != 1", True),
        ("missing is null", True),
        ("missing is not null", False),
        ("not missing", True),
        ("missing + 1 is null", True),
        ("-missing is null", True),
        ("len(missing) is null", True),
        ("lower(missing) is null", True),
        ("missing.startswith('a') is null", True),
        ("text.startswith(missing) is null", True),
        ("missing.deeper.still is null", True),
        ("tags[9] is null and tags[-9] is null and meta['nope'] is null", True),
        ("missing in ['a']", False),
        ("missing not in ['a']", True),
        ("missing in [1, null]", True),
        ("'a' in missing", False),
        ("'a' not in missing", False),
        ("missing in 'abc'", False),
        ("missing not in 'abc'", False),
        ("len(missing) > 3", False),
    ],
)
def test_null_semantics(text: str, expected: bool) -> None:
    assert matches(text, {"text": "abc", "tags": [1], "meta": {}}) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("flag == 1", False),
        ("flag == true", True),
        ("one == 1.0", True),
        ("one == '1'", False),
        ("tags == ['x', 2]", True),
        ("tags == ('x', 2)", True),
        ("tags == ['x', 2.0, 3]", False),
        ("meta == meta", True),
        ("1 in [true]", False),
        ("true in [1]", False),
    ],
)
def test_equality_is_by_json_type(text: str, expected: bool) -> None:
    row = {"flag": True, "one": 1, "tags": ["x", 2], "meta": {"a": [1, {"b": None}]}}
    assert matches(text, row) is expected


# Chained comparisons and short-circuits.


optional_ints = st.none() | st.integers(-3, 3)
orderings = st.sampled_from(["<", "<=", ">", ">="])
_ORDERING = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@given(a=optional_ints, b=optional_ints, c=optional_ints, first=orderings, second=orderings)
def test_chained_comparisons_hold_pairwise(
    a: int | None, b: int | None, c: int | None, first: str, second: str
) -> None:
    def holds(op: str, x: int | None, y: int | None) -> bool:
        return x is not None and y is not None and _ORDERING[op](x, y)

    where = compile_where(f"a {first} b {second} c")
    assert where.matches({"a": a, "b": b, "c": c}) is (holds(first, a, b) and holds(second, b, c))


def test_a_chain_stops_at_the_first_false_comparison() -> None:
    assert matches("rating > 5 > text", REVIEW) is False  # 5 > text would be an error
    with pytest.raises(WhereEvalError):
        matches("rating < 5 > text", REVIEW)


def test_and_or_stop_as_soon_as_the_answer_is_known() -> None:
    assert matches("rating > 5 and text < 3", REVIEW) is False
    assert matches("rating < 5 or text < 3", REVIEW) is True
    assert compile_where("nickname or name").value({"name": "Ann"}) == "Ann"


# Errors name the column (in characters, not bytes) of the offending part.


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        ("", 1, "empty"),
        ("rating >", 9, "invalid syntax"),
        ("(rating > 2", 1, "never closed"),
        ("'é' == é é", 10, "invalid syntax"),
        ("é == 'ü' and x.__class__", 16, "__class__"),
        ("    x.__class__", 7, "__class__"),
        ("().__class__.__bases__", 4, "__class__"),
        ("__import__('os').system('id')", 1, "no function __import__"),
        ("text.format(1)", 6, "no method .format"),
        ("text.contains('a')", 6, '"word" in text'),
        ("lambda: 1", 1, "lambda"),
        ("rating > 1 and [c for c in text]", 16, "comprehension"),
        ("x and f'{x}'", 7, "f-string"),
        ("x and (y := 1)", 8, "assignment"),
        ("x if y else z", 1, "if"),
        ("rating ** 2", 8, "operator is not allowed"),
        ("rating  //  2", 9, "operator is not allowed"),
        ("1 << 30", 3, "operator is not allowed"),
        ("'ab' * 3", 6, r"\* works on numbers, not a string"),
        ("text + 'x'", 6, r"\+ works on numbers"),
        ("x and 1 / 0", 9, "division by zero"),
        ("tags[1:2]", 6, "slices"),
        ("tags[True]", 6, "whole number or a quoted key"),
        ("len(a, b)", 1, "len\\(\\) takes one argument, not 2"),
        ("text.strip('x')", 6, "takes no arguments"),
        ("len(x=1)", 5, "no named arguments"),
        ("len(*x)", 5, "unpacking"),
        ("x is 1", 6, "compares only with null"),
        ("b'x' == x", 1, "only strings, numbers"),
        ("{'a': 1}", 1, "object literal"),
        ("~x", 1, "not allowed"),
        ("'abc'.x", 7, "has no fields"),
        ("field(name)", 1, "quoted field name"),
        ("a\0b", 2, "null character"),
        ("ab == \udcff", 7, "lone surrogate"),  # an undecodable byte in a command line
        ("x" * (MAX_LENGTH + 1), MAX_LENGTH + 1, "longer than"),
    ],
)
def test_refusals_name_the_column_of_the_offending_part(
    text: str, column: int, reason: str
) -> None:
    with pytest.raises(WhereSyntaxError) as caught:
        compile_where(text)
    assert (caught.value.line, caught.value.column) == (1, column)
    assert re.search(reason, caught.value.reason), caught.value.reason
    assert caught.value.message.startswith(f"--where, column {column}: ")


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_in_a_multi_line_expression_errors_name_line_and_column(newline: str) -> None:
    text = f"(rating > 2 and{newline}  é.lower() == 'x' and{newline}  é.__dict__)"
    with pytest.raises(WhereSyntaxError) as caught:
        compile_where(text)
    assert (caught.value.line, caught.value.column) == (3, 5)
    assert caught.value.message.startswith("--where, line 3, column 5: ")


@pytest.mark.parametrize(
    ("text", "row", "column", "reason"),
    [
        ("text < 3", {"text": "a"}, 6, "cannot compare a string < a number"),
        ("1 < rating < 'a'", {"rating": 2}, 12, "cannot compare a number < a string"),
        ("é.lower() > 1", {"é": "x"}, 11, "cannot compare a string > a number"),
        ("rating.stars", {"rating": 2}, 8, "a number has no fields"),
        ("tags[0]", {"tags": "abc"}, 6, "a string has no elements"),
        ("tags['a']", {"tags": [1]}, 6, "a list has no fields"),
        ("len(rating) > 1", {"rating": 2}, 1, r"len\(\) needs a string"),
        ("rating.startswith('a')", {"rating": 2}, 8, "works on strings"),
        ("text.startswith(1)", {"text": "a"}, 6, "a string or a list of strings"),
        ("rating / zero", {"rating": 2, "zero": 0}, 8, "division by zero"),
        ("rating % zero", {"rating": 2, "zero": 0.0}, 8, "division by zero"),
        ("rating + text", {"rating": 2, "text": "a"}, 8, r"\+ works on numbers"),
        ("-text", {"text": "a"}, 1, "unary - works on numbers"),
        ("'a' in rating", {"rating": 2}, 5, "`in` needs a list, string or object"),
        ("rating in text", {"rating": 2, "text": "a"}, 8, "looks for a substring"),
        ("int(text) > 1", {"text": "N/A"}, 1, "int\\(\\) cannot read 'N/A'"),
        ("float(text)", {"text": "many"}, 1, "float\\(\\) cannot read"),
        ("str(tags)", {"tags": []}, 1, "str\\(\\) needs a number"),
        ("abs(text)", {"text": "a"}, 1, "abs\\(\\) needs a number"),
        ("  x and lower(x)", {"x": 3}, 9, "lower\\(\\) needs a string"),
    ],
)
def test_evaluation_errors_name_the_column(
    text: str, row: dict[str, Any], column: int, reason: str
) -> None:
    where = compile_where(text)
    with pytest.raises(WhereEvalError) as caught:
        where.matches(row)
    assert (caught.value.line, caught.value.column) == (1, column)
    assert re.search(reason, caught.value.reason), caught.value.reason


# Limits: a hostile expression cannot exhaust the stack, memory or time.


def test_expressions_up_to_the_length_limit_compile() -> None:
    padding = "a" * (MAX_LENGTH - len("x == ''"))
    assert compile_where(f"x == '{padding}'").matches({"x": padding})


def test_nesting_up_to_the_limit_is_evaluated_and_deeper_is_refused() -> None:
    deepest = "not " * (MAX_DEPTH - 1) + "x"
    assert compile_where(deepest).matches({"x": 0}) is (MAX_DEPTH % 2 == 0)
    with pytest.raises(WhereSyntaxError, match=f"nests more than {MAX_DEPTH} levels deep"):
        compile_where("not " + deepest)


@pytest.mark.parametrize(
    "text",
    [
        "-" * (MAX_LENGTH - 1) + "1",  # deeper than Python's parser will go
        "(" * 300 + "x" + ")" * 300,
        "[" * 100 + "]" * 100,
        "a" + ".b" * 1000,
        "x" + " + x" * 900,
        "f(" * 500 + ")" * 500,
    ],
)
def test_deeply_nested_text_is_refused_not_crashed_on(text: str) -> None:
    with pytest.raises(WhereSyntaxError):
        compile_where(text)


# Generated expressions agree with a reference computed the straightforward way.

Reference = Callable[[dict[str, Any]], Any]
Generated = tuple[str, Reference]


def _field(name: str) -> Generated:
    return name, lambda row: row.get(name)


def _literal(value: Any) -> Generated:
    return f"({value!r})", lambda row: value


def _arith(pair: tuple[Generated, Generated], symbol: str) -> Generated:
    (left, lref), (right, rref) = pair
    compute = {"+": operator.add, "-": operator.sub, "*": operator.mul}[symbol]

    def ref(row: dict[str, Any]) -> Any:
        a, b = lref(row), rref(row)
        return None if a is None or b is None else compute(a, b)

    return f"({left} {symbol} {right})", ref


def _by_constant(operand: Generated, symbol: str, divisor: int) -> Generated:
    text, inner = operand
    compute = operator.truediv if symbol == "/" else operator.mod

    def ref(row: dict[str, Any]) -> Any:
        value = inner(row)
        return None if value is None else compute(value, divisor)

    return f"({text} {symbol} {divisor})", ref


def _null_safe(template: str, operand: Generated, act: Callable[[Any], Any]) -> Generated:
    text, inner = operand

    def ref(row: dict[str, Any]) -> Any:
        value = inner(row)
        return None if value is None else act(value)

    return template.format(text), ref


def _compare(pair: tuple[Generated, Generated], symbol: str) -> Generated:
    (left, lref), (right, rref) = pair

    def ref(row: dict[str, Any]) -> Any:
        a, b = lref(row), rref(row)
        if symbol == "==":
            return a == b
        if symbol == "!=":
            return a != b
        if symbol in ("in", "not in"):  # a substring test on strings here
            if a is None or b is None:
                return False
            return (a in b) if symbol == "in" else (a not in b)
        return a is not None and b is not None and _ORDERING[symbol](a, b)

    return f"({left} {symbol} {right})", ref


def _one_of(operand: Generated, choices: list[Any], negated: bool) -> Generated:
    text, inner = operand
    written = ", ".join(repr(choice) for choice in choices)
    keyword = "not in" if negated else "in"
    return f"({text} {keyword} [{written}])", lambda row: (inner(row) in choices) ^ negated


def _is_null(operand: Generated, negated: bool) -> Generated:
    text, inner = operand
    keyword = "is not null" if negated else "is null"
    return f"({text} {keyword})", lambda row: (inner(row) is None) ^ negated


def _logic(operands: list[Generated], keyword: str) -> Generated:
    def ref(row: dict[str, Any]) -> Any:
        value: Any = None
        for _, inner in operands:
            value = inner(row)
            if bool(value) is (keyword == "or"):
                return value
        return value

    return "(" + f" {keyword} ".join(text for text, _ in operands) + ")", ref


def _negation(operand: Generated) -> Generated:
    text, inner = operand
    return f"(not {text})", lambda row: not inner(row)


words = st.text(alphabet="aAb ", max_size=4)
numbers: st.SearchStrategy[Generated] = st.deferred(
    lambda: st.one_of(
        st.integers(-20, 20).map(_literal),
        st.sampled_from(["n", "m"]).map(_field),
        st.just(("obj.k", lambda row: (row.get("obj") or {}).get("k"))),
        st.builds(_arith, st.tuples(numbers, numbers), st.sampled_from(["+", "-", "*"])),
        st.builds(_by_constant, numbers, st.sampled_from(["/", "%"]), st.integers(1, 7)),
        numbers.map(lambda operand: _null_safe("(-{})", operand, operator.neg)),
        strings.map(lambda operand: _null_safe("len({})", operand, len)),
    )
)
strings: st.SearchStrategy[Generated] = st.deferred(
    lambda: st.one_of(
        words.map(_literal),
        st.sampled_from(["s", "t"]).map(_field),
        strings.map(lambda operand: _null_safe("lower({})", operand, str.lower)),
        strings.map(lambda operand: _null_safe("{}.upper()", operand, str.upper)),
        strings.map(lambda operand: _null_safe("{}.strip()", operand, str.strip)),
    )
)
conditions: st.SearchStrategy[Generated] = st.deferred(
    lambda: st.one_of(
        st.builds(_compare, st.tuples(numbers, numbers), st.sampled_from([*_ORDERING, "==", "!="])),
        st.builds(
            _compare,
            st.tuples(strings, strings),
            st.sampled_from([*_ORDERING, "==", "in", "not in"]),
        ),
        st.builds(
            _one_of, numbers, st.lists(st.integers(-5, 5) | st.none(), max_size=4), st.booleans()
        ),
        st.builds(_one_of, strings, st.lists(words, min_size=1, max_size=4), st.booleans()),
        st.builds(_is_null, numbers | strings, st.booleans()),
        st.builds(
            lambda operand, prefix: _null_safe(
                f"{{}}.startswith({prefix!r})", operand, lambda s: s.startswith(prefix)
            ),
            strings,
            words,
        ),
        st.builds(
            _logic, st.lists(conditions, min_size=2, max_size=3), st.sampled_from(["and", "or"])
        ),
        conditions.map(_negation),
    )
)


def _depth(node: ast.AST) -> int:
    """An upper bound on the levels the compiler counts (it skips operator nodes)."""
    return 1 + max((_depth(child) for child in ast.iter_child_nodes(node)), default=0)


rows = st.fixed_dictionaries(
    {},
    optional={
        "n": st.none() | st.integers(-100, 100),
        "m": st.none() | st.integers(-3, 3),
        "s": st.none() | words,
        "t": st.none() | words,
        "obj": st.fixed_dictionaries({}, optional={"k": st.none() | st.integers(-9, 9)}),
    },
)


@settings(max_examples=400)  # cheap examples; more of them reach rarer combinations
@given(expression=conditions, row=rows)
def test_generated_conditions_agree_with_the_reference(
    expression: Generated, row: dict[str, Any]
) -> None:
    text, reference = expression
    assume(_depth(ast.parse(text, mode="eval")) <= MAX_DEPTH)
    where = compile_where(text)
    assert where.value(row) == reference(row)
    assert where.matches(row) is bool(reference(row))


@settings(max_examples=400)
@given(expression=numbers | strings, row=rows)
def test_generated_values_agree_with_the_reference(
    expression: Generated, row: dict[str, Any]
) -> None:
    text, reference = expression
    assume(_depth(ast.parse(text, mode="eval")) <= MAX_DEPTH)
    assert compile_where(text).value(row) == reference(row)


# Nothing a string can do raises anything but WhereError.

SAMPLE_ROWS: list[dict[str, Any]] = [
    {},
    REVIEW,
    {"rating": "x", "text": 5, "meta": "flat", "tags": None, "steps": [1], "lang": True},
    {"rating": float("nan"), "text": "", "meta": {"source": None}, "tags": [[]], "x": 10**30},
]
TOKENS = [
    *["rating", "text", "meta", "tags", "x", "lang", "label", "steps", "true", "null", "None"],
    *[".", "(", ")", "[", "]", ",", ":", "0", "-1", "2.5", "'a'", '"RE:"', "'x'"],
    *["==", "!=", "<", "<=", ">", "in", "not", "and", "or", "is", "+", "-", "*", "/", "%"],
    *["len", "lower", "upper", "str", "int", "float", "abs", "field", "startswith", "strip"],
    *["__class__", "__import__", "__bases__", "__subclasses__", "__globals__", "__dict__"],
    *["lambda", "for", "if", "else", "import", "os", "open", "eval", "exec", "format"],
    *["**", "//", ":=", "f'{x}'", "...", "{", "}", "*", "@", "~", "yield", "await", "\n", "#"],
]


def _compile_and_run(text: str) -> None:
    try:
        where = compile_where(text)
    except WhereSyntaxError as error:
        line = re.split(r"\r\n|\r|\n", text)[error.line - 1]
        assert 1 <= error.column <= len(line) + 1
        assert error.message.startswith("--where, ")
        return
    for row in SAMPLE_ROWS:
        with contextlib.suppress(WhereEvalError):
            assert where.matches(row) in (True, False)


@given(st.text(max_size=300))
def test_arbitrary_text_compiles_or_is_refused(text: str) -> None:
    _compile_and_run(text)


@given(st.lists(st.sampled_from(TOKENS), max_size=25), st.sampled_from([" ", ""]))
def test_token_soup_compiles_or_is_refused(tokens: list[str], separator: str) -> None:
    _compile_and_run(separator.join(tokens))


# Hostile forms inside otherwise valid expressions: refused, at the hostile part.

HOSTILE = [  # text, where in it the refusal points, what the refusal says
    ("__import__('os').system('touch pwned')", 0, "no function __import__"),
    ("().__class__.__bases__[0].__subclasses__()", 3, "__class__"),
    ("text.__class__.__mro__", 5, "__class__"),
    ("__builtins__", 0, "names starting with __"),
    ("text.__len__()", 5, r"no method .__len__\(\)"),
    ("lambda: open('pwned', 'w')", 0, "lambda"),
    ("[c for c in text]", 0, "comprehension"),
    ("{c: 1 for c in text}", 0, "comprehension"),
    ("(c for c in text)", 0, "comprehension"),
    ("f'{text.__class__}'", 0, "f-string"),
    ("(x := open('pwned', 'w'))", 1, "assignment"),
    ("open('pwned', 'w').write('x')", 0, "no function open"),
    ("eval('1')", 0, "no function eval"),
    ("exec('import os')", 0, "no function exec"),
    ("getattr(text, 'upper')", 0, "no function getattr"),
    ("globals()", 0, "no function globals"),
    ("breakpoint()", 0, "no function breakpoint"),
    ("compile('1', 'f', 'eval')", 0, "no function compile"),
    ("text.format(text)", 5, "no method .format"),
    ("text.encode()", 5, "no method .encode"),
    ("text.join(tags)", 5, "no method .join"),
    ("text.startswith.__self__", 16, "__self__"),
    ("len.__self__", 4, "__self__"),
    ("tags[0:10**9]", 5, "slices"),
    ("2 ** 100000", 2, "operator is not allowed"),
    ("'a' * 10**9", 8, "operator is not allowed"),
    ("tags * 10", 5, None),  # a list times a number: refused per item instead
    ("1 << 10**9", 2, "operator is not allowed"),
    ("x if open('pwned') else y", 0, "if"),
    ("{1, 2}", 0, "set literal"),
    ("(yield)", 1, "yield"),
]
CONTEXTS = ["({})", "rating > 1 and ({})", "not ({})", "len({}) > 2", "[1, ({})]", "meta.a == ({})"]


@given(st.sampled_from(HOSTILE), st.sampled_from(CONTEXTS))
def test_hostile_forms_in_valid_expressions_are_refused_at_the_hostile_part(
    hostile: tuple[str, int, str | None], context: str
) -> None:
    fragment, offset, reason = hostile
    text = context.format(fragment)
    if reason is None:
        with pytest.raises(WhereEvalError):
            compile_where(text).matches({"tags": [1], "rating": 2, "meta": {}})
        return
    with pytest.raises(WhereSyntaxError) as caught:
        compile_where(text)
    assert caught.value.column == context.index("{}") + offset + 1
    assert re.search(reason, caught.value.reason), caught.value.reason


_WATCHED = ("open", "import", "exec", "os.", "subprocess.", "socket.", "ctypes.", "shutil.")
_CHILD = """
import json, random, sys
from pipeline.prepare.where import compile_where, WhereError

texts = json.loads(sys.argv[1])
tokens = json.loads(sys.argv[2])
generator = random.Random(12)
texts += [" ".join(generator.choices(tokens, k=generator.randint(1, 20))) for _ in range(3000)]
rows = [{}, {"text": "a", "tags": [1], "meta": {"a": 1}, "rating": 2, "x": "y"}]
seen = []
watched = tuple(sys.argv[3].split(","))
sys.addaudithook(lambda event, args: seen.append(event) if event.startswith(watched) else None)
compiled = 0
for text in texts:
    try:
        where = compile_where(text)
        compiled += 1
        for row in rows:
            try:
                where.matches(row)
            except WhereError:
                pass
    except WhereError:
        pass
print(json.dumps({"events": seen, "compiled": compiled}))
"""


def test_nothing_in_an_expression_is_ever_executed(tmp_path: Path) -> None:
    """In a child process, an audit hook sees every file opened, module imported, code
    executed or process started while hostile and random expressions are compiled and run."""
    texts = [context.format(h[0]) for h in HOSTILE for context in CONTEXTS]
    texts += ["__import__('os').system('touch pwned')", "open('pwned', 'w')", "rating > 1"]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(texts), json.dumps(TOKENS), ",".join(_WATCHED)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["events"] == []
    assert report["compiled"] > 1  # the watch covered evaluation too, not only refusals
    assert list(tmp_path.iterdir()) == []
