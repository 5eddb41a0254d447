"""What a run records about itself beside its outputs: the spans of its trace, the
summary file, and the items a stopped run did not reach."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.core.config import RunConfig
from pipeline.core.errors import OutputError, SluiceError
from pipeline.observe.counters import RunStats
from pipeline.prepare.batching import shard_share
from pipeline.read.sources import count_items
from pipeline.run.result import EXIT_ERROR_RATE, EXIT_OK
from pipeline.write.atomic import open_output

if TYPE_CHECKING:
    from pipeline.observe.spans import SpanExporter
    from pipeline.observe.trace import SpanRecorder


def span_recorder(
    config: RunConfig, trace_id: str, started: float, started_at: float
) -> SpanRecorder | None:
    """Spans for --trace-file and for an OpenTelemetry collector named by OTEL_* variables;
    None when neither wants them, so a run without tracing builds no spans."""
    exporters: list[SpanExporter] = []
    if config.output.trace is not None:
        from pipeline.observe.spans import JsonlSpanFile  # the span machinery: traced runs

        exporters.append(JsonlSpanFile(config.output.trace))
    if any(name.startswith("OTEL_") for name in os.environ):  # else no collector is named
        from pipeline.observe.otel import otel_exporter_from_env

        collector = otel_exporter_from_env(os.environ)
        if collector is not None:
            exporters.append(collector)
    if not exporters:
        return None
    from pipeline.observe.trace import SpanRecorder  # only a traced run needs it

    return SpanRecorder.for_run(config, trace_id, started, started_at, exporters)


def skipped_items(config: RunConfig, stats: RunStats, exit_code: int) -> int | None:
    """Items the run stopped before reaching: 0 when it finished; counted from the inputs
    when it stopped short, if that is cheap (not stdin, not gzip); else None."""
    if exit_code in (EXIT_OK, EXIT_ERROR_RATE):
        return 0
    with contextlib.suppress(OSError, SluiceError, ValueError):
        total = count_items(config.read.inputs) if not config.read.requeue else None
        if total is not None:
            read = config.read
            return max(0, shard_share(total, read.batch_size, read.shard) - stats.items)
    return None


def write_summary(path: str, summary: dict[str, Any]) -> None:
    target = open_output(path)
    try:
        target.handle.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    except (OSError, ValueError) as exc:
        target.abort()
        raise OutputError(f"cannot write the summary to {path!r}: {exc}") from exc
    target.commit()
