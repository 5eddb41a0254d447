"""At the end of a run: compare it with its job's history, record it, post the alert.

The one call the CLI makes once a run has its summary (whatever its exit code):

    after = record_run(summary, AlertSettings(job="reviews", webhook_url=url))
    for finding in after.findings: print(finding_line(finding))
    for warning in after.warnings: print(warning)

Nothing here changes the run's outcome: a history that cannot be read or
written, or a webhook that is down, becomes a warning, never an error, and the
findings never change the exit code. The run is compared before it is
recorded, so it is never its own baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pipeline.core.errors import UsageError
from pipeline.report.alerts import (
    DEFAULT_THRESHOLDS,
    Finding,
    Severity,
    Thresholds,
    at_least,
    evaluate,
)
from pipeline.report.history import (
    append_run,
    default_history_dir,
    history_file,
    history_record,
    read_recent,
)

if TYPE_CHECKING:
    from pipeline.report.webhook import Delivery

# Runs read back to find the baseline: it takes the last `window` comparable ones,
# and failed or empty runs in between do not count towards those.
READ_BACK_FACTOR = 5


class AlertSettings(NamedTuple):
    job: str
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    webhook_url: str | None = None
    min_severity: Severity = Severity.WARNING  # the webhook is posted from this severity on
    history_dir: Path | None = None  # None: $XDG_STATE_HOME/sluice/history


class AfterRun(NamedTuple):
    findings: list[Finding]  # most severe first
    warnings: list[str]  # one line each, ready to print
    recorded_in: Path | None  # the history file, None when the run could not be recorded
    delivery: Delivery | None  # None when nothing was posted (no webhook, nothing severe)


def record_run(summary: Mapping[str, Any], settings: AlertSettings) -> AfterRun:
    directory = settings.history_dir or default_history_dir()
    earlier, unread = _earlier_runs(directory, settings)
    findings = evaluate(summary, earlier, settings.thresholds)
    recorded_in, unrecorded = _append(directory, summary, findings, settings.job)
    warnings = _history_warnings(settings.job, unread, unrecorded)
    delivery = None
    if settings.webhook_url and at_least(findings, settings.min_severity):
        # Imported only to post: it brings the HTTP client modules (~20 ms).
        from pipeline.report.webhook import alert_payload, post_alert

        delivery = post_alert(settings.webhook_url, alert_payload(settings.job, summary, findings))
        if delivery.reason:
            warnings.append(delivery.reason)
    return AfterRun(findings, warnings, recorded_in, delivery)


def _earlier_runs(
    directory: Path, settings: AlertSettings
) -> tuple[list[dict[str, Any]], str | None]:
    """The runs to compare with, and why there are none when the history is unreadable."""
    try:
        path = history_file(directory, settings.job)
        return read_recent(path, settings.thresholds.window * READ_BACK_FACTOR).runs, None
    except FileNotFoundError:
        return [], None  # the job's first recorded run
    except (OSError, UsageError) as error:
        return [], _why(error)


def _append(
    directory: Path, summary: Mapping[str, Any], findings: list[Finding], job: str
) -> tuple[Path | None, str | None]:
    """Where the run was recorded, or why it could not be."""
    record = history_record(summary, job, [finding.as_dict() for finding in findings])
    try:
        return append_run(directory, job, record), None
    except (OSError, UsageError, TypeError) as error:
        return None, _why(error)


def _history_warnings(job: str, unread: str | None, unrecorded: str | None) -> list[str]:
    if unread and unread == unrecorded:  # one cause, said once
        return [f"cannot read or record the history of job {job!r}: {unread}"]
    warnings = []
    if unread:
        warnings.append(
            f"cannot read the history of job {job!r}: {unread}; "
            "this run is not compared with earlier runs"
        )
    if unrecorded:
        warnings.append(f"cannot record this run in the history of job {job!r}: {unrecorded}")
    return warnings


def _why(error: Exception) -> str:
    if isinstance(error, UsageError):
        return error.message
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or type(error).__name__}"
    return str(error)
