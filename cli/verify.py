"""`sluice verify INPUT... --results R --quarantine Q`: check a finished run lost nothing."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer

from cli.errors import fail
from pipeline.core.errors import SluiceError

VERIFY_HELP = (
    "Check that a finished run kept sluice's promise: every input item is in exactly one of "
    "the results or the quarantine, exactly once, and each output file is in input order.\n\n"
    "Give the inputs and --id-field as given to sluice run, and the files it wrote: items "
    "without a valid id are matched with their quarantine rows by file and line. "
    "After a sluice retry, give both results files and the retry's quarantine file. "
    "Exit code 0 when the promise holds; 1 when it does not, with the ids at fault listed."
)


def verify(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT",
            help="The run's inputs, in the same order: .jsonl, .jsonl.gz, .json (lines or one "
            "array), .parquet, or - for stdin.",
        ),
    ],
    results: Annotated[
        list[str],
        typer.Option(
            "--results",
            "-r",
            help="A results file the run wrote (its -o). Repeat it for a retry's results.",
        ),
    ],
    quarantine: Annotated[
        list[str] | None,
        typer.Option(
            "--quarantine",
            help="A quarantine file the run wrote (sluice run names it after its -o: "
            "out.jsonl -> out.quarantine.jsonl). Repeat it for several; leave it out when "
            "there is none.",
        ),
    ] = None,
    id_field: Annotated[
        str,
        typer.Option(help="Item field holding its id, as given to sluice run."),
    ] = "id",
    show: Annotated[
        int, typer.Option(min=0, help="List at most this many ids or rows of each kind of fault.")
    ] = 20,
    where: Annotated[
        str | None,
        typer.Option(
            metavar="EXPR",
            help="The --where the run was given: the items it left out may be missing from "
            "the results (as --drop-skipped writes them).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of text.")
    ] = False,
) -> None:
    # Imported here, not at start-up: the readers bring pyarrow and ijson.
    from pipeline.prepare.where import compile_where
    from pipeline.run.verify import verify as verify_run

    try:
        selected = compile_where(where) if where is not None else None
        report = verify_run(inputs, results, quarantine or [], id_field, show, selected)
    except SluiceError as error:
        fail(error)
    if as_json:
        typer.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo("\n".join(report.lines()))
    raise typer.Exit(0 if report.ok else 1)


verify.__doc__ = VERIFY_HELP
