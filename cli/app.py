"""The `sluice` command: a Typer root that only wires sub-commands together."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.cache import cache_app
from cli.config_option import CONFIG_HELP, ConfigurableGroup
from cli.config_show import config_app
from cli.doctor import doctor
from cli.help_format import readable_help
from cli.history import history
from cli.merge import MERGE_EPILOG, merge
from cli.quick_options import convert_plain_values_quickly
from cli.reduce import REDUCE_EPILOG, reduce_command
from cli.retry import retry
from cli.run import RUN_EPILOG, plan, run
from cli.serve import app as serve_app
from cli.sim import sim
from cli.status import status
from cli.verify import verify
from pipeline import __version__

readable_help()
convert_plain_values_quickly()

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


@app.callback()
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


app.command("run", epilog=RUN_EPILOG)(run)
app.command("plan", epilog=RUN_EPILOG)(plan)
app.command("retry")(retry)
app.command("reduce", epilog=REDUCE_EPILOG)(reduce_command)
app.command("sim")(sim)
app.command("status")(status)
app.command("verify")(verify)
app.command("merge", epilog=MERGE_EPILOG)(merge)
app.command("history")(history)
app.command("doctor")(doctor)
app.add_typer(serve_app, name="serve")
app.add_typer(cache_app, name="cache")
app.add_typer(config_app, name="config")


def main() -> None:
    app()
