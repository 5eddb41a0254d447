"""`sluice config show`: each option of a command, its effective value and where it came from.

The values are found the way the command itself finds them: click parses the
flags given after `--`, and each option takes the flag, else its environment
variable, else the config file, else its default, which click records as the
option's parameter source. Secrets are never shown: the API key is not an
option at all (only the name of its variable is), and any value whose name
suggests a secret, that looks like a key, or that holds the key is masked.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import typer
from typer.core import TyperGroup, TyperOption

from cli.config_file import (
    CONFIG_PARAM,
    ConfigFile,
    file_options,
    hide_api_keys,
    is_secret_name,
    toml_literal,
)
from cli.config_option import loaded_config
from cli.endpoint_options import ENV_NAME
from cli.errors import fail
from pipeline.core.config import Secret
from pipeline.core.errors import UsageError
from pipeline.core.redact import FRAGMENT, HIDDEN, Redactor

if TYPE_CHECKING:  # Typer vendors click; only its types are needed here.
    from typer._click import Command

DEFAULT_KEY_VARIABLE = "OPENAI_API_KEY"
_VALUE_WIDTH = 50  # characters of a value in the table; --json gives them whole
# Click's parameter sources, in the words `config show` uses.
_SOURCES = {"COMMANDLINE": "flag", "ENVIRONMENT": "env", "DEFAULT_MAP": "file"}

config_app = typer.Typer(
    no_args_is_help=True,
    help="See the configuration sluice runs with: every option's value and its source "
    "(flag, SLUICE_* variable, config file or default).",
)


@config_app.command()
def show(
    ctx: typer.Context,
    command: Annotated[
        str,
        typer.Argument(
            metavar="[COMMAND]",
            help="The command whose options to show: run, retry, sim, ...; a command of a "
            "group as 'cache prune'.",
        ),
    ] = "run",
    flags: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[-- FLAGS]...",
            help="That command's own flags, after --, to see what they would change: "
            "sluice config show run -- -c 64 -m gpt-4o (the command may be left out: "
            "sluice config show -- -c 64).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
) -> None:
    """Show each option of COMMAND (default: run): its value and where it came from.

    Sources, strongest first: flag (given after --), env VARIABLE, file (PATH), default.
    Secrets are never printed; the API key itself is never part of the configuration.
    """
    loaded = loaded_config(ctx)
    if command.startswith("-"):  # `config show -- -c 64`: flags of the default command
        command, flags = "run", [command, *(flags or [])]
    try:
        target = _target_context(ctx, command.replace(".", " ").split(), loaded)
        rows = _rows(target, flags or [])
    except UsageError as error:
        fail(error)
    if as_json:
        file = str(loaded.path) if loaded.path else None
        report = {"command": command, "config_file": file, "options": rows}
        typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(_table(command, loaded, rows))


def _target_context(ctx: typer.Context, names: list[str], loaded: ConfigFile) -> typer.Context:
    """A context for the command, under the real root so SLUICE_<COMMAND>_* names match."""
    node: Any = ctx.find_root()
    command: Command = node.command
    for position, name in enumerate(names):
        sub = command.commands.get(name) if isinstance(command, TyperGroup) else None
        if sub is None:
            raise UsageError(f"no command {' '.join(names[: position + 1])!r}; {_commands(ctx)}")
        command = sub
        last = position == len(names) - 1
        defaults = loaded.defaults_for(names) if last else None
        node = typer.Context(command, info_name=name, parent=node, default_map=defaults)
    if not names or isinstance(command, TyperGroup):
        raise UsageError(f"name a command: {_commands(ctx)}")
    target: typer.Context = node
    return target


def _commands(ctx: typer.Context) -> str:
    root = ctx.find_root().command
    return "commands are " + ", ".join(_leaf_names(root, ""))


def _leaf_names(command: Command, prefix: str) -> list[str]:
    if not isinstance(command, TyperGroup):
        return [prefix]
    return [
        leaf
        for name, sub in command.commands.items()
        for leaf in _leaf_names(sub, f"{prefix} {name}".strip())
    ]


def _rows(ctx: typer.Context, flags: list[str]) -> list[dict[str, Any]]:
    parser = ctx.command.make_parser(ctx)
    given, _, _ = parser.parse_args(args=list(flags))
    if given.get(CONFIG_PARAM) is not None:
        raise UsageError("give --config before the --, to config show itself")
    rows = []
    for name, option in file_options(ctx.command).items():
        value = _value(ctx, option, given)
        source = ctx.get_parameter_source(name)
        rows.append(_row(ctx, option, value, source.name if source else "DEFAULT"))
    redact = _key_redactor(rows)
    for row in rows:
        row["value"] = _visible(row["key"], row["value"], redact)
    return rows


def _value(ctx: typer.Context, option: TyperOption, given: dict[str, Any]) -> Any:
    try:
        value, _ = option.handle_parse_result(ctx, given, [])
    except typer.BadParameter as error:
        source = ctx.get_parameter_source(option.name)
        if source is None or source.name == "DEFAULT":
            return None  # a required option (--output) that nothing sets
        origin = _origin(ctx, option, source.name)
        raise UsageError(f"{origin}: {error.format_message()}") from None
    return value


def _row(ctx: typer.Context, option: TyperOption, value: Any, source: str) -> dict[str, Any]:
    return {
        "key": option.name.replace("_", "-"),
        "value": value,
        "source": _SOURCES.get(source, "default"),
        "env": _variable(ctx, option) if source == "ENVIRONMENT" else None,
    }


def _origin(ctx: typer.Context, option: TyperOption, source: str) -> str:
    """Where a value came from, in words: `flag`, `env SLUICE_RUN_CONCURRENCY`."""
    if source == "ENVIRONMENT":
        return f"env {_variable(ctx, option)}"
    return _SOURCES.get(source, "default")


def _variable(ctx: typer.Context, option: TyperOption) -> str | None:
    """The variable click took the value from: the option's own, else SLUICE_<COMMAND>_<NAME>."""
    names = [option.envvar] if isinstance(option.envvar, str) else list(option.envvar or [])
    if option.allow_from_autoenv and ctx.auto_envvar_prefix:
        names.append(f"{ctx.auto_envvar_prefix}_{option.name.upper()}")
    return next((name for name in names if os.environ.get(name)), None)


