"""Reading what servers say about waits and limits, including the nonsense some send."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.config import Secret
from pipeline.core.redact import MESSAGE_LIMIT, Redactor
from pipeline.protocol.headers import (
    LimitReading,
    error_details,
    exhausted_reset,
    parse_duration,
    read_limits,
    retry_after,
    should_retry,
)
from tests.leaks import key_fragments

NO_KEY = Redactor(None)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("250ms", 0.25),
        ("1m30.5s", 90.5),
        ("1h2m3.5s", 3723.5),
        ("20ms", 0.02),
        ("1.5m", 90.0),
        ("500us", 0.0005),
        ("0s", 0.0),
        ("2", 2.0),
        ("0.75", 0.75),
        (" 3s ", 3.0),
    ],
)
def test_durations_in_every_format_servers_send(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "s", "ms", "1x", "-1s", "soon", "1s garbage", "nan"])
def test_what_is_not_a_duration_reads_as_none(text: str | None) -> None:
    assert parse_duration(text) is None


@given(h=st.integers(0, 48), m=st.integers(0, 59), s=st.integers(0, 59_999))
def test_composite_durations_add_up(h: int, m: int, s: int) -> None:
    text = f"{h}h{m}m{s / 1000}s"
    assert parse_duration(text) == pytest.approx(h * 3600 + m * 60 + s / 1000)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:27:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-4"}, None),
        ({"retry-after-ms": "nan", "retry-after": "2"}, 2.0),
        ({}, None),
    ],
)
def test_retry_after_prefers_milliseconds_then_seconds_or_a_date(
    headers: dict[str, str], expected: float | None
) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert retry_after(headers, now) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("false", False), ("TRUE", True), ("maybe", None), (None, None)],
)
def test_x_should_retry(value: str | None, expected: bool | None) -> None:
    headers = {} if value is None else {"x-should-retry": value}
    assert should_retry(headers) is expected


def test_limits_are_read_per_kind() -> None:
    headers = {
        "x-ratelimit-limit-requests": "1200",
        "x-ratelimit-remaining-requests": "1199",
        "x-ratelimit-reset-requests": "50ms",
        "x-ratelimit-limit-tokens": "40000",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert read_limits(headers) == {
        "requests": LimitReading(1200, 1199, 0.05),
        "tokens": LimitReading(40000, 0, 360.0),
    }


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # Azure has been seen sending -1 and 0: neither is a limit to obey.
        ({"x-ratelimit-limit-requests": "-1", "x-ratelimit-remaining-requests": "-1"}, {}),
        ({"x-ratelimit-limit-requests": "0", "x-ratelimit-remaining-requests": "0"}, {}),
        ({"x-ratelimit-limit-tokens": "lots", "x-ratelimit-remaining-tokens": "0"}, {}),
        (
            {"x-ratelimit-remaining-tokens": "7"},
            {"tokens": LimitReading(None, 7, None)},
        ),
        (
            {"x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "50"},
            {"requests": LimitReading(10, None, None)},
        ),
        ({"x-ratelimit-reset-requests": "later"}, {}),
        ({}, {}),
    ],
)
def test_nonsense_limits_are_dropped(
    headers: dict[str, str], expected: dict[str, LimitReading]
) -> None:
    assert read_limits(headers) == expected


def test_exhausted_reset_is_the_longest_wait_among_the_empty_limits() -> None:
    readings = {
        "requests": LimitReading(100, 0, 2.0),
        "tokens": LimitReading(1000, 0, 9.0),
    }
    assert exhausted_reset(readings) == 9.0
    assert exhausted_reset({"requests": LimitReading(100, 5, 2.0)}) is None


def test_error_details_reads_openai_bodies_and_bounds_anything_else() -> None:
    error = {
        "message": "too long",
        "type": "invalid_request_error",
        "code": "context_length_exceeded",
    }
    body = orjson.dumps({"error": error})
    assert error_details(body, NO_KEY) == ("context_length_exceeded", "too long")
    code, message = error_details(b"<html>" + b"x" * 5000, NO_KEY)
    assert code is None and len(message) <= MESSAGE_LIMIT
    assert error_details(b"", NO_KEY) == (None, "(empty body)")


@settings(max_examples=300)
@given(
    key=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=20, max_size=80),
    offset=st.integers(min_value=MESSAGE_LIMIT - 100, max_value=MESSAGE_LIMIT + 10),
    as_json=st.booleans(),
)
def test_an_echoed_key_never_survives_in_an_error_message(
    key: str, offset: int, as_json: bool
) -> None:
    quoted = "x" * offset + f"Authorization: Bearer {key} was refused"
    payload = orjson.dumps({"error": {"message": quoted}}) if as_json else quoted.encode()
    _, message = error_details(payload, Redactor(Secret(key)))
    assert not key_fragments(key, message)
