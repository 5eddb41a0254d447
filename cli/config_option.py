"""`--config FILE`, accepted before the command (`sluice --config f run`) and after it
(`sluice run --config f`) with the same meaning.

Every command (each leaf of the command tree) gets its own --config option, so
that its --help shows it and click parses it like any other option. The option
is eager: its callback runs before any other option takes its value, loads the
file (the one given after the command, else before it, else $SLUICE_CONFIG,
else ./sluice.toml when it exists) and hands this command's table to click as
the context's
default_map. Click then takes each option from the flag, else its SLUICE_*
variable, else the file, else the built-in default, and records which
(`ctx.get_parameter_source`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup, TyperOption
from typer.main import get_command

from cli.config_file import CONFIG_PARAM, ConfigFile, load_config
from cli.errors import fail
from pipeline.core.errors import SluiceError, UsageError

if TYPE_CHECKING:  # Typer vendors click; only its types are needed here.
    from typer._click import Parameter

CONFIG_HELP = (
    "TOML file of defaults, with a \\[run], \\[sim], ... table of option = value "
    "(default: $SLUICE_CONFIG, else ./sluice.toml when it exists). Flags and SLUICE_* "
    "variables win over it. May be given before the command or after it."
)
_LOADED = "sluice.config_file"  # where the loaded file waits in ctx.meta for `config show`


class ConfigurableGroup(TyperGroup):
    """The root group: every command below it accepts --config."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        # One option object serves every command: click keeps no parse state in it.
        _add_config_option(self, _config_option())


def loaded_config(ctx: typer.Context) -> ConfigFile:
    """The file the running command loaded (its --config callback has run by now)."""
    loaded = ctx.meta.get(_LOADED)
    return loaded if isinstance(loaded, ConfigFile) else ConfigFile(None)


def _add_config_option(group: TyperGroup, option: Parameter) -> None:
    for command in group.commands.values():
        if isinstance(command, TyperGroup):
            _add_config_option(command, option)
        elif all(param.name != CONFIG_PARAM for param in command.params):
            command.params.append(option)


def _config_option() -> Parameter:
    """A --config option built by Typer from a signature, as every other option is."""
    holder = typer.Typer()
    holder.command()(_takes_config)
    option = get_command(holder).params[0]
    # SLUICE_CONFIG (the root's) names the file; no SLUICE_RUN_CONFIG and the like besides.
    if isinstance(option, TyperOption):
        option.allow_from_autoenv = False
    return option


def _apply_config_file(ctx: typer.Context, value: Path | None) -> Path | None:
    # Resilient parsing is shell completion, or `config show` reading another
    # command's flags: nothing may be loaded or refused then.
    if ctx.resilient_parsing:
        return value
    root = ctx.find_root()
    if not isinstance(root.command, TyperGroup):  # a command run on its own, not under `sluice`
        return value
    source = root.get_parameter_source(CONFIG_PARAM)
    from_env = source is not None and source.name == "ENVIRONMENT"
    try:
        path = chosen_config(root.params.get(CONFIG_PARAM), value, before_from_env=from_env)
        loaded = load_config(path, root.command)
    except SluiceError as error:
        fail(error)
    ctx.meta[_LOADED] = loaded
    ctx.default_map = loaded.defaults_for(_command_path(ctx))
    return value


def chosen_config(
    before: Path | None, after: Path | None, before_from_env: bool = False
) -> Path | None:
    """The --config given after the command, else before it (or SLUICE_CONFIG, which a
    flag beats); two flags only when they name the same file."""
    if before_from_env or before is None or after is None:
        return after if after is not None else before
    if before.resolve() != after.resolve():
        raise UsageError(
            f"--config is given twice, as {before} before the command and {after} after it; "
            "give it once"
        )
    return after


def _command_path(ctx: typer.Context) -> list[str]:
    """["run"] for `sluice run`, ["cache", "prune"] for `sluice cache prune`."""
    names: list[str] = []
    node: Any = ctx
    while node.parent is not None:
        names.insert(0, node.info_name)
        node = node.parent
    return names


def _takes_config(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            metavar="FILE",
            is_eager=True,
            # The command's own function does not take it: only the callback reads it.
            expose_value=False,
            callback=_apply_config_file,
            help=CONFIG_HELP,
        ),
    ] = None,
) -> None:
    """Only here for Typer to build the --config option from."""
