import random

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.config import RetryConfig
from pipeline.errors import ErrorKind, error_kind_for_status
from pipeline.retry import error_details, retry_delay, server_retry_hint

CONFIG = RetryConfig(max_retries=3, backoff_base=0.5, backoff_cap=4.0, max_invalid_output_retries=2)


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "context_length_exceeded", ErrorKind.PERMANENT),
        (400, None, ErrorKind.PERMANENT),
        (401, "invalid_api_key", ErrorKind.FATAL),
        (403, None, ErrorKind.FATAL),
        (404, "model_not_found", ErrorKind.PERMANENT),
        (408, None, ErrorKind.TRANSIENT),
        (409, None, ErrorKind.TRANSIENT),
        (413, None, ErrorKind.PERMANENT),
        (422, None, ErrorKind.PERMANENT),
        (429, "rate_limit_exceeded", ErrorKind.RATE_LIMITED),
        (429, "insufficient_quota", ErrorKind.FATAL),
        (500, None, ErrorKind.TRANSIENT),
        (502, None, ErrorKind.TRANSIENT),
        (503, None, ErrorKind.TRANSIENT),
        (504, None, ErrorKind.TRANSIENT),
        (418, None, ErrorKind.PERMANENT),
    ],
)
def test_status_table(status: int, code: str | None, kind: ErrorKind) -> None:
    assert error_kind_for_status(status, code) is kind


@given(attempt=st.integers(1, 10), seed=st.integers(0, 2**32))
def test_transient_errors_back_off_within_the_ceiling_then_give_up(attempt: int, seed: int) -> None:
    delay = retry_delay(ErrorKind.TRANSIENT, attempt, CONFIG, random.Random(seed))
    if attempt > CONFIG.max_retries:
        assert delay is None
    else:
        assert delay is not None
        assert 0 <= delay <= min(CONFIG.backoff_cap, CONFIG.backoff_base * 2 ** (attempt - 1))


@given(hint=st.floats(0, 100), seed=st.integers(0, 2**32))
def test_server_hint_is_a_floor(hint: float, seed: int) -> None:
    delay = retry_delay(ErrorKind.RATE_LIMITED, 1, CONFIG, random.Random(seed), hint)
    assert delay is not None and delay >= hint


@pytest.mark.parametrize("kind", [ErrorKind.PERMANENT, ErrorKind.INVALID_INPUT, ErrorKind.FATAL])
def test_errors_that_cannot_succeed_are_never_retried(kind: ErrorKind) -> None:
    assert retry_delay(kind, 1, CONFIG, random.Random(0)) is None


def test_invalid_output_has_its_own_smaller_budget() -> None:
    rng = random.Random(0)
    assert retry_delay(ErrorKind.INVALID_OUTPUT, 2, CONFIG, rng) is not None
    assert retry_delay(ErrorKind.INVALID_OUTPUT, 3, CONFIG, rng) is None


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
        ({"retry-after-ms": "nan"}, None),
        ({}, None),
    ],
)
def test_server_retry_hint_formats(headers: dict[str, str], expected: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert server_retry_hint(headers, now) == expected


def test_error_details_reads_openai_bodies_and_bounds_anything_else() -> None:
    error = {
        "message": "too long",
        "type": "invalid_request_error",
        "code": "context_length_exceeded",
    }
    body = orjson.dumps({"error": error})
    assert error_details(body) == ("context_length_exceeded", "too long")
    code, message = error_details(b"<html>" + b"x" * 5000)
    assert code is None and len(message) <= 500
    assert error_details(b"") == (None, "(empty body)")
