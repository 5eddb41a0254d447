"""The `sluice` console script: `sluice --version` is answered before anything else is
imported (typer and the command tree take ~0.3 s); everything else goes to cli.app."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from pipeline import __version__

        print(f"sluice {__version__}")
        return
    from cli.app import main as run_command_line

    run_command_line()
