"""What `--where`'s operators and functions do to item values (pure; no I/O); the
closures a compiled expression is made of are in where_eval.py.

The values are those JSON and Parquet give: null, booleans, numbers, strings,
lists, objects (and, from Parquet, dates and decimals). The rules, in short:

- null is SQL-like: an ordering comparison with null is false, `in` / `not in`
  with null on either side is false, and arithmetic, functions and methods given
  null give null. `==` and `!=` treat null as an ordinary value.
- equality is by JSON type: `1 == 1.0`, but `true != 1` and `"1" != 1`.
- ordering compares numbers with numbers, strings with strings (by code point),
  dates with dates; anything else is an error rather than a guess.
- arithmetic is on numbers only, so no expression can build a huge string or list.

Every problem raises ValueProblem with a reason; the compiled expression adds
where in the expression it happened (see where.py).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

Row = Mapping[str, Any]
Run = Callable[[Row], Any]  # a compiled (part of an) expression
Binary = Callable[[Any, Any], Any]


class ValueProblem(Exception):
    """An operator or function met a value it cannot work on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_TYPE_NAMES: dict[type, str] = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    Decimal: "a number",
    str: "a string",
    list: "a list",
    tuple: "a list",
    dict: "an object",
}
# Orderable beyond numbers, always with a value of the very same type.
_ORDERED_TYPES = (str, bytes, date, datetime, time, timedelta)
# Tuples, not unions, in isinstance: this runs per item, and unions are slower there.
_NUMBERS = (int, float, Decimal)
SEQUENCES = (list, tuple)
_CONTAINERS = (list, tuple, dict)
# The common case first: two values of one plain type are compared as Python does.
_PLAIN_ORDERED = frozenset({int, float, str})


def type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value)) or f"a {type(value).__name__}"


def is_number(value: Any) -> bool:
    return isinstance(value, _NUMBERS) and not isinstance(value, bool)


