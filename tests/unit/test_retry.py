"""The retry policy table: which verdicts are retried, under which cap, after how long."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.config import RetryConfig
from pipeline.core.errors import ErrorKind, error_kind_for_status
from pipeline.traffic.retry_policy import DEFAULT_RATE_LIMIT_PAUSE, Verdict, retry_delay, retry_kind

CONFIG = RetryConfig(
    max_retries=3,
    backoff_base=0.5,
    backoff_cap=4.0,
    max_invalid_output_retries=2,
    max_rate_limited_retries=6,
)


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "context_length_exceeded", ErrorKind.PERMANENT),
        (400, None, ErrorKind.PERMANENT),
        (401, "invalid_api_key", ErrorKind.FATAL),
        (403, None, ErrorKind.FATAL),
        (404, None, ErrorKind.PERMANENT),
        (404, "model_not_found", ErrorKind.FATAL),
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
        (529, None, ErrorKind.TRANSIENT),
        (418, None, ErrorKind.PERMANENT),
    ],
)
def test_status_table(status: int, code: str | None, kind: ErrorKind) -> None:
    assert error_kind_for_status(status, code) is kind


@pytest.mark.parametrize(
    ("verdict", "kind"),
    [
        (Verdict(ErrorKind.TRANSIENT, "500"), ErrorKind.TRANSIENT),
        (Verdict(ErrorKind.RATE_LIMITED, "429"), ErrorKind.RATE_LIMITED),
        (Verdict(ErrorKind.INVALID_OUTPUT, "not JSON"), ErrorKind.INVALID_OUTPUT),
        (Verdict(ErrorKind.PERMANENT, "400"), None),
        (Verdict(ErrorKind.INVALID_INPUT, "bad line"), None),
        (Verdict(ErrorKind.FATAL, "401"), None),
        # The server's x-should-retry wins both ways...
        (Verdict(ErrorKind.TRANSIENT, "500", server_says_retry=False), None),
        (Verdict(ErrorKind.PERMANENT, "400", server_says_retry=True), ErrorKind.TRANSIENT),
        # ...except that an over-long prompt can never succeed by repeating it.
        (
            Verdict(ErrorKind.PERMANENT, "400", code="context_length_exceeded"),
            None,
        ),
        (
            Verdict(
                ErrorKind.PERMANENT,
                "400",
                code="context_length_exceeded",
                server_says_retry=True,
            ),
            None,
        ),
    ],
)
def test_which_verdicts_are_retried(verdict: Verdict, kind: ErrorKind | None) -> None:
    assert retry_kind(verdict) is kind


@given(failures=st.integers(1, 10), seed=st.integers(0, 2**32))
def test_transient_errors_back_off_within_the_ceiling_then_give_up(
    failures: int, seed: int
) -> None:
    delay = retry_delay(Verdict(ErrorKind.TRANSIENT, "502"), failures, CONFIG, random.Random(seed))
    if failures > CONFIG.max_retries:
        assert delay is None
    else:
        assert delay is not None
        assert 0 <= delay <= min(CONFIG.backoff_cap, CONFIG.backoff_base * 2 ** (failures - 1))


@given(hint=st.floats(0, 100), seed=st.integers(0, 2**32))
def test_the_servers_retry_after_is_a_floor_for_transient_errors(hint: float, seed: int) -> None:
    verdict = Verdict(ErrorKind.TRANSIENT, "503", server_wait=hint)
    delay = retry_delay(verdict, 1, CONFIG, random.Random(seed))
    assert delay is not None and delay >= hint


def test_a_429_waits_exactly_the_servers_hint_under_its_own_cap() -> None:
    rng = random.Random(0)
    hinted = Verdict(ErrorKind.RATE_LIMITED, "429", server_wait=2.5)
    assert retry_delay(hinted, CONFIG.max_rate_limited_retries, CONFIG, rng) == 2.5
    assert retry_delay(hinted, CONFIG.max_rate_limited_retries + 1, CONFIG, rng) is None
    silent = Verdict(ErrorKind.RATE_LIMITED, "429")
    assert retry_delay(silent, 1, CONFIG, rng) == DEFAULT_RATE_LIMIT_PAUSE


def test_429s_have_more_room_than_the_items_attempts() -> None:
    # A busy account is not the item's fault: 429s do not use up --max-retries.
    assert CONFIG.max_rate_limited_retries > CONFIG.max_retries
    verdict = Verdict(ErrorKind.RATE_LIMITED, "429", server_wait=0.1)
    assert retry_delay(verdict, CONFIG.max_retries + 1, CONFIG, random.Random(0)) == 0.1


@pytest.mark.parametrize("kind", [ErrorKind.PERMANENT, ErrorKind.INVALID_INPUT, ErrorKind.FATAL])
def test_errors_that_cannot_succeed_are_never_retried(kind: ErrorKind) -> None:
    assert retry_delay(Verdict(kind, "no"), 1, CONFIG, random.Random(0)) is None


def test_invalid_output_has_its_own_smaller_cap() -> None:
    rng = random.Random(0)
    verdict = Verdict(ErrorKind.INVALID_OUTPUT, "not JSON")
    assert retry_delay(verdict, 2, CONFIG, rng) is not None
    assert retry_delay(verdict, 3, CONFIG, rng) is None
