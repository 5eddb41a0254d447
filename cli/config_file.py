"""Defaults from a TOML file, below flags and SLUICE_* environment variables.

    [run]
    model = "gpt-4o-mini"
    concurrency = 32
    max-error-rate = 0.01

    [cache.prune]            # a command inside a command group: a dotted table
    older-than = "30d"

Precedence is click's: a flag, then its environment variable, then this file,
then the built-in default. Keys are the long flag names without the dashes
(`max-error-rate` or `max_error_rate`); a pair such as --cache/--no-cache is
one key, `cache = false`.

The whole file is checked when a command starts, each value with its option's
own type and range, so that a mistake is reported as the file's (exit 78,
naming the file and the key) instead of as a flag the user never typed. An API
key is never read from a file: a key-like name or value anywhere in it is
refused, without echoing the value.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

import typer
from typer.core import TyperGroup, TyperOption

from pipeline.core.errors import ConfigError

if TYPE_CHECKING:  # Typer vendors click; only its types are needed here.
    from typer._click import Command

DEFAULT_CONFIG = Path("sluice.toml")
CONFIG_PARAM = "config"  # the --config option itself, which a file cannot set

# The last word of a name for a secret itself; `api_key_env` ends in `env`: it names a variable.
_SECRET_WORDS = frozenset(
    {"key", "apikey", "token", "secret", "password", "passwd", "credential", "credentials"}
)
# Provider key formats (OpenAI, Stripe-style, Groq, xAI, Hugging Face, GitHub, Google).
_API_KEY = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-|sk_|rk-|gsk_|xai-|hf_|ghp_|github_pat_|AIza)[A-Za-z0-9_\-]{20,}"
)
_SHOWN_LIMIT = 60  # characters of a bad value quoted back in an error


def is_secret_name(name: str) -> bool:
    """`api_key`, `openai-api-key`, `token`: a name for a secret itself."""
    words = [word for word in re.split(r"[^a-z0-9]+", name.lower()) if word]
    return bool(words) and words[-1] in _SECRET_WORDS


def looks_like_api_key(text: str) -> bool:
    return _API_KEY.search(text) is not None


def hide_api_keys(text: str) -> str:
    return _API_KEY.sub("***", text)


def toml_literal(value: Any, limit: int = _SHOWN_LIMIT) -> str:
    """A value as it would be written in the file, cut to `limit` characters."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(toml_literal(item, limit) for item in value) + "]"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ConfigFile(NamedTuple):
    """The file a command runs with (None: no --config and no ./sluice.toml) and its
    checked values, nested like the command tree: {"run": {"concurrency": 32}}."""

    path: Path | None
    defaults: Mapping[str, Any] = MappingProxyType({})

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else "none"

    def defaults_for(self, command_path: Sequence[str]) -> dict[str, Any]:
        """The table for one command (`["run"]`, `["cache", "prune"]`): click's default_map."""
        table: Mapping[str, Any] = self.defaults
        for name in command_path:
            table = table.get(name, {})
        return dict(table)


def file_options(command: Command) -> dict[str, TyperOption]:
    """The options of `command` a file may set: every option but --config and eager ones."""
    return {
        param.name: param
        for param in command.params
        if isinstance(param, TyperOption)
        and param.expose_value
        and not param.is_eager
        and param.name != CONFIG_PARAM
    }


def load_config(path: Path | None, root: TyperGroup) -> ConfigFile:
    """Read and check the file for every command under `root`; ConfigError (78) when wrong."""
    if path is None:
        if not DEFAULT_CONFIG.is_file():
            return ConfigFile(None)
        path = DEFAULT_CONFIG
    data = read_toml(path)
    _refuse_keys(str(path), data)
    return ConfigFile(path, _checked_group(str(path), data, root, ()))


def read_toml(path: Path, what: str = "config file") -> dict[str, Any]:
    """A TOML file's tables; ConfigError naming the file (`what` says which kind)."""
    import tomllib  # ~5 ms, paid only by a run that has a config file to read

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read {what}: it is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:  # names a line and column, never a value
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _refuse_keys(file: str, data: Mapping[str, Any]) -> None:
    for trail, value in _leaves(data, ()):
        named = any(is_secret_name(name) for name in trail)
        if named or (isinstance(value, str) and looks_like_api_key(value)):
            raise ConfigError(
                f"{file}: {_where(trail)}: API keys are never read from a file; delete it "
                "and put the key in the environment variable named by api-key-env "
                "(OPENAI_API_KEY unless you chose another)"
            )