def equal(left: Any, right: Any) -> bool:
    """Equality by JSON type: booleans are not numbers, lists and objects compare deeply."""
    if type(left) is type(right) and type(left) in _PLAIN_ORDERED:
        return bool(left == right)
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, SEQUENCES) and isinstance(right, SEQUENCES):
        return len(left) == len(right) and all(map(equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(equal(v, right[k]) for k, v in left.items())
    if isinstance(left, _CONTAINERS) or isinstance(right, _CONTAINERS):
        return False
    try:
        return bool(left == right)
    except TypeError:  # e.g. an aware and a naive datetime
        return False


def not_equal(left: Any, right: Any) -> bool:
    return not equal(left, right)


def _ordering(test: Binary, symbol: str) -> Binary:
    def compare(left: Any, right: Any) -> bool:
        if type(left) is type(right) and type(left) in _PLAIN_ORDERED:
            return bool(test(left, right))
        if left is None or right is None:
            return False
        if not (is_number(left) and is_number(right)) and not (
            type(left) is type(right) and isinstance(left, _ORDERED_TYPES)
        ):
            raise ValueProblem(f"cannot compare {type_name(left)} {symbol} {type_name(right)}")
        try:
            return bool(test(left, right))
        except (TypeError, ArithmeticError) as exc:
            raise ValueProblem(f"cannot compare these values with {symbol} ({exc})") from None

    return compare


def contains(container: Any, value: Any) -> bool:
    """`value in container`: an element of a list, a substring, or a key of an object."""
    if container is None:
        return False
    if isinstance(container, SEQUENCES):
        return any(equal(value, element) for element in container)
    if not isinstance(container, (str, dict)):
        raise ValueProblem(
            f"`in` needs a list, string or object on its right, not {type_name(container)}"
        )
    if value is None:
        return False
    if not isinstance(value, str):
        kind = "a substring" if isinstance(container, str) else "a key"
        raise ValueProblem(f"`in` {type_name(container)} looks for {kind}, not {type_name(value)}")
    return value in container


def not_contains(container: Any, value: Any) -> bool:
    if container is None or (value is None and not isinstance(container, SEQUENCES)):
        return False  # unknown, as with ordering: neither `in` nor `not in` holds
    return not contains(container, value)


def _arithmetic(compute: Binary, symbol: str) -> Binary:
    def run(left: Any, right: Any) -> Any:
        if left is None or right is None:
            return None
        if not (is_number(left) and is_number(right)):
            raise ValueProblem(
                f"{symbol} works on numbers, not {type_name(left)} and {type_name(right)}"
            )
        try:
            return compute(left, right)
        except ZeroDivisionError:
            raise ValueProblem("division by zero") from None
        except (TypeError, ArithmeticError) as exc:
            raise ValueProblem(f"cannot compute {symbol} of these numbers ({exc})") from None

    return run


COMPARISONS: dict[str, Binary] = {
    "==": equal,
    "!=": not_equal,
    "<": _ordering(operator.lt, "<"),
    "<=": _ordering(operator.le, "<="),
    ">": _ordering(operator.gt, ">"),
    ">=": _ordering(operator.ge, ">="),
    # Arguments are (left, right) like the others; membership looks right into left.
    "in": lambda left, right: contains(right, left),
    "not in": lambda left, right: not_contains(right, left),
    "is": lambda left, right: left is None,  # the compiler allows only `is null`
    "is not": lambda left, right: left is not None,
}
ARITHMETIC: dict[str, Binary] = {
    "+": _arithmetic(operator.add, "+"),
    "-": _arithmetic(operator.sub, "-"),
    "*": _arithmetic(operator.mul, "*"),
    "/": _arithmetic(operator.truediv, "/"),
    "%": _arithmetic(operator.mod, "%"),
}


def negate(value: Any) -> Any:
    if value is None:
        return None
    if not is_number(value):
        raise ValueProblem(f"unary - works on numbers, not {type_name(value)}")
    return -value


def plus(value: Any) -> Any:
    if value is not None and not is_number(value):
        raise ValueProblem(f"unary + works on numbers, not {type_name(value)}")
    return value


def _short(text: str) -> str:
    return repr(text if len(text) <= 20 else text[:20] + "...")


def _length(value: Any) -> int:
    if not isinstance(value, (str, *_CONTAINERS)):
        raise ValueProblem(f"len() needs a string, list or object, not {type_name(value)}")
    return len(value)


def _string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if not (is_number(value) or isinstance(value, (date, time))):
        raise ValueProblem(f"str() needs a number, string or boolean, not {type_name(value)}")
    try:
        return str(value)
    except ValueError as exc:  # an integer past Python's digit limit
        raise ValueProblem(f"str() cannot write this number ({exc})") from None


def _integer(value: Any) -> int:
    if not (is_number(value) or isinstance(value, (bool, str))):
        raise ValueProblem(f"int() needs a number, string or boolean, not {type_name(value)}")
    try:
        return int(value)
    except (ValueError, OverflowError):
        raise ValueProblem(f"int() cannot read {_short(str(value))} as a whole number") from None


def _floating(value: Any) -> float:
    if not (is_number(value) or isinstance(value, (bool, str))):
        raise ValueProblem(f"float() needs a number, string or boolean, not {type_name(value)}")
    try:
        return float(value)
    except (ValueError, OverflowError):
        raise ValueProblem(f"float() cannot read {_short(str(value))} as a number") from None


def _absolute(value: Any) -> Any:
    if not is_number(value):
        raise ValueProblem(f"abs() needs a number, not {type_name(value)}")
    return abs(value)


def _text_function(name: str, transform: Callable[[str], str]) -> Callable[[Any], str]:
    def run(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueProblem(f"{name}() needs a string, not {type_name(value)}")
        return transform(value)

    return run


# Each takes one value that is not null: a null argument gives null before the call.
FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "len": _length,
    "lower": _text_function("lower", str.lower),
    "upper": _text_function("upper", str.upper),
    "str": _string,
    "int": _integer,
    "float": _floating,
    "abs": _absolute,
}


def _affixes(method: str, value: Any) -> str | tuple[str, ...]:
    if type(value) is str:
        return value
    if isinstance(value, SEQUENCES) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueProblem(f".{method}() needs a string or a list of strings, not {type_name(value)}")


def _starts_with(text: str, prefix: Any) -> bool:
    return text.startswith(_affixes("startswith", prefix))


def _ends_with(text: str, suffix: Any) -> bool:
    return text.endswith(_affixes("endswith", suffix))


# Methods of strings, by number of arguments (never null: a null gives null first).
METHODS: dict[str, Callable[..., Any]] = {
    "startswith": _starts_with,
    "endswith": _ends_with,
    "lower": str.lower,
    "upper": str.upper,
    "strip": str.strip,
}
METHOD_ARITY = {"startswith": 1, "endswith": 1, "lower": 0, "upper": 0, "strip": 0}
