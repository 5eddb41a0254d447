"""The one place where errors become a message on stderr and an exit code."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from pipeline.errors import SluiceError


def fail(error: SluiceError) -> NoReturn:
    say(f"error: {error.message}")
    raise typer.Exit(error.exit_code)


def say(message: str) -> None:
    print(f"sluice: {message}", file=sys.stderr, flush=True)