def _leaves(value: Any, trail: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*trail, key))
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, trail)
    else:
        yield trail, value


def _where(trail: Sequence[str]) -> str:
    """`[run] concurrency`, `[cache.prune] older-than`, or a bare key outside any table."""
    *tables, key = trail
    return f"[{'.'.join(tables)}] {key}" if tables else key


def _checked_group(
    file: str, table: Mapping[str, Any], group: TyperGroup, trail: tuple[str, ...]
) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for key, value in table.items():
        command = group.commands.get(key)
        if not isinstance(value, dict):
            raise ConfigError(
                f"{file}: {_where((*trail, key))} is outside any command's table; "
                f"put it under one of {_tables(group, trail)}"
            )
        if command is None:
            known = _tables(group, trail)
            raise ConfigError(
                f"{file}: unknown section [{'.'.join((*trail, key))}]; sections are {known}"
            )
        checked[key] = _checked_table(file, value, command, (*trail, key))
    return checked


def _tables(group: TyperGroup, trail: tuple[str, ...]) -> str:
    return ", ".join(f"[{'.'.join((*trail, name))}]" for name in group.commands)


def _checked_table(
    file: str, table: Mapping[str, Any], command: Command, trail: tuple[str, ...]
) -> dict[str, Any]:
    if isinstance(command, TyperGroup):
        return _checked_group(file, table, command, trail)
    options = file_options(command)
    ctx = typer.Context(command, info_name=trail[-1])
    checked: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        where = f"{file}: {_where((*trail, key))}"
        if name not in options:
            raise ConfigError(
                f"{file}: [{'.'.join(trail)}] has no option {key}{_hint(name, options)}"
            )
        if name in checked:
            raise ConfigError(f"{where} is set twice (once with dashes, once with underscores)")
        checked[name] = _checked_value(where, options[name], value, ctx)
    return checked


def _hint(name: str, options: Mapping[str, TyperOption]) -> str:
    stem = name.removeprefix("no_")
    if stem != name and stem in options and options[stem].is_flag:
        return f" (write {stem.replace('_', '-')} = false)"
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0].replace('_', '-')}?)" if close else ""


def _checked_value(where: str, param: TyperOption, value: Any, ctx: typer.Context) -> Any:
    """The value as the file gave it (lists for repeatable options), once click accepts it."""
    problem = _shape_problem(param, value)
    if problem:
        raise ConfigError(f"{where} = {toml_literal(value)} {problem}")
    if param.multiple and not isinstance(value, list):
        value = [value]
    try:
        param.process_value(ctx, value)
    except (typer.BadParameter, ValueError, TypeError) as error:
        reason = _reason(getattr(error, "message", str(error)))
        raise ConfigError(f"{where} = {toml_literal(value)} {reason}") from None
    return value


def _shape_problem(param: TyperOption, value: Any) -> str | None:
    """What TOML allows but no option takes: tables, lists for one value, true for a number."""
    if isinstance(value, dict):
        return "is a table, but this option takes a value"
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not param.multiple:
        return "is a list, but this option takes one value"
    if any(isinstance(item, dict | list) for item in items):
        return "is not a list of values"
    if any(isinstance(item, str) and "\x00" in item for item in items):
        return "holds a NUL character, which no command line can carry"
    if param.is_flag and not all(isinstance(item, bool) for item in items):
        return "is not valid: write true or false"
    if not param.is_flag and any(isinstance(item, bool) for item in items):
        return "is not valid: only on/off options take true or false"
    return None


def _reason(message: str) -> str:
    """Click's (Pydantic's) wording turned to follow `key = value`."""
    message = message.removeprefix("Value error, ").rstrip(".")
    valid = "Input should be a valid "
    if message.startswith(valid):
        return "is not a valid " + message.removeprefix(valid).split(",")[0]
    if message.startswith("Input should be "):
        return "is not valid: it should be " + message.removeprefix("Input should be ")
    return "is not valid: " + message
