"""`--where`: a small expression over an item's fields, compiled once, then evaluated per
item without eval (pure; no I/O).

The text is parsed by Python's own parser (`ast.parse`, which never runs anything)
and every node is checked against a short list of allowed forms while it is turned
into a tree of closures; anything else is refused with the column it starts at:

    literals    "text"  12  -1.5  true false null (True False None)  [a, b] (a, b)
    fields      rating   meta.lang   steps.label.output.label   tags[0]   tags[-1]
                meta["odd key"]   field("review text")  (a top-level name that is
                not an identifier, a keyword or true/false/null)
    operators   and or not   == != < <= > >= (chained: 1 < x < 5)   in, not in
                is null, is not null   + - * / % (numbers only)
    functions   len lower upper str int float abs
    methods     .startswith(s) .endswith(s) (s a string or a list of strings)
                .lower() .upper() .strip() (on strings)

A missing field or key, or an index past the end, is null. Values follow the rules
of where_values.py (null is SQL-like; equality is by JSON type). An expression is at
most MAX_LENGTH characters and nests at most MAX_DEPTH levels, so evaluating one
can never exhaust the stack, memory or time.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

from pipeline.core.errors import UsageError
from pipeline.prepare import where_eval as build
from pipeline.prepare.where_eval import Literal
from pipeline.prepare.where_values import (
    ARITHMETIC,
    FUNCTIONS,
    METHOD_ARITY,
    Row,
    Run,
    ValueProblem,
    is_number,
    negate,
    plus,
    type_name,
)

MAX_LENGTH = 4_000
MAX_DEPTH = 64

_NEWLINE = re.compile(r"\r\n|\r|\n")  # the line breaks Python's tokenizer counts
_LITERAL_NAMES = {"true": True, "false": False, "null": None}
_OPERATORS: dict[type[ast.AST], str] = {
    **{ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%"},
    **{ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="},
    **{ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"},
}
_REFUSED: dict[type[ast.AST], str] = {
    ast.Lambda: "lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.JoinedStr: "an f-string",
    ast.NamedExpr: "assignment (:=)",
    ast.Starred: "unpacking (*)",
    ast.Slice: "a slice",
    ast.IfExp: "`x if y else z`",
    ast.Dict: "an object literal",
    ast.Set: "a set literal",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}
_NAMES = "functions are " + ", ".join([*FUNCTIONS, "field"])
_METHODS = "string methods are " + ", ".join(f".{name}()" for name in METHOD_ARITY)


class WhereError(Exception):
    """A `--where` expression that cannot be compiled or evaluated, and where in it."""

    def __init__(self, reason: str, column: int, *, line: int = 1, label: str = "--where") -> None:
        place = f"column {column}" if line == 1 else f"line {line}, column {column}"
        message = f"{label}, {place}: {reason}"
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.line = line
        self.column = column  # 1-based, in characters, within `line`


class WhereSyntaxError(WhereError, UsageError):
    """The expression is not valid or uses something not allowed (exit 2 if uncaught)."""


class WhereEvalError(WhereError):
    """The expression met a value it cannot work on (a string compared with a number...)."""


class Where:
    """A compiled expression: evaluating it is a walk over a few closures, safe from any thread."""

    __slots__ = ("_run", "fields", "text")

    def __init__(self, text: str, fields: frozenset[str], run: Run) -> None:
        self.text = text
        self.fields = fields  # the top-level field names the expression reads
        self._run = run

    def matches(self, row: Row) -> bool:
        """Whether the item is selected; raises WhereEvalError naming the column."""
        return bool(self._run(row))

    def value(self, row: Row) -> Any:
        return self._run(row)

    def __repr__(self) -> str:
        return f"Where({self.text!r})"


def compile_where(text: str, *, label: str = "--where") -> Where:
    """Compile `text` once; raises WhereSyntaxError naming the column. `label` names the
    expression's origin in messages (an option, or a step of a workflow file)."""
    source = _Source(text, label)
    if len(text) > MAX_LENGTH:
        raise source.refuse(MAX_LENGTH - source.offset, f"longer than {MAX_LENGTH:,} characters")
    if not source.body.strip():
        raise source.refuse(0, "the expression is empty")
    if "\0" in source.body:
        raise source.refuse(source.body.index("\0"), "a null character")
    compiler = _Compiler(source)
    run = compiler.compile(source.parse().body, 1)
    return Where(text, frozenset(compiler.fields), run)


