"""The `sluice` command: a Typer root that only wires sub-commands together. A command
line that names one command builds that branch alone (see `command_alone`)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.config_file import DEFAULT_CONFIG
from cli.config_option import CONFIG_HELP, ConfigurableGroup
from cli.help_format import readable_help
from cli.quick_options import convert_plain_values_quickly
from pipeline import __version__

readable_help()
convert_plain_values_quickly()


def _version_lines(verbose: bool) -> list[str]:
    lines = [f"sluice {__version__}"]
    if verbose:
        # `cli` and `pipeline` are generic names: say which copy this is.
        package = Path(__file__).resolve().parent.parent
        lines += [f"installed in {package}", f"python: {sys.executable}"]
    return lines


_VERSION_FLAGS = "sluice.version_flags"  # where --version and --verbose wait in ctx.meta


def _answer_version(ctx: typer.Context, param: typer.CallbackParam, value: bool) -> bool:
    """--version and --verbose are eager, so `sluice --version` is answered before
    --config or a command's options are read: converting those makes Typer import
    pydantic, which takes longer than the rest of the answer. The second of the two
    callbacks (in command-line order) has both values."""
    if ctx.resilient_parsing:  # shell completion: nothing is printed
        return value
    given = ctx.meta.setdefault(_VERSION_FLAGS, {})
    given[param.name] = value
    if given.get("show_version") and "verbose" in given:
        for line in _version_lines(given["verbose"]):
            typer.echo(line)
        raise typer.Exit()
    return value


def root(
    ctx: typer.Context,
    # Read by each command's own --config option, which loads the file (cli/config_option.py).
    config: Annotated[Path | None, typer.Option(metavar="FILE", help=CONFIG_HELP)] = None,
    # Both answered by _answer_version while the flags are parsed.
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_answer_version, help="Print the version and exit."
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            is_eager=True,
            callback=_answer_version,
            help="With --version: also print where sluice is installed.",
        ),
    ] = False,
) -> None:
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()


# name → (module, attribute, epilog attribute): imported only when the command is
# part of the tree being built.
_COMMANDS: dict[str, tuple[str, str, str | None]] = {
    "run": ("cli.run", "run", "RUN_EPILOG"),
    "plan": ("cli.run", "plan", "RUN_EPILOG"),
    "retry": ("cli.retry", "retry", None),
    "reduce": ("cli.reduce", "reduce_command", "REDUCE_EPILOG"),
    "sim": ("cli.sim", "sim", None),
    "status": ("cli.status", "status", None),
    "verify": ("cli.verify", "verify", None),
    "merge": ("cli.merge", "merge", "MERGE_EPILOG"),
    "history": ("cli.history", "history", None),
    "doctor": ("cli.doctor", "doctor", None),
}
_GROUPS: dict[str, tuple[str, str]] = {
    "serve": ("cli.serve", "app"),
    "cache": ("cli.cache", "cache_app"),
    "config": ("cli.config_show", "config_app"),
}
# `config show` reads the other commands' options from the tree, so it always
# gets the whole tree.
_NEEDS_WHOLE_TREE = frozenset({"config"})


def build_app(only: str | None = None) -> typer.Typer:
    """The command tree: every command, or only the one named (with the root's own
    options), which is all a command needs to run and spares Typer building the ~260
    options of the other commands (~60 ms of every start)."""
    app = typer.Typer(
        name="sluice",
        # Gives every command a --config option of its own (see cli/config_option.py).
        cls=ConfigurableGroup,
        help="Send every item of a JSONL or Parquet file through an OpenAI-compatible API, "
        "as fast as it allows, without losing an item.",
        # `sluice` alone prints the help and exits 0 (see `root`).
        invoke_without_command=True,
        pretty_exceptions_show_locals=False,
        # Every flag of `sluice CMD` can also come from SLUICE_CMD_FLAG (SLUICE_RUN_CONCURRENCY).
        context_settings={"auto_envvar_prefix": "SLUICE"},
        add_completion=True,
    )

    app.callback()(root)
    for name, (module, attribute, epilog) in _COMMANDS.items():
        if only in (None, name):
            loaded = importlib.import_module(module)
            text = getattr(loaded, epilog) if epilog else None
            app.command(name, epilog=text)(getattr(loaded, attribute))
    for name, (module, attribute) in _GROUPS.items():
        if only in (None, name):
            app.add_typer(getattr(importlib.import_module(module), attribute), name=name)
    return app


def command_alone(
    args: Sequence[str], environ: Mapping[str, str], default_config_here: bool
) -> str | None:
    """The command a command line runs, when its branch alone gives the same result as
    the whole tree; None when the whole tree is needed: the root's help, shell
    completion, an unknown name, or a config file, whose tables are checked against
    every command (cli/config_file.py)."""
    if not args or args[0] not in {*_COMMANDS, *_GROUPS} - _NEEDS_WHOLE_TREE:
        return None
    if "_SLUICE_COMPLETE" in environ or "SLUICE_CONFIG" in environ:
        return None
    if any(arg == "--config" or arg.startswith("--config=") for arg in args):
        return None
    return None if default_config_here else args[0]


def __getattr__(name: str) -> Any:
    """`cli.app.app`, the whole tree, is built the first time it is asked for."""
    if name == "app":
        whole = globals()["app"] = build_app()
        return whole
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    build_app(command_alone(sys.argv[1:], os.environ, DEFAULT_CONFIG.exists()))()
