"""`sluice history [JOB]`: a job's recent runs with their trends, or every job's last run."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.errors import fail
from pipeline.core.errors import SluiceError

DEFAULT_LIMIT = 20


def history(
    job: Annotated[
        str | None,
        typer.Argument(
            help="The job whose runs to show: its --job name, by default the output file's "
            "name without its suffix (out.jsonl -> out). Without it, every job's last run.",
            show_default=False,
            metavar="JOB",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="Show at most this many recent runs.")
    ] = DEFAULT_LIMIT,
) -> None:
    """Show the recent runs of a job, oldest first, with ▲/▼ where a run's duration,
    pace or cost is more than 20% off the median; or, without JOB, every job's last run.
    Each finished run is recorded in $XDG_STATE_HOME/sluice/history (else
    ~/.local/state/sluice/history), one file per job."""
    # Imported when history runs, not at every start-up: the tables bring rich.
    from cli.history_view import show_jobs, show_runs
    from pipeline.report.history import default_history_dir, list_jobs

    directory = default_history_dir()
    try:
        if job is None:
            show_jobs(directory, list_jobs(directory), as_json)
        else:
            show_runs(directory, job, limit, as_json)
    except SluiceError as error:
        fail(error)
