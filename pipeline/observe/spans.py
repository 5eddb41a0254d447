"""Spans as they leave the run: the ended-span record in OpenTelemetry's shape, the
exporter seam, the `--trace-file` writer, and span ids (a run's trace id is made in
trace_ids.py, as every run has one). The recorder that
makes spans from the run's events is trace.py; the collector export, otel.py."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from pipeline.observe.span_attributes import Attributes
from pipeline.write.atomic import open_output, sweep_stale_temps

OK, ERROR = "OK", "ERROR"  # span status codes, as OpenTelemetry names them (never UNSET)
INTERNAL, CLIENT = "INTERNAL", "CLIENT"  # span kinds: sluice's own work, a call to the model


@dataclass(slots=True)  # not frozen: a frozen __init__ costs a call per field, per span
class SpanRecord:
    """One ended span, in the shape of an OpenTelemetry span; never changed once made."""

    trace_id: str
    span_id: str
    parent_span_id: str | None  # None for the run span, the root
    name: str
    kind: str  # INTERNAL or CLIENT
    start_time_unix_nano: int
    end_time_unix_nano: int
    status_code: str  # OK or ERROR
    status_message: str | None
    attributes: Attributes

    def as_json(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "kind": self.kind,
            "start_time_unix_nano": self.start_time_unix_nano,
            "end_time_unix_nano": self.end_time_unix_nano,
            "status": {"code": self.status_code, "message": self.status_message},
            "attributes": self.attributes,
        }


class SpanExporter(Protocol):
    def export(self, span: SpanRecord) -> None:
        """Take one ended span; on the event loop's thread, so it must not block."""

    def close(self) -> str | None:
        """Flush and close; a one-line warning when spans were lost, else None. Never raises."""


class JsonlSpanFile:
    """`--trace-file`: one JSON line per span, published whole (temp file, fsync, rename)
    when closed, so the file is complete or absent. `-`, devices and FIFOs are written
    to as spans end. Raises OutputError at once when the file cannot be created."""

    def __init__(self, path: str) -> None:
        self.path = path
        sweep_stale_temps(path)  # a killed run's leftover; a live run's is flock'ed, kept
        self._file = open_output(path)
        self._problem: str | None = None

    def export(self, span: SpanRecord) -> None:
        if self._problem is not None:
            return
        try:
            self._file.handle.write(orjson.dumps(span.as_json()) + b"\n")
        except (OSError, ValueError) as exc:
            self._problem = str(exc)
            self._file.abort()

    def close(self) -> str | None:
        if self._problem is None:
            try:
                self._file.commit()
                return None
            except Exception as exc:  # OutputError, or anything else: never into the run
                self._problem = str(exc)
        return f"the trace file {self.path!r} was not written: {self._problem}"


class SpanIds:
    """Span ids unique within a trace without remembering them: an odd multiplier is a
    bijection modulo 2**64, so distinct counts give distinct ids (zero, invalid, skipped)."""

    _MULTIPLIER = 0x9E3779B97F4A7C15
    _MASK = (1 << 64) - 1

    def __init__(self, salt: int | None = None) -> None:
        self._count = int.from_bytes(os.urandom(8)) if salt is None else salt

    def next(self) -> str:
        self._count += 1
        value = (self._count * self._MULTIPLIER) & self._MASK
        return f"{value:016x}" if value else self.next()