class _Spot(NamedTuple):
    """Where a part of the expression is, worked out once, for errors raised per item."""

    label: str
    line: int
    column: int

    def error(self, reason: str) -> WhereEvalError:
        return WhereEvalError(reason, self.column, line=self.line, label=self.label)


class _Source:
    """The text, and the way from the parser's positions (UTF-8 bytes) to characters."""

    def __init__(self, text: str, label: str) -> None:
        self.text, self.label = text, label
        self.body = text.lstrip()  # Python refuses leading blanks as an indent
        self.offset = len(text) - len(self.body)
        self.starts = [0, *(m.end() for m in _NEWLINE.finditer(self.body))]
        self.lines = _NEWLINE.split(self.body)

    def parse(self) -> ast.Expression:
        try:
            with warnings.catch_warnings():  # `"\d"` and `x is 1` warn, never fail
                warnings.simplefilter("ignore")
                return ast.parse(self.body + "\n", mode="eval")
        except SyntaxError as exc:
            line = min(max(exc.lineno or 1, 1), len(self.lines))
            index = self.starts[line - 1] + max((exc.offset or 1) - 1, 0)
            raise self.refuse(index, exc.msg) from None
        except UnicodeEncodeError as exc:
            raise self.refuse(exc.start, "not valid text (a lone surrogate)") from None
        except ValueError as exc:  # not expected once null characters are refused
            raise self.refuse(0, str(exc)) from None
        except (RecursionError, MemoryError):
            raise self.refuse(0, "the expression nests too deeply") from None

    def index(self, line: int | None, byte_column: int | None) -> int:
        """The index in `body` of a parser position."""
        line_text = self.lines[(line or 1) - 1]
        return self.starts[(line or 1) - 1] + len(line_text.encode()[: byte_column or 0].decode())

    def spot(self, index: int) -> _Spot:
        absolute = self.offset + min(max(index, 0), len(self.body))
        breaks = list(_NEWLINE.finditer(self.text, 0, absolute))
        column = absolute - (breaks[-1].end() if breaks else 0) + 1
        return _Spot(self.label, len(breaks) + 1, column)

    def refuse(self, index: int, reason: str) -> WhereSyntaxError:
        spot = self.spot(index)
        return WhereSyntaxError(reason, spot.column, line=spot.line, label=self.label)


