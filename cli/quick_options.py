"""Option values converted without pydantic, when the conversion is plain.

typer 0.29 converts every option value, given or default, through a pydantic
TypeAdapter built for it on first use. On `sluice run` that is ~100 options: importing
pydantic and building the adapters cost ~0.3 s, more than the rest of start-up.

Most values need nothing of the kind: a string for a `str`, digits for an `int` in
its range, a path for a `Path`, a member of an `Enum`. Those are converted here,
exactly as typer's adapter would convert them. Anything else (an out-of-range
number, an unusual spelling, an empty path, a type not listed) goes to typer's own
conversion, which gives the same result and the same error message as before.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Any

from typer import _click
from typer.core import _TyperParameter

try:  # typer's own helpers for paths and choices; a typer without them is left alone
    from typer._param_types import coerce_cli_choice, coerce_cli_path
except ImportError:  # pragma: no cover - another typer version
    coerce_cli_choice = coerce_cli_path = None  # type: ignore[assignment]

# Spellings whose meaning is beyond doubt; pydantic accepts more, which typer handles.
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_DECIMAL = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")


class _Unsure(Exception):
    """This value is for typer's own conversion."""


_typer_process_value = _TyperParameter.process_value


def quick_value(param: _TyperParameter, value: Any, ctx: _click.Context) -> Any:
    """The value typer's adapter would give, or _Unsure."""
    descriptor = param.type_descriptor
    info = descriptor.parameter_info
    if info.parser is not None or descriptor.file_annotation is not None:
        raise _Unsure
    if param.multiple or param.nargs == -1:
        if value is None:
            return ()
        texts = isinstance(value, list | tuple) and all(type(item) is str for item in value)
        if texts and descriptor.annotation == list[str]:
            return list(value)
        raise _Unsure
    if value is None:
        return None
    annotation = descriptor.annotation
    if annotation is str and type(value) is str:  # not a str-valued Enum: typer gives str()
        return value
    if annotation is int or annotation is float:
        number = _number(annotation, value)
        low, high, clamp = info.min, info.max, info.clamp
        if clamp or (low is not None and number < low) or (high is not None and number > high):
            raise _Unsure  # typer clamps, or says what the range is
        return number
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        choices = list(annotation)
        try:
            return coerce_cli_choice(
                value, choices=choices, case_sensitive=info.case_sensitive, ctx=ctx
            )
        except ValueError:
            raise _Unsure from None
    if annotation is Path and not (info.allow_dash or info.path_type or info.resolve_path):
        if type(value) is str and value:
            value = Path(value)
        if not isinstance(value, Path):
            raise _Unsure
        try:
            return coerce_cli_path(value, info, path_type=Path, param=param, ctx=ctx)
        except (_click.exceptions.BadParameter, ValueError):  # ValueError: a NUL byte
            raise _Unsure from None  # typer words the message from the value as given
    raise _Unsure


def _number(annotation: type[int] | type[float], value: Any) -> int | float:
    if annotation is int:
        if type(value) is int:
            return value
        if type(value) is str and _INTEGER.fullmatch(value):
            return int(value)
    else:
        if type(value) is float:
            return value
        if type(value) is str and _DECIMAL.fullmatch(value):
            return float(value)
    raise _Unsure


def _process_value(self: _TyperParameter, ctx: _click.Context, value: Any) -> Any:
    """typer's process_value, with the plain conversions done here."""
    if self.type_descriptor.annotation is bool and isinstance(value, bool):
        return _typer_process_value(self, ctx, value)
    try:
        value = quick_value(self, value, ctx)
    except _Unsure:
        return _typer_process_value(self, ctx, value)
    if self.required and self.value_is_missing(value):
        raise _click.exceptions.MissingParameter(ctx=ctx, param=self)
    if self.callback is not None:
        value = self.callback(ctx, self, value)
    return value


def convert_plain_values_quickly() -> None:
    """Install the quick conversion (once, before the command line is parsed). A typer
    whose conversion is not the one this module mirrors keeps its own: slower, as right."""
    mirrored = coerce_cli_path is not None and hasattr(_TyperParameter, "get_runtime_param")
    if mirrored:
        patched: Any = _TyperParameter
        patched.process_value = _process_value
