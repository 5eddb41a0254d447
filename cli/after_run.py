"""After the run: the metrics textfile, the job's history, and its alerts.

None of these changes the run's exit code: a metrics file or history that cannot
be written, or a webhook that is down, is a warning. Findings are printed unless
-q; the webhook is posted either way.
"""

from __future__ import annotations

from cli.progress import QuietDisplay
from cli.run_config import RunFlags
from pipeline.core.config import RunConfig
from pipeline.core.errors import SluiceError
from pipeline.report.after_run import AlertSettings, record_run
from pipeline.report.alerts import Severity, Thresholds, finding_line
from pipeline.run.result import RunResult


def report_after_run(
    result: RunResult, config: RunConfig, flags: RunFlags, display: QuietDisplay
) -> None:
    summary = result.summary
    warnings: list[str] = []
    if config.output.metrics is not None:
        # prometheus-client is imported only by runs that write metrics.
        from pipeline.report.metrics_file import write_metrics_file

        try:
            write_metrics_file(config.output.metrics, summary)
        except SluiceError as error:
            warnings.append(error.message)
    settings = AlertSettings(
        job=config.observe.job,
        thresholds=Thresholds(error_rate=flags.alert_error_rate),
        webhook_url=flags.alert_webhook,
        min_severity=Severity.parse(flags.alert_min_severity),
    )
    after = record_run(summary, settings)
    warnings.extend(after.warnings)
    if flags.quiet:
        return
    for finding in after.findings:
        if finding.rule == "failed_run":
            continue  # the error line said so already; the webhook still carries it
        level = "warning" if finding.severity >= Severity.WARNING else "info"
        display.say(
            f"alert: {finding_line(finding)}", level=level, event="alert", finding=finding.as_dict()
        )
    for warning in warnings:
        display.say(f"warning: {warning}", level="warning")
