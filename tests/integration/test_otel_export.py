"""Spans sent to an OpenTelemetry collector: a real OTLP/HTTP receiver on 127.0.0.1, the real
SDK and exporter, and the same spans in the trace file and at the collector."""

from __future__ import annotations

import gzip
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from pipeline.observe.otel import NotSent, OtelSpanExporter, otel_exporter_from_env
from pipeline.observe.spans import JsonlSpanFile
from pipeline.observe.trace import SpanRecorder
from pipeline.observe.trace_ids import new_trace_id
from tests.fakes.run_events import MODEL, START, STOP, small_run

UNIX_START = 1_700_000_000.0
ROOT = Path(__file__).resolve().parents[2]


class Collector:
    """An OTLP/HTTP trace receiver: keeps each export request; answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    payload = gzip.decompress(payload)
                if self.path == "/v1/traces" and collector.status == 200:
                    collector.requests.append(ExportTraceServiceRequest.FromString(payload))
                    collector.headers.append(dict(self.headers))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(collector.status if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Collector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def spans(self) -> list[dict[str, Any]]:
        """Every span received, with its resource's attributes, in the file's JSON shape."""
        spans = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        spans.append(_as_json(span, resource, scope_spans.scope.name))
        return spans


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _as_json(span: Any, resource: dict[str, Any], scope: str) -> dict[str, Any]:
    return {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex() or None,
        "name": span.name,
        "kind": {1: "INTERNAL", 3: "CLIENT"}[span.kind],
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "status": {
            "code": {0: "UNSET", 1: "OK", 2: "ERROR"}[span.status.code],
            "message": span.status.message or None,
        },
        "attributes": _attributes(span.attributes),
        "resource": resource,
        "scope": scope,
    }


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as running:
        yield running


def _record(tmp_path: Path, environ: dict[str, str], content: bool = False) -> list[str]:
    exporter = otel_exporter_from_env(environ)
    assert exporter is not None
    exporters = [JsonlSpanFile(str(tmp_path / "trace.jsonl")), exporter]
    recorder = SpanRecorder(new_trace_id(), START, UNIX_START, exporters, {}, content)
    for event in small_run():
        recorder.emit(event)
    return recorder.finish(STOP, 0)


def _file_spans(tmp_path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (tmp_path / "trace.jsonl").read_bytes().splitlines()]


def test_the_collector_gets_the_same_spans_as_the_trace_file(
    tmp_path: Path, collector: Collector
) -> None:
    warnings = _record(tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}, content=True)

    assert warnings == []
    in_file = {s["span_id"]: s for s in _file_spans(tmp_path)}
    received = {s["span_id"]: s for s in collector.spans()}
    assert received.keys() == in_file.keys() and len(in_file) == 17
    for span_id, sent in received.items():
        written = in_file[span_id]
        assert sent["resource"]["service.name"] == "sluice"
        assert sent["scope"] == "sluice"
        for field in (
            "trace_id", "parent_span_id", "name", "kind", "start_time_unix_nano",
            "end_time_unix_nano", "status", "attributes",
        ):  # fmt: skip
            assert sent[field] == written[field], (field, written["name"])
    assert {s["name"] for s in received.values()} == {
        "sluice.run",
        "sluice.batch",
        "sluice.item",
        f"chat {MODEL}",
    }


def test_the_traces_endpoint_and_headers_variables_are_obeyed(
    tmp_path: Path, collector: Collector
) -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9/unused",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{collector.url}/v1/traces",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-team=data%20eng,authorization=Bearer%20t0k",
        "OTEL_SERVICE_NAME": "nightly-labels",
    }
    assert _record(tmp_path, environ) == []

    assert collector.headers[0]["x-team"] == "data eng"
    assert collector.headers[0]["authorization"] == "Bearer t0k"
    assert {s["resource"]["service.name"] for s in collector.spans()} == {"nightly-labels"}


def test_a_collector_that_is_down_costs_one_warning_and_nothing_else(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # A port held but never listened on: every connection is refused.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{held.getsockname()[1]}"
        environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPORTER_OTLP_TIMEOUT": "1"}
        warnings = _record(tmp_path, environ)

    assert len(warnings) == 1
    assert "did not take the trace" in warnings[0] and "17 of 17 spans" in warnings[0]
    assert len(_file_spans(tmp_path)) == 17  # the file is whole all the same
    assert capfd.readouterr().err == ""  # the SDK's own complaints stay quiet


def test_a_collector_that_refuses_costs_one_warning(tmp_path: Path) -> None:
    with Collector(status=400) as refusing:
        warnings = _record(tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": refusing.url})

    assert len(warnings) == 1 and refusing.url in warnings[0]


def test_nothing_is_sent_unless_the_variables_ask(collector: Collector) -> None:
    assert otel_exporter_from_env({}) is None
    for off in ({"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}):
        assert otel_exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, **off}) is None
    exporter = otel_exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url})
    assert isinstance(exporter, OtelSpanExporter)
    assert exporter.close() is None and collector.requests == []


def test_grpc_is_refused_with_a_reason() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    exporter = otel_exporter_from_env(environ)
    assert isinstance(exporter, NotSent)
    assert "grpc" in (exporter.close() or "")


_WITHOUT_THE_SDK = """
import sys
sys.modules["opentelemetry"] = None  # as if the optional extra were not installed
from pipeline.observe.otel import otel_exporter_from_env
from pipeline.observe.trace import SpanRecorder
assert otel_exporter_from_env({}) is None
exporter = otel_exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
recorder = SpanRecorder("ab" * 16, 0.0, 0.0, [exporter], {})
print(recorder.finish(1.0, 0)[0])
"""

_LAZY = """
import sys
import pipeline.observe.otel, pipeline.observe.trace, pipeline.run.root
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_without_the_sdk_sluice_imports_and_says_once_what_to_install() -> None:
    done = _python(_WITHOUT_THE_SDK)
    assert done.returncode == 0, done.stderr
    assert "pip install 'sluice[otel]'" in done.stdout


def test_the_sdk_is_not_imported_until_a_collector_is_configured() -> None:
    done = _python(_LAZY)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
