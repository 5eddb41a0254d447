"""The `sluice` command: a Typer root that only wires sub-commands together."""

from __future__ import annotations

import typer

from cli.run import run
from cli.sim import sim

app = typer.Typer(
    name="sluice",
    help="Send every item of a JSONL or Parquet file through an OpenAI-compatible API, "
    "as fast as its limits allow, without losing or paying twice for an item.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.command("run")(run)
app.command("sim")(sim)


def main() -> None:
    app()
