"""Which collector the OTEL_* variables name, read as the OpenTelemetry specification says."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from pipeline.observe.otel import otlp_settings, parse_headers, unsupported_protocol

BASE = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"


def _endpoint(environ: dict[str, str]) -> str | None:
    settings = otlp_settings(environ)
    return None if settings is None else settings.endpoint


def test_the_general_endpoint_gets_the_traces_path_and_the_traces_one_is_used_as_given() -> None:
    assert _endpoint({BASE: "http://c:4318"}) == "http://c:4318/v1/traces"
    assert _endpoint({BASE: "http://c:4318/"}) == "http://c:4318/v1/traces"
    assert _endpoint({BASE: "http://c:4318/otlp"}) == "http://c:4318/otlp/v1/traces"
    assert _endpoint({TRACES: "http://t:1/in", BASE: "http://c:4318"}) == "http://t:1/in"
    assert _endpoint({}) is None
    assert _endpoint({BASE: "  "}) is None


def test_the_sdk_can_be_switched_off() -> None:
    on = {BASE: "http://c:4318"}
    assert _endpoint({**on, "OTEL_SDK_DISABLED": "TRUE"}) is None
    assert _endpoint({**on, "OTEL_SDK_DISABLED": "false"}) is not None
    assert _endpoint({**on, "OTEL_SDK_DISABLED": "1"}) is not None  # only "true" is true
    assert _endpoint({**on, "OTEL_TRACES_EXPORTER": "none"}) is None
    assert _endpoint({**on, "OTEL_TRACES_EXPORTER": "console"}) is None
    assert _endpoint({**on, "OTEL_TRACES_EXPORTER": "console, otlp"}) is not None


def test_service_name_timeout_and_headers_come_from_their_variables() -> None:
    settings = otlp_settings(
        {
            BASE: "http://c:4318",
            "OTEL_SERVICE_NAME": "labels",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2.5",
            "OTEL_EXPORTER_OTLP_HEADERS": "a=1",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "Api-Key=s%3Dcret",
        }
    )
    assert settings is not None
    assert settings.service_name == "labels"
    assert settings.timeout == 2.5
    assert settings.headers == {"api-key": "s=cret"}  # the traces-specific variable wins
    default = otlp_settings({BASE: "http://c:4318", "OTEL_EXPORTER_OTLP_TIMEOUT": "soon"})
    assert default is not None
    assert (default.service_name, default.timeout, default.headers) == ("sluice", None, {})


def test_only_otlp_over_http_is_spoken() -> None:
    assert unsupported_protocol({}) is None
    assert unsupported_protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}) is None
    assert unsupported_protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) == "grpc"
    traces_first = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
    }
    assert unsupported_protocol(traces_first) is None


_names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1).filter(
    lambda name: name.strip() == name
)


@given(st.dictionaries(_names, st.text(st.characters(codec="utf-8")).map(str.strip)))
def test_headers_written_url_encoded_read_back_as_they_were(headers: dict[str, str]) -> None:
    text = ",".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in headers.items())
    expected: dict[str, str] = {}
    for key, value in headers.items():
        expected[key.lower()] = value
    assert parse_headers(text) == expected


def test_malformed_header_pairs_are_skipped() -> None:
    assert parse_headers("novalue, =x, ok=1,") == {"ok": "1"}
