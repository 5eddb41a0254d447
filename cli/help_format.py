"""Help that reads well: what typer's help shows in the column beside each name.

typer 0.2x fills that column with Python types (`<bool>` beside a flag,
`<list[str]>` beside INPUT..., `<str>`) where a reader expects a word or
nothing. sluice names every value with a metavar (PATH, N, USD, DURATION), so
the column shows the metavar when there is one, and nothing for flags and
arguments (an argument's name already says what it takes), and no range.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperOption

# typer 0.29's hook for that column; another typer keeps its own column.
_option_type: Any = getattr(TyperOption, "display_type_rich", None)


def _option_column(self: TyperOption, ctx: Any) -> str | None:
    if self.metavar is not None:
        return self.metavar
    if self.is_flag:
        return None
    shown: str | None = _option_type(self, ctx)
    return shown


def _argument_column(self: TyperArgument, ctx: Any) -> str | None:
    return None


def _no_range(self: TyperOption) -> None:
    return None


def readable_help() -> None:
    """Install the column rules above (once, before the first --help)."""
    if _option_type is None:
        return
    patched: Any = TyperOption
    patched.display_type_rich = _option_column
    # `[x>=0.001]` beside a value says less than the help text does, and takes the
    # room the help needs at 80 columns; ranges are still checked.
    patched._get_number_range_help_str = _no_range
    patched = TyperArgument
    patched.display_type_rich = _argument_column
