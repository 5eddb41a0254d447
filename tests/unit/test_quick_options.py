"""The quick option conversion gives what typer's own conversion gives, for every option
of every command, or leaves the value to typer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer import _click
from typer.core import _TyperParameter
from typer.main import get_command

from cli.app import app
from cli.quick_options import _Unsure, quick_value
from pipeline.core.config import Endpoint


def _parameters(command: Any) -> Iterator[tuple[Any, _TyperParameter]]:
    for param in command.params:
        if isinstance(param, _TyperParameter):
            yield command, param
    for sub in getattr(command, "commands", {}).values():
        yield from _parameters(sub)


PARAMETERS = list(_parameters(get_command(app)))

values = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.from_regex(r"-?[0-9]{1,20}(\.[0-9]{1,4})?", fullmatch=True),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.sampled_from([e.value for e in Endpoint] + list(Endpoint) + ["CHAT", ""]),
    st.builds(Path, st.sampled_from([".", "missing/file.jsonl", "pyproject.toml", "/"])),
    st.lists(st.text(max_size=5), max_size=3).map(tuple),
)


def _typer_conversion(param: _TyperParameter, value: Any, ctx: _click.Context) -> Any:
    return param.get_runtime_param().coerce(value, param=param, ctx=ctx)


@settings(max_examples=300)
@given(index=st.integers(min_value=0, max_value=len(PARAMETERS) - 1), value=values)
def test_a_quick_conversion_equals_typers(index: int, value: Any) -> None:
    command, param = PARAMETERS[index]
    ctx = _click.Context(command)
    try:
        quick = quick_value(param, value, ctx)
    except _Unsure:
        return
    expected = _typer_conversion(param, value, ctx)  # must not raise where quick did not
    assert quick == expected and type(quick) is type(expected), (param.name, value)


def test_every_kind_of_option_sluice_declares_has_a_quick_path() -> None:
    """Each annotation in use converts its own default without typer's adapter, so a
    plain run never imports pydantic."""
    kinds = {repr(param.type_descriptor.annotation) for _, param in PARAMETERS}
    assert kinds <= {
        "<class 'str'>", "<class 'bool'>", "<class 'int'>", "<class 'float'>",
        "<class 'pathlib.Path'>", "list[str]", "<enum 'Endpoint'>",
    }  # fmt: skip
    for command, param in PARAMETERS:
        default = param.default
        if param.type_descriptor.annotation is bool or callable(default):
            continue
        ctx = _click.Context(command)
        quick_value(param, default, ctx)  # raises _Unsure for a default typer must convert


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "0"], "Invalid value for '--concurrency' / '-c'"),
        (["-c", "many"], "Invalid value for '--concurrency' / '-c'"),
        (["--endpoint", "bogus"], "Invalid value for '--endpoint'"),
    ],
)
def test_a_bad_value_still_gets_typers_message(
    args: list[str], message: str, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "text": "x"}\n')
    command = get_command(app)
    with pytest.raises(_click.exceptions.BadParameter) as raised:
        arguments = ["run", str(source), "-m", "m", "-p", "{{ text }}", *args]
        command.main(arguments, standalone_mode=False)
    assert message in raised.value.format_message() or message in str(raised.value.param_hint)
