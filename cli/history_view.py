"""How `sluice history` shows runs: a table with trend markers, or JSON.

Imported by the command when it runs, not by cli/history.py at start-up: it brings rich.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.errors import say
from pipeline.core.errors import InputMissing
from pipeline.core.words import counted, money
from pipeline.report.alerts import (
    Severity,
    cost,
    currency,
    format_duration,
    is_comparable,
    items_per_second,
    median_of,
    wall_seconds,
)
from pipeline.report.history import JobHistory, history_file, read_recent

TREND_BAND = 0.2  # a figure this far above or below the median gets a marker
_PIPE_WIDTH = 200  # when stdout is not a terminal, rows stay whole instead of wrapping


def show_jobs(directory: Path, jobs: Sequence[JobHistory], as_json: bool) -> None:
    if as_json:
        listed = [{"job": j.job, "file": str(j.path), "last_run": j.last_run} for j in jobs]
        _print_json({"history_dir": str(directory), "jobs": listed})
        return
    if not jobs:
        typer.echo(f"no runs recorded yet in {directory}")
        return
    table = _table("job", "last run", "exit", "items", "quarantined", "took", "cost", "alerts")
    for entry in jobs:
        run = entry.last_run or {}
        table.add_row(escape(entry.job), *_run_cells(run, {}))
    _console().print(table)


def show_runs(directory: Path, job: str, limit: int, as_json: bool) -> None:
    path = history_file(directory, job)
    try:
        recent = read_recent(path, limit)
    except FileNotFoundError:
        raise InputMissing(f"no history for job {job!r} in {directory}") from None
    except OSError as error:
        raise InputMissing(f"cannot read {path}: {error.strerror}") from None
    if recent.skipped:
        say(f"skipped {counted(recent.skipped, 'damaged line')} in {path}")
    medians = _medians(recent.runs)
    if as_json:
        _print_json({"job": job, "file": str(path), "runs": recent.runs, "median": medians})
        return
    table = _table("ended", "exit", "items", "quarantined", "took", "items/s", "cost", "alerts")
    for run in recent.runs:
        when, exit_cell, items, quarantined, took, price, alerts = _run_cells(run, medians)
        pace = _marked(items_per_second(run), medians, "items_per_second", run)
        table.add_row(when, exit_cell, items, quarantined, took, pace, price, alerts)
    console = _console()
    console.print(table)
    if len(recent.runs) > 1 and (note := _trend_note(medians, currency(recent.runs[-1]))):
        console.print(note)


# ---- figures as cells


_FIGURES: dict[str, Callable[[Mapping[str, Any]], float | None]] = {
    "wall_seconds": wall_seconds,
    "items_per_second": items_per_second,
    "cost": cost,
}
# Which way is bad: longer and dearer runs, a lower pace.
_WORSE_WHEN_HIGHER = {"wall_seconds": True, "items_per_second": False, "cost": True}


def _medians(runs: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """The medians the trend markers compare with: finished runs that had work to do."""
    comparable = [run for run in runs if is_comparable(run)]
    return {name: median_of(comparable, figure) for name, figure in _FIGURES.items()}


def _run_cells(run: Mapping[str, Any], medians: Mapping[str, float | None]) -> tuple[str, ...]:
    code = run.get("exit_code")
    return (
        _when(run),
        f"[red]{code}[/red]" if code != 0 else "0",
        _count(run.get("items")),
        _count(run.get("quarantined")),
        _marked(wall_seconds(run), medians, "wall_seconds", run),
        _marked(cost(run), medians, "cost", run),
        _alerts(run.get("findings")),
    )


def _marked(
    value: float | None, medians: Mapping[str, float | None], name: str, run: Mapping[str, Any]
) -> str:
    if value is None:
        return "-"
    shown = _shown(name, value, run)
    median = medians.get(name)
    if median is None or median <= 0 or not is_comparable(run):
        return shown
    if abs(value - median) <= TREND_BAND * median:
        return shown
    higher = value > median
    colour = "red" if higher == _WORSE_WHEN_HIGHER[name] else "green"
    return f"{shown} [{colour}]{'▲' if higher else '▼'}[/{colour}]"


def _shown(name: str, value: float, run: Mapping[str, Any]) -> str:
    if name == "wall_seconds":
        return format_duration(value)
    if name == "cost":
        return money(value, currency(run))
    return f"{value:,.1f}"


def _trend_note(medians: Mapping[str, float | None], code: str) -> str | None:
    took, pace, price = (medians[name] for name in ("wall_seconds", "items_per_second", "cost"))
    parts = [
        *([f"took {format_duration(took)}"] if took is not None else []),
        *([f"{pace:,.1f} items/s"] if pace is not None else []),
        *([f"cost {money(price, code)}"] if price is not None else []),
    ]
    if not parts:
        return None
    return (
        f"▲/▼: more than {TREND_BAND:.0%} above/below the median of the finished runs "
        f"shown ({', '.join(parts)})"
    )


def _when(run: Mapping[str, Any]) -> str:
    stamp = run.get("ended_at") or run.get("recorded_at")
    if not isinstance(stamp, str):
        return "-"
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return escape(stamp)


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "-"


_PLURALS = {Severity.INFO: "info", Severity.WARNING: "warnings", Severity.CRITICAL: "critical"}


def _alerts(findings: Any) -> str:
    if not isinstance(findings, list) or not findings:
        return ""
    labels = [f.get("severity") for f in findings if isinstance(f, dict)]
    parts = [
        counted(labels.count(level.label), level.label, _PLURALS[level])
        for level in sorted(Severity, reverse=True)
        if level.label in labels
    ]
    return ", ".join(parts)


# ---- output


def _table(*columns: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for name in columns:
        numeric = name in ("exit", "items", "quarantined", "took", "items/s", "cost")
        table.add_column(name, justify="right" if numeric else "left", no_wrap=True)
    return table


def _console() -> Console:
    terminal = sys.stdout.isatty()
    return Console(highlight=False, width=None if terminal else _PIPE_WIDTH)


def _print_json(value: Any) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())
