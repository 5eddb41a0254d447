"""The `sluice` command: a Typer root that only wires sub-commands together."""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path
from typing import Annotated

import typer

from cli.cache import cache_app
from cli.config_file import load_defaults
from cli.errors import fail
from cli.retry import retry
from cli.run import run
from cli.sim import sim
from cli.status import status
from cli.verify import verify
from pipeline.core.errors import SluiceError

app = typer.Typer(
    name="sluice",
    help="Send every item of a JSONL or Parquet file through an OpenAI-compatible API, "
    "as fast as it allows, without losing an item.",
    # `sluice` alone prints the help and exits 0 (see `root`).
    invoke_without_command=True,
    pretty_exceptions_show_locals=False,
    # Every flag of `sluice CMD` can also come from SLUICE_CMD_FLAG (SLUICE_RUN_CONCURRENCY).
    context_settings={"auto_envvar_prefix": "SLUICE"},
    add_completion=False,
)


def _version_lines(verbose: bool) -> list[str]:
    lines = [f"sluice {version('sluice')}"]
    if verbose:
        # `cli` and `pipeline` are generic names: say which copy this is.
        package = Path(__file__).resolve().parent.parent
        lines += [f"installed in {package}", f"python: {sys.executable}"]
    return lines


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            help="TOML file of defaults, with a \\[run] or \\[sim] table of flag = value "
            "(default: ./sluice.toml when it exists). Flags and SLUICE_* variables win over it."
        ),
    ] = None,
    show_version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="With --version: also print where sluice is installed."
        ),
    ] = False,
) -> None:
    if show_version:
        for line in _version_lines(verbose):
            typer.echo(line)
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()
    options = {
        name: {param.name for param in command.params if param.name}
        for name, command in getattr(ctx.command, "commands", {}).items()
    }
    try:
        ctx.default_map = load_defaults(config, options)
    except SluiceError as error:
        fail(error)


app.command("run")(run)
app.command("retry")(retry)
app.command("sim")(sim)
app.command("status")(status)
app.command("verify")(verify)
app.add_typer(cache_app, name="cache")


def main() -> None:
    app()
