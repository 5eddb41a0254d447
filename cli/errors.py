"""The one place where errors become a message on stderr and an exit code."""

from __future__ import annotations

import os
import sys
import traceback
from typing import NoReturn

import typer

from pipeline.core.errors import SluiceError


def fail(error: SluiceError) -> NoReturn:
    say(f"error: {error.message}")
    raise typer.Exit(error.exit_code)


def report_internal_error(bug: Exception) -> NoReturn:
    """A bug of ours: one line by default, the traceback on request (SLUICE_DEBUG=1)."""
    if os.environ.get("SLUICE_DEBUG"):
        traceback.print_exception(bug)
    say(f"internal error (a bug in sluice, please report it): {type(bug).__name__}: {bug}")
    say("run again with SLUICE_DEBUG=1 to see the traceback")
    raise typer.Exit(70)


def say(message: str) -> None:
    print(f"sluice: {message}", file=sys.stderr, flush=True)
