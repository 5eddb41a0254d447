"""`sluice retry QUARANTINE... -o OUT`: send quarantined items again.

It takes every option of `sluice run` (the same model, prompt and endpoint as
the first run, usually): the same command, with quarantine files as its inputs.
"""

from __future__ import annotations

import typer

from cli.run import run_command

RETRY_HELP = (
    "Send the items of quarantine files again, under their original ids; results go to -o "
    "and what fails again to its quarantine file.\n\n"
    "Give the same model, prompt and options as the first run (or change them: a retry is a "
    "run of its own). Items quarantined as invalid input are carried over unchanged, since "
    "sending them again cannot help. Check the whole job afterwards with: sluice verify INPUT "
    "--results FIRST --results RETRIED --quarantine RETRIED_QUARANTINE."
)

QUARANTINE_ARGUMENT = typer.Argument(
    metavar="QUARANTINE",
    help="Quarantine files written by sluice run (.jsonl or .jsonl.gz).",
)

retry = run_command(QUARANTINE_ARGUMENT, requeue=True, help_text=RETRY_HELP)
