"""The run's spans sent to an OpenTelemetry collector (OTLP over HTTP), when asked for.

`otel_exporter_from_env` reads the standard OTEL_* variables: without an OTLP
endpoint, or with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none, there is
nothing to do. The SDK (the optional `sluice[otel]` extra) is imported only
once a collector is configured, so sluice starts and runs without it; asked to
send spans without it, the run says so once, at the end.

Each span the recorder ends is re-created through the SDK with the recorder's
own ids, parent, times, status and attributes (a TracerProvider whose
IdGenerator hands out the ids already chosen), so the collector holds the very
trace that `--trace-file` holds. The SDK's BatchSpanProcessor sends them from
its own thread. A collector that is down or refuses costs one warning, never
the run: after the first failed export the remaining spans are dropped rather
than retried, so the end of a run waits at most one export timeout for it.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote

from pipeline.observe.span_attributes import safe_url
from pipeline.observe.spans import CLIENT, ERROR, OK, SpanExporter, SpanRecord
from pipeline.observe.summary import sluice_version

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter as SdkSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.trace import Tracer

TRACES_PATH = "/v1/traces"
SERVICE_NAME = "sluice"
INSTALL_HINT = "pip install 'sluice[otel]'"


class OtlpSettings(NamedTuple):
    """Where and how to send spans, from the OTEL_* variables (traces-specific ones first)."""

    endpoint: str  # the full URL spans are POSTed to
    headers: dict[str, str]  # may hold the collector's credentials: never printed
    timeout: float | None  # seconds per export; None: the SDK's default (10)
    service_name: str


def otlp_settings(environ: Mapping[str, str]) -> OtlpSettings | None:
    """The collector to send spans to, or None when the variables ask for none."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":  # the spec's only true
        return None
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters and "otlp" not in {name.strip() for name in exporters.split(",")}:
        return None  # "none", or exporters sluice does not have (console, zipkin)
    endpoint = _traces_endpoint(environ)
    if endpoint is None:
        return None
    return OtlpSettings(
        endpoint=endpoint,
        headers=parse_headers(_traces_variable(environ, "HEADERS") or ""),
        timeout=_seconds(_traces_variable(environ, "TIMEOUT")),
        service_name=environ.get("OTEL_SERVICE_NAME", "").strip() or SERVICE_NAME,
    )


