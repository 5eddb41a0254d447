"""The closures a compiled `--where` expression is made of (pure; no I/O): each step
of the tree compile_where builds (where.py), applying the value rules of
where_values.py and naming its place in the expression when one fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pipeline.prepare.where_values import (
    COMPARISONS,
    FUNCTIONS,
    METHODS,
    SEQUENCES,
    Binary,
    Row,
    Run,
    ValueProblem,
    type_name,
)

# The closures a compiled expression is made of. Each catches the ValueProblem of its
# own operation only, and turns it into the error of its place in the expression.


class Spot(Protocol):
    def error(self, reason: str) -> Exception: ...


EMPTY_ROW: Row = {}


class Literal:
    """A value written in the expression; the compiler folds it in where it can."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, row: Row) -> Any:
        return self.value


def field_step(container: Run, key: str | int, spot: Spot) -> Run:
    """`x.key` / `x["key"]` (null when missing) or `x[3]` (null past either end)."""
    if isinstance(key, str):

        def read_field(row: Row) -> Any:
            value = container(row)
            if isinstance(value, dict):
                return value.get(key)
            if value is None:
                return None
            raise spot.error(f"{type_name(value)} has no fields, so no {key!r}")

        return read_field

    def read_element(row: Row) -> Any:
        value = container(row)
        if isinstance(value, SEQUENCES):
            return value[key] if -len(value) <= key < len(value) else None
        if value is None:
            return None
        raise spot.error(f"{type_name(value)} has no elements, so no [{key}]")

    return read_element


def function(name: str, argument: Run, spot: Spot) -> Run:
    return _null_or(FUNCTIONS[name], [argument], spot)


def method(name: str, receiver: Run, arguments: list[Run], spot: Spot) -> Run:
    act = METHODS[name]

    def on_string(text: Any, *args: Any) -> Any:
        if not isinstance(text, str):
            raise ValueProblem(f".{name}() works on strings, not {type_name(text)}")
        return act(text, *args)

    return _null_or(on_string, [receiver, *arguments], spot)


def unary(sign: Callable[[Any], Any], operand: Run, spot: Spot) -> Run:
    return _null_or(sign, [operand], spot)


def _null_or(act: Callable[..., Any], operands: list[Run], spot: Spot) -> Run:
    """`act` applied to the operands' values, or null when any of them is null."""
    first, *rest = operands
    if all(isinstance(operand, Literal) for operand in rest):  # the usual x.startswith("RE:")
        constants = [operand(EMPTY_ROW) for operand in rest]
        if None in constants:
            return Literal(None)

        def run_on_first(row: Row) -> Any:
            value = first(row)
            if value is None:
                return None
            try:
                return act(value, *constants)
            except ValueProblem as problem:
                raise spot.error(problem.reason) from None

        return run_on_first

    def run(row: Row) -> Any:
        values = [operand(row) for operand in operands]
        if None in values:
            return None
        try:
            return act(*values)
        except ValueProblem as problem:
            raise spot.error(problem.reason) from None

    return run


def binary(compute: Binary, left: Run, right: Run, spot: Spot) -> Run:
    def run(row: Row) -> Any:
        try:
            return compute(left(row), right(row))
        except ValueProblem as problem:
            raise spot.error(problem.reason) from None

    return run


def any_of(operands: list[Run]) -> Run:
    """`a or b or c`: the first true value, or the last value (as Python's `or`)."""
    if len(operands) == 2:
        first, second = operands
        return lambda row: first(row) or second(row)

    def run(row: Row) -> Any:
        value = None
        for operand in operands:
            value = operand(row)
            if value:
                return value
        return value

    return run


def all_of(operands: list[Run]) -> Run:
    """`a and b and c`: the first false value, or the last value (as Python's `and`)."""
    if len(operands) == 2:
        first, second = operands
        return lambda row: first(row) and second(row)

    def run(row: Row) -> Any:
        value = None
        for operand in operands:
            value = operand(row)
            if not value:
                return value
        return value

    return run


def _only_strings(value: Any) -> bool:
    return isinstance(value, tuple) and bool(value) and all(isinstance(v, str) for v in value)


def _test(symbol: str, right: Run) -> Binary:
    """The comparison, made cheaper for the common `label in ["a", "b"]`."""
    words = right.value if isinstance(right, Literal) else None
    if symbol in ("in", "not in") and _only_strings(words):
        choices = frozenset(words or ())
        if symbol == "in":
            return lambda left, _: isinstance(left, str) and left in choices
        return lambda left, _: not (isinstance(left, str) and left in choices)
    return COMPARISONS[symbol]


def chain(first: Run, steps: list[tuple[str, Run, Spot]]) -> Run:
    """`a < b <= c`: each comparison in turn, each operand evaluated once, stopping at false."""
    links = [(_test(symbol, right), right, spot) for symbol, right, spot in steps]
    if len(links) == 1 and isinstance(links[0][1], Literal):
        test, literal, spot = links[0]
        constant = literal.value  # type: ignore[attr-defined]

        def compare_with_constant(row: Row) -> Any:
            try:
                return test(first(row), constant)
            except ValueProblem as problem:
                raise spot.error(problem.reason) from None

        return compare_with_constant

    def compare(row: Row) -> bool:
        left = first(row)
        for test, right, spot in links:
            value = right(row)
            try:
                if not test(left, value):
                    return False
            except ValueProblem as problem:
                raise spot.error(problem.reason) from None
            left = value
        return True

    return compare
