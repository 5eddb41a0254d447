"""`sluice retry QUARANTINE... -o OUT`: send quarantined items again.

It takes every option of `sluice run` (the same model, prompt and endpoint as
the first run, usually), so its parameters are run's own, with the inputs
replaced by the quarantine files.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import typer

from cli.errors import fail
from cli.run import execute
from cli.run import run as run_command
from cli.run_config import build_config
from pipeline.core.errors import SluiceError

RETRY_HELP = (
    "Send the items of quarantine files again, under their original ids; results go to -o "
    "and what fails again to its quarantine file.\n\n"
    "Give the same model, prompt and options as the first run (or change them: a retry is a "
    "run of its own). Items quarantined as invalid input are carried over unchanged, since "
    "sending them again cannot help. Check the whole job afterwards with: sluice verify INPUT "
    "--results FIRST --results RETRIED --quarantine RETRIED_QUARANTINE."
)

QuarantineFiles = Annotated[
    list[str],
    typer.Argument(
        metavar="QUARANTINE",
        help="Quarantine files written by sluice run (.jsonl or .jsonl.gz).",
    ),
]


def retry(**flags: Any) -> None:
    flags["inputs"] = flags.pop("quarantine_files")
    try:
        config = build_config(flags, requeue=True)
    except SluiceError as error:
        fail(error)
    execute(config, flags["quiet"])


def _retry_signature() -> inspect.Signature:
    """run's parameters, with its INPUT argument replaced by QUARANTINE."""
    run_parameters = list(inspect.signature(run_command, eval_str=True).parameters.values())
    files = inspect.Parameter(
        "quarantine_files", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=QuarantineFiles
    )
    return inspect.Signature([files, *run_parameters[1:]])


retry.__signature__ = _retry_signature()  # type: ignore[attr-defined]
retry.__annotations__ = {p.name: p.annotation for p in retry.__signature__.parameters.values()}  # type: ignore[attr-defined]
retry.__doc__ = RETRY_HELP
