"""The `sluice` command: a Typer root that only wires sub-commands together."""

from __future__ import annotations

from importlib.metadata import version
from typing import Annotated

import typer

from cli.run import run
from cli.sim import sim

app = typer.Typer(
    name="sluice",
    help="Send every item of a JSONL or Parquet file through an OpenAI-compatible API, "
    "as fast as it allows, without losing an item.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"sluice {version('sluice')}")
        raise typer.Exit()


@app.callback()
def root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass  # options that apply before any command (--version) live here


app.command("run")(run)
app.command("sim")(sim)


def main() -> None:
    app()
