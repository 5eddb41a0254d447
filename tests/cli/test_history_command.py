"""`sluice history [JOB]` on histories that runs recorded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner, Result

from cli.app import app as sluice_app
from cli.history import history
from pipeline.report.after_run import AlertSettings, record_run
from pipeline.report.history import default_history_dir, history_file

# Until `history` is registered on the sluice app, the tests go through an app of their own.
REGISTERED = any(command.name == "history" for command in sluice_app.registered_commands)


def _app() -> typer.Typer:
    if REGISTERED:
        return sluice_app
    app = typer.Typer(add_completion=False)
    app.command("history")(history)
    app.callback()(lambda: None)  # a group, so the command is named as under sluice
    return app


def run_history(state_home: Path, *args: str) -> Result:
    env = {"XDG_STATE_HOME": str(state_home), "NO_COLOR": "1", "COLUMNS": "200"}
    return CliRunner().invoke(_app(), ["history", *args], env=env)


def summary(
    wall: float, exit_code: int = 0, cost: float | None = 0.10, **changes: Any
) -> dict[str, Any]:
    return {
        "ended_at": "2026-11-30T02:03:20.654321Z",
        "exit_code": exit_code,
        "items": 1000,
        "resumed": 0,
        "quarantined": 10,
        "wall_seconds": wall,
        "items_per_second": round(1000 / wall, 1),
        "cost": {"currency": "USD", "this_attempt": cost},
        **changes,
    }


@pytest.fixture
def state_home(tmp_path: Path) -> Path:
    """Four runs of `reviews` (the last one slow) and one failed run of `tickets`."""
    home = tmp_path / "state"
    directory = default_history_dir({"XDG_STATE_HOME": str(home)})
    for wall in (100.0, 105.0, 95.0, 400.0):
        record_run(summary(wall), AlertSettings(job="reviews", history_dir=directory))
    record_run(
        summary(3.0, exit_code=69, cost=None), AlertSettings(job="tickets", history_dir=directory)
    )
    return home


def test_a_job_shows_its_runs_with_trend_markers(state_home: Path) -> None:
    result = run_history(state_home, "reviews")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "ended", "exit", "items", "quarantined", "took", "items/s", "cost", "alerts"
    ]  # fmt: skip
    rows = [line for line in lines if line.lstrip().startswith("20")]
    assert len(rows) == 4
    assert "1m 40s" in rows[0] and "▲" not in rows[0] and "▼" not in rows[0]
    assert "6m 40s ▲" in rows[3] and "2.5 ▼" in rows[3]
    assert rows[3].rstrip().endswith("2 warnings")
    assert "more than 20% above/below the median" in result.stdout
    assert "took 1m 42s, 9.8 items/s, cost $0.1000" in result.stdout


def test_without_a_job_every_job_shows_its_last_run(state_home: Path) -> None:
    result = run_history(state_home)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:] if line.strip()}
    assert set(rows) == {"reviews", "tickets"}
    assert "6m 40s" in rows["reviews"] and "2 warnings" in rows["reviews"]
    assert " 69 " in rows["tickets"] and "1 critical" in rows["tickets"]


def test_json_for_a_job_holds_the_records_and_the_medians(state_home: Path) -> None:
    result = run_history(state_home, "reviews", "--json", "--limit", "2")
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["job"] == "reviews"
    assert report["file"] == str(history_file(state_home / "sluice" / "history", "reviews"))
    assert [run["wall_seconds"] for run in report["runs"]] == [95.0, 400.0]
    assert [f["rule"] for f in report["runs"][1]["findings"]] == ["slow_run", "throughput_down"]
    assert report["median"] == {"wall_seconds": 247.5, "items_per_second": 6.5, "cost": 0.1}


def test_json_without_a_job_lists_the_jobs(state_home: Path) -> None:
    report = orjson.loads(run_history(state_home, "--json").stdout)
    assert [job["job"] for job in report["jobs"]] == ["reviews", "tickets"]
    assert report["jobs"][1]["last_run"]["exit_code"] == 69
    assert report["history_dir"] == str(state_home / "sluice" / "history")


def test_an_unknown_job_is_one_line_and_exit_66(state_home: Path) -> None:
    result = run_history(state_home, "nope")
    assert result.exit_code == 66
    assert result.stderr.strip().splitlines() == [
        f"sluice: error: no history for job 'nope' in {state_home / 'sluice' / 'history'}"
    ]


def test_a_job_name_without_letters_or_digits_is_a_usage_error(state_home: Path) -> None:
    result = run_history(state_home, "///")
    assert result.exit_code == 2
    assert "needs a letter or a digit" in result.stderr


def test_no_history_yet_says_so(tmp_path: Path) -> None:
    result = run_history(tmp_path / "empty")
    assert result.exit_code == 0
    assert result.stdout.startswith("no runs recorded yet in ")
    assert orjson.loads(run_history(tmp_path / "empty", "--json").stdout)["jobs"] == []


def test_damaged_lines_are_skipped_and_said_on_stderr(state_home: Path) -> None:
    path = history_file(state_home / "sluice" / "history", "reviews")
    with open(path, "ab") as killed:
        killed.write(b'{"exit_code": 0, "ite')
    result = run_history(state_home, "reviews")
    assert result.exit_code == 0
    assert "skipped 1 damaged line in " in result.stderr
    assert len([line for line in result.stdout.splitlines() if line.lstrip().startswith("20")]) == 4


def test_the_help_explains_the_command(state_home: Path) -> None:
    result = run_history(state_home, "--help")
    assert result.exit_code == 0
    for words in ("recent runs", "--json", "--limit", "XDG_STATE_HOME", "JOB"):
        assert words in result.stdout


def test_history_as_a_process(state_home: Path, tmp_path: Path) -> None:
    """The command as a user runs it: `sluice history` once registered, a tiny app until then."""
    if REGISTERED:
        command = [sys.executable, "-m", "cli", "history"]
    else:
        script = tmp_path / "history_app.py"
        script.write_text(
            "import typer\nfrom cli.history import history\n"
            "app = typer.Typer()\napp.command('history')(history)\napp.callback()(lambda: None)\n"
            "app()\n"
        )
        command = [sys.executable, str(script), "history"]
    env = {"XDG_STATE_HOME": str(state_home), "NO_COLOR": "1", "PATH": "/usr/bin:/bin"}
    listed = subprocess.run(command, capture_output=True, env=env, timeout=60, check=False)
    assert listed.returncode == 0, listed.stderr
    assert b"reviews" in listed.stdout and b"tickets" in listed.stdout
    shown = subprocess.run(
        [*command, "reviews", "--json"], capture_output=True, env=env, timeout=60
    )
    assert shown.returncode == 0 and len(orjson.loads(shown.stdout)["runs"]) == 4
    missing = subprocess.run([*command, "nope"], capture_output=True, env=env, timeout=60)
    assert missing.returncode == 66 and missing.stdout == b""
    assert missing.stderr.decode().count("\n") == 1