def _key_redactor(rows: list[dict[str, Any]]) -> Redactor:
    """Masks the key itself wherever it appears, were it pasted into some other option."""
    named = next((row["value"] for row in rows if row["key"] == "api-key-env"), None)
    variable = named if isinstance(named, str) and ENV_NAME.fullmatch(named) else None
    key = os.environ.get(variable or DEFAULT_KEY_VARIABLE, "").strip()
    # A placeholder such as OPENAI_API_KEY=x (for a local server) is no secret, and
    # matching it would mask every x in every value.
    return Redactor(Secret(key) if len(key) >= FRAGMENT else None)


def _visible(key: str, value: Any, redact: Redactor) -> Any:
    """The value as JSON data, with anything secret replaced by ***."""
    if value is None:
        return None
    if is_secret_name(key) or "webhook" in key:
        return HIDDEN
    if key.endswith("-env") and isinstance(value, str) and not ENV_NAME.fullmatch(value):
        return HIDDEN  # a key pasted where the name of its variable belongs
    if isinstance(value, list | tuple):
        return [_visible(key, item, redact) for item in value]
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return redact(hide_api_keys(_without_credentials(value)))
    return value


def _without_credentials(text: str) -> str:
    parts = urlsplit(text)
    if "://" not in text or "@" not in parts.netloc:
        return text
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{HIDDEN}@{host}"))


def _table(command: str, loaded: ConfigFile, rows: list[dict[str, Any]]) -> str:
    file = loaded.label if loaded.path else "none (no --config, no ./sluice.toml)"
    lines = [
        f"sluice {command}: each option's value and where it came from",
        f"config file: {file}",
    ]
    cells = [("KEY", "VALUE", "SOURCE")]
    cells += [(row["key"], _cell(row["value"]), _source_text(row, loaded)) for row in rows]
    widths = [max(len(cell[column]) for cell in cells) for column in (0, 1)]
    lines.append("")
    for key, value, source in cells:
        lines.append(f"{key:<{widths[0]}}  {value:<{widths[1]}}  {source}")
    return "\n".join(lines)


def _source_text(row: dict[str, Any], loaded: ConfigFile) -> str:
    if row["source"] == "env":
        return f"env {row['env']}"
    if row["source"] == "file":
        return f"file ({loaded.label})"
    return str(row["source"])


def _cell(value: Any) -> str:
    if value is None:
        return "(not set)"
    if value == HIDDEN:
        return HIDDEN
    return toml_literal(value, _VALUE_WIDTH)
