"""Defaults from a TOML file, below flags and SLUICE_* environment variables.

    [run]
    model = "gpt-4o-mini"
    concurrency = 32
    max-error-rate = 0.01

Precedence is click's: a flag, then its environment variable, then this file,
then the built-in default. Keys are the long flag names without the dashes.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError, UsageError

DEFAULT_CONFIG = Path("sluice.toml")


def load_defaults(path: Path | None, options: Mapping[str, set[str]]) -> dict[str, dict[str, Any]]:
    """`{command: {parameter: value}}` for click's default_map; {} when there is no file."""
    if path is None:
        if not DEFAULT_CONFIG.is_file():
            return {}
        path = DEFAULT_CONFIG
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {str(path)!r} does not exist") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc}") from exc
    return {command: _section(path, command, values, options) for command, values in data.items()}


def _section(
    path: Path, command: str, values: Any, options: Mapping[str, set[str]]
) -> dict[str, Any]:
    if command not in options or not isinstance(values, dict):
        known = ", ".join(f"[{name}]" for name in sorted(options))
        raise UsageError(f"{path}: unknown section [{command}]; sections are {known}")
    section = {key.replace("-", "_"): value for key, value in values.items()}
    unknown = sorted(set(section) - options[command])
    if unknown:
        raise UsageError(f"{path}: [{command}] has no option {', '.join(unknown)}")
    return section