class _Compiler:
    """Turns checked syntax nodes into closures, refusing every form not listed above."""

    def __init__(self, source: _Source) -> None:
        self.source = source
        self.fields: set[str] = set()

    def compile(self, node: ast.expr, depth: int) -> Run:
        if depth > MAX_DEPTH:
            raise self.refuse(node, f"nests more than {MAX_DEPTH} levels deep")
        handler = _HANDLERS.get(type(node))
        if handler is None:
            what = _REFUSED.get(type(node)) or type(node).__name__
            raise self.refuse(node, f"{what} is not allowed in {self.source.label}")
        return handler(self, node, depth + 1)

    def start(self, node: ast.AST) -> int:
        return self.source.index(getattr(node, "lineno", 1), getattr(node, "col_offset", 0))

    def end(self, node: ast.AST) -> int:
        return self.source.index(getattr(node, "end_lineno", 1), getattr(node, "end_col_offset", 0))

    def refuse(self, at: ast.AST | int, reason: str) -> WhereSyntaxError:
        return self.source.refuse(at if isinstance(at, int) else self.start(at), reason)

    def spot(self, at: ast.AST | int) -> _Spot:
        return self.source.spot(at if isinstance(at, int) else self.start(at))

    def operator_index(self, left: ast.AST, right: ast.AST) -> int:
        """Where the operator between two operands starts (past brackets and comments)."""
        body, index, stop = self.source.body, self.end(left), self.start(right)
        while index < stop and (body[index] in " \t\f\r\n()\\" or body[index] == "#"):
            index = body.find("\n", index) if body[index] == "#" else index + 1
        return index

    def attribute_name(self, node: ast.Attribute) -> tuple[int, str]:
        """The attribute as written (Python normalises identifiers, keys are exact)."""
        end = index = self.end(node)
        while index > 0 and ("a" + self.source.body[index - 1]).isidentifier():
            index -= 1
        return index, self.source.body[index:end]

    def constant(self, node: ast.Constant, depth: int) -> Run:
        if node.value is not None and type(node.value) not in (str, int, float, bool):
            raise self.refuse(node, "only strings, numbers, true, false and null are values")
        return Literal(node.value)

    def name(self, node: ast.Name, depth: int) -> Run:
        if node.id in _LITERAL_NAMES:
            return Literal(_LITERAL_NAMES[node.id])
        if node.id.startswith("__"):
            raise self.refuse(node, f"names starting with __ are not allowed ({node.id})")
        key = self.source.body[self.start(node) : self.end(node)]
        self.fields.add(key)
        return lambda row: row.get(key)

    def attribute(self, node: ast.Attribute, depth: int) -> Run:
        value = self.compile(node.value, depth)
        index, key = self.attribute_name(node)
        if node.attr.startswith("__"):
            raise self.refuse(index, f"names starting with __ are not allowed ({node.attr})")
        if isinstance(value, Literal):
            raise self.refuse(index, "a value written in the expression has no fields")
        return build.field_step(value, key, self.spot(index))

    def subscript(self, node: ast.Subscript, depth: int) -> Run:
        value = self.compile(node.value, depth)
        key = node.slice
        if isinstance(key, ast.UnaryOp) and isinstance(key.op, ast.USub):
            key = key.operand  # tags[-1]: the last element
            sign = -1
        else:
            sign = 1
        if isinstance(key, ast.Slice):
            raise self.refuse(key, "slices are not allowed; use an index like tags[0]")
        literal = key.value if isinstance(key, ast.Constant) else None
        if type(literal) is not int and (sign < 0 or type(literal) is not str):
            raise self.refuse(key, 'an index is a whole number or a quoted key: tags[0], m["k"]')
        if isinstance(value, Literal):
            raise self.refuse(key, "a value written in the expression cannot be indexed")
        return build.field_step(
            value, sign * literal if isinstance(literal, int) else literal, self.spot(key)
        )

    def call(self, node: ast.Call, depth: int) -> Run:
        function = node.func
        if isinstance(function, ast.Attribute):
            receiver = self.compile(function.value, depth)
            index, name = self.attribute_name(function)
            self.check_call(node, index, name, METHOD_ARITY)
            arguments = [self.compile(a, depth) for a in node.args]
            return build.method(name, receiver, arguments, self.spot(index))
        if not isinstance(function, ast.Name):
            raise self.refuse(function, f"only named functions can be called; the {_NAMES}")
        if function.id == "field":
            return self.field_function(node)
        self.check_call(node, self.start(function), function.id, dict.fromkeys(FUNCTIONS, 1))
        return build.function(function.id, self.compile(node.args[0], depth), self.spot(function))

    def check_call(self, node: ast.Call, index: int, name: str, arity: dict[str, int]) -> None:
        shown = f".{name}()" if arity is METHOD_ARITY else f"{name}()"
        if name not in arity:
            kind, listed = ("method", _METHODS) if arity is METHOD_ARITY else ("function", _NAMES)
            hint = '; to look for text, write "word" in text' if name == "contains" else ""
            raise self.refuse(index, f"there is no {kind} {shown}; the {listed}{hint}")
        if node.keywords:
            raise self.refuse(node.keywords[0], f"{shown} takes no named arguments")
        if len(node.args) != arity[name]:
            wanted = "no arguments" if arity[name] == 0 else "one argument"
            raise self.refuse(index, f"{shown} takes {wanted}, not {len(node.args)}")

    def field_function(self, node: ast.Call) -> Run:
        argument = node.args[0] if len(node.args) == 1 and not node.keywords else None
        if not (isinstance(argument, ast.Constant) and isinstance(argument.value, str)):
            raise self.refuse(node, 'field() takes one quoted field name: field("review text")')
        key = argument.value
        self.fields.add(key)
        return lambda row: row.get(key)

    def unary(self, node: ast.UnaryOp, depth: int) -> Run:
        if isinstance(node.op, ast.Invert):
            raise self.refuse(node, "~ is not allowed; use not")
        operand = self.compile(node.operand, depth)
        if isinstance(node.op, ast.Not):
            return lambda row: not operand(row)
        sign = negate if isinstance(node.op, ast.USub) else plus
        if isinstance(operand, Literal):
            try:
                return Literal(sign(operand.value))
            except ValueProblem as problem:
                raise self.refuse(node, problem.reason) from None
        return build.unary(sign, operand, self.spot(node))

    def binary(self, node: ast.BinOp, depth: int) -> Run:
        left = self.compile(node.left, depth)
        index = self.operator_index(node.left, node.right)
        symbol = _OPERATORS.get(type(node.op))
        if symbol is None:
            raise self.refuse(index, "this operator is not allowed; the arithmetic is + - * / %")
        right = self.compile(node.right, depth)
        literals = [run.value for run in (left, right) if isinstance(run, Literal)]
        for value in literals:  # what is written wrongly is refused now, not once per item
            if value is not None and not is_number(value):
                raise self.refuse(index, f"{symbol} works on numbers, not {type_name(value)}")
        if len(literals) == 2:
            try:
                return Literal(ARITHMETIC[symbol](*literals))
            except ValueProblem as problem:
                raise self.refuse(index, problem.reason) from None
        return build.binary(ARITHMETIC[symbol], left, right, self.spot(index))

    def boolean(self, node: ast.BoolOp, depth: int) -> Run:
        runs = [self.compile(value, depth) for value in node.values]
        return build.any_of(runs) if isinstance(node.op, ast.Or) else build.all_of(runs)

    def compare(self, node: ast.Compare, depth: int) -> Run:
        first = self.compile(node.left, depth)
        steps: list[tuple[str, Run, build.Spot]] = []
        operands = [node.left, *node.comparators]
        for before, op, after in zip(operands, node.ops, operands[1:], strict=False):
            index = self.operator_index(before, after)
            symbol = _OPERATORS[type(op)]
            right = self.compile(after, depth)
            is_null = isinstance(right, Literal) and right.value is None
            if symbol in ("is", "is not") and not is_null:
                raise self.refuse(after, f"`{symbol}` compares only with null; use == or !=")
            steps.append((symbol, right, self.spot(index)))
        return build.chain(first, steps)

    def sequence(self, node: ast.List | ast.Tuple, depth: int) -> Run:
        runs = [self.compile(element, depth) for element in node.elts]
        if all(isinstance(run, Literal) for run in runs):
            return Literal(tuple(run.value for run in runs if isinstance(run, Literal)))
        return lambda row: tuple(run(row) for run in runs)


_HANDLERS: dict[type[ast.AST], Callable[[_Compiler, Any, int], Run]] = {
    ast.Constant: _Compiler.constant,
    ast.Name: _Compiler.name,
    ast.Attribute: _Compiler.attribute,
    ast.Subscript: _Compiler.subscript,
    ast.Call: _Compiler.call,
    ast.UnaryOp: _Compiler.unary,
    ast.BinOp: _Compiler.binary,
    ast.BoolOp: _Compiler.boolean,
    ast.Compare: _Compiler.compare,
    ast.List: _Compiler.sequence,
    ast.Tuple: _Compiler.sequence,
}