def _traces_variable(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or environ.get(
        f"OTEL_EXPORTER_OTLP_{name}"
    )
    return value.strip() if value and value.strip() else None


def _traces_endpoint(environ: Mapping[str, str]) -> str | None:
    """The traces endpoint is used as given; the general one gets the signal's path."""
    if traces := environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip():
        return traces
    if base := environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        return base.rstrip("/") + TRACES_PATH
    return None


def parse_headers(text: str) -> dict[str, str]:
    """`key=value,key2=value2`, each part URL-encoded (the OTEL_*_HEADERS format)."""
    headers: dict[str, str] = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


def _seconds(text: str | None) -> float | None:
    """A timeout as the Python SDK reads it (seconds); unreadable or not positive: None."""
    try:
        seconds = float(text) if text is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds > 0 else None


def unsupported_protocol(environ: Mapping[str, str]) -> str | None:
    """The OTLP protocol asked for when it is one sluice does not speak (it sends
    http/protobuf)."""
    protocol = _traces_variable(environ, "PROTOCOL")
    return protocol if protocol is not None and protocol != "http/protobuf" else None


def sdk_installed() -> bool:
    modules = ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http.trace_exporter")
    try:
        return all(importlib.util.find_spec(name) is not None for name in modules)
    except ImportError:  # a parent package is missing, or refuses to load
        return False


def otel_exporter_from_env(environ: Mapping[str, str]) -> SpanExporter | None:
    """An exporter to the collector the variables name; None when they name none."""
    settings = otlp_settings(environ)
    if settings is None:
        return None
    where = safe_url(settings.endpoint)
    if (protocol := unsupported_protocol(environ)) is not None:
        return NotSent(
            f"no spans were sent to {where}: sluice speaks OTLP over HTTP (http/protobuf), "
            f"not {protocol}"
        )
    if not sdk_installed():
        return NotSent(
            f"no spans were sent to {where}: an OTLP endpoint is set, but the "
            f"OpenTelemetry SDK is not installed ({INSTALL_HINT})"
        )
    try:
        return OtelSpanExporter(settings)
    except Exception as exc:  # a broken SDK install, a bad endpoint: never the run's end
        return NotSent(f"no spans were sent to {where}: {type(exc).__name__}: {exc}")


class NotSent:
    """A collector was asked for and cannot be reached: the reason, said once at the end."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def export(self, span: SpanRecord) -> None:
        pass

    def close(self) -> str | None:
        return self.reason


@dataclass(slots=True)
class _NextIds:
    """The ids of the span being re-created, set just before the SDK starts it."""

    trace_id: int = 0
    span_id: int = 0


@dataclass(slots=True)
class _Delivery:
    """What became of the spans handed to the SDK."""

    handed: int = 0
    exported: int = 0
    failed: bool = False  # an export failed: the rest are dropped


class OtelSpanExporter:
    """A SpanExporter (trace.py) that re-creates each span through the OpenTelemetry SDK."""

    def __init__(self, settings: OtlpSettings) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        _quiet_sdk_logs()
        self._where = safe_url(settings.endpoint)
        self._next = _NextIds()
        self._delivery = _Delivery()
        otlp = OTLPSpanExporter(
            endpoint=settings.endpoint, headers=settings.headers, timeout=settings.timeout
        )
        resource = Resource.create(
            {"service.name": settings.service_name, "service.version": sluice_version()}
        )
        self._provider: TracerProvider = TracerProvider(
            resource=resource,
            sampler=ALWAYS_ON,  # every span goes; sample at the collector if you must
            id_generator=_given_ids(self._next),
            shutdown_on_exit=False,  # closed by close(); an exit hook would wait again
        )
        self._provider.add_span_processor(
            BatchSpanProcessor(_one_failure_then_drop(otlp, self._delivery))
        )
        self._tracer: Tracer = self._provider.get_tracer(SERVICE_NAME, sluice_version())

    def export(self, span: SpanRecord) -> None:
        from opentelemetry.context import Context
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self._next.trace_id = int(span.trace_id, 16)
        self._next.span_id = int(span.span_id, 16)
        started = self._tracer.start_span(
            span.name,
            context=self._parent(span) if span.parent_span_id else Context(),
            kind=SpanKind.CLIENT if span.kind == CLIENT else SpanKind.INTERNAL,
            attributes=span.attributes,
            start_time=span.start_time_unix_nano,
        )
        if span.status_code == ERROR:
            started.set_status(Status(StatusCode.ERROR, span.status_message))
        elif span.status_code == OK:
            started.set_status(Status(StatusCode.OK))
        started.end(end_time=span.end_time_unix_nano)
        self._delivery.handed += 1

    def _parent(self, span: SpanRecord) -> Context:
        from opentelemetry.context import Context
        from opentelemetry.trace import (
            NonRecordingSpan,
            SpanContext,
            TraceFlags,
            set_span_in_context,
        )

        assert span.parent_span_id is not None
        parent = SpanContext(
            trace_id=int(span.trace_id, 16),
            span_id=int(span.parent_span_id, 16),
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        return set_span_in_context(NonRecordingSpan(parent), Context())

    def close(self) -> str | None:
        """Send what is queued (at most one export timeout when the collector is down)."""
        try:
            self._provider.shutdown()
        except Exception as exc:
            return f"sending the trace to {self._where} failed: {type(exc).__name__}: {exc}"
        delivery = self._delivery
        lost = delivery.handed - delivery.exported
        if delivery.failed:
            return (
                f"the OpenTelemetry collector at {self._where} did not take the trace: "
                f"{lost} of {delivery.handed} spans were not sent"
            )
        if lost:
            return (
                f"{lost} of {delivery.handed} spans were not sent to {self._where} "
                "(the export queue was full)"
            )
        return None


def _given_ids(next_ids: _NextIds) -> IdGenerator:
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class GivenIds(IdGenerator):
        """Hands out the ids the recorder chose for the span being re-created."""

        def generate_span_id(self) -> int:
            return next_ids.span_id

        def generate_trace_id(self) -> int:
            return next_ids.trace_id

    return GivenIds()


def _one_failure_then_drop(inner: SdkSpanExporter, delivery: _Delivery) -> SdkSpanExporter:
    from opentelemetry.sdk.trace.export import SpanExporter as SdkExporter
    from opentelemetry.sdk.trace.export import SpanExportResult as Result

    class OneFailureThenDrop(SdkExporter):
        """Counts what is sent; after one failed export, drops the rest without trying."""

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            if delivery.failed:
                return Result.FAILURE
            try:
                result = inner.export(spans)
            except Exception:  # the SDK's own exporter should not raise; it must not stop us
                result = Result.FAILURE
            if result is Result.SUCCESS:
                delivery.exported += len(spans)
            else:
                delivery.failed = True
            return result

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    return OneFailureThenDrop()


def _quiet_sdk_logs() -> None:
    """The SDK logs each failed or retried export; sluice reports the outcome once itself."""
    logger = logging.getLogger("opentelemetry")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False
