"""The alert webhook over real HTTP: one POST, brief retries, never an exception, no token shown."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from pipeline.core.errors import ConfigError
from pipeline.report.alerts import Finding, Severity
from pipeline.report.webhook import (
    alert_payload,
    check_webhook_url,
    post_alert,
    redacted_url,
    slack_text,
)
from tests.webhook_receiver import TOKEN_PATH, WebhookReceiver

SUMMARY = {
    "job": "reviews",
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "exit_code": 69,
    "items": 1000,
    "succeeded": 900,
    "quarantined": 100,
    "wall_seconds": 612.5,
    "items_per_second": 1.6,
    "cost": {"currency": "USD", "this_attempt": 0.52},
    "model": "gpt-4o-mini",
    "started_at": "2026-11-30T02:00:00.000000Z",
    "ended_at": "2026-11-30T02:10:12.500000Z",
}
FINDINGS = [
    Finding("failed_run", Severity.CRITICAL, "the run failed with exit code 69", 69.0, None),
    Finding("slow_run", Severity.WARNING, "the run took 10m 12s <3x>", 612.5, 198.0),
]


class Waits:
    """Stands in for time.sleep: records the backoff instead of waiting it out."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A port on 127.0.0.1 bound but not listening: every connection is refused at once."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{bound.getsockname()[1]}{TOKEN_PATH}"


def _payload() -> dict[str, object]:
    return alert_payload("reviews", SUMMARY, FINDINGS)


def test_one_post_carries_every_finding_and_the_key_figures() -> None:
    with WebhookReceiver() as hook:
        delivery = post_alert(hook.url, _payload(), sleep=Waits())
    assert delivery.delivered and delivery.attempts == 1 and delivery.reason is None
    [body] = hook.posts
    assert body["job"] == "reviews" and body["exit_code"] == 69
    assert body["severity"] == "critical"
    assert body["trace_id"] == SUMMARY["trace_id"]
    assert [f["rule"] for f in body["findings"]] == ["failed_run", "slow_run"]
    assert body["findings"][1] == {
        "rule": "slow_run",
        "severity": "warning",
        "message": "the run took 10m 12s <3x>",
        "value": 612.5,
        "baseline": 198.0,
    }
    assert body["summary"]["items"] == 1000 and body["summary"]["cost"] == 0.52
    assert body["summary"]["currency"] == "USD" and body["summary"]["model"] == "gpt-4o-mini"
    assert hook.headers[0]["Content-Type"] == "application/json"


def test_the_slack_text_names_the_job_and_each_finding_escaped() -> None:
    text = slack_text("reviews", SUMMARY, FINDINGS)
    assert text.startswith("sluice job *reviews*: 2 findings (exit code 69, trace 4bf9")
    assert "critical: the run failed with exit code 69" in text
    assert "warning: the run took 10m 12s &lt;3x&gt;" in text
    assert "\n" not in text


def test_5xx_answers_are_retried_with_a_short_backoff() -> None:
    waits = Waits()
    with WebhookReceiver(answers=[500, 503]) as hook:
        delivery = post_alert(hook.url, _payload(), sleep=waits)
    assert delivery.delivered and delivery.attempts == 3
    assert len(hook.posts) == 3 and hook.posts[0] == hook.posts[2]
    assert waits.seconds == [0.5, 1.0]


def test_a_429_waits_as_long_as_retry_after_says_within_a_cap() -> None:
    waits = Waits()
    with WebhookReceiver(
        answers=[(429, {"Retry-After": "2"}), (429, {"Retry-After": "3600"})]
    ) as hook:
        delivery = post_alert(hook.url, _payload(), sleep=waits)
    assert delivery.delivered and len(hook.posts) == 3
    assert waits.seconds == [2.0, 5.0]


def test_a_webhook_that_keeps_failing_gives_a_reason_without_its_token() -> None:
    with WebhookReceiver(answers=[500, 500, 500]) as hook:
        delivery = post_alert(hook.url, _payload(), sleep=Waits())
    assert not delivery.delivered and delivery.attempts == 3
    assert delivery.reason is not None
    assert delivery.reason.startswith("alert not delivered to http://127.0.0.1:")
    assert "it answered HTTP 500 (after 3 attempts)" in delivery.reason
    assert "SECRET" not in delivery.reason and "hooks" not in delivery.reason


def test_a_refused_connection_does_not_raise(refused_url: str) -> None:
    waits = Waits()
    delivery = post_alert(refused_url, _payload(), sleep=waits)
    assert not delivery.delivered and delivery.attempts == 3 and len(waits.seconds) == 2
    assert delivery.reason is not None and "connection refused" in delivery.reason
    assert "SECRET" not in delivery.reason


def test_a_webhook_that_never_answers_is_given_up_after_the_timeout() -> None:
    with WebhookReceiver(hang=True) as hook:
        delivery = post_alert(hook.url, _payload(), timeout=0.2, attempts=1, sleep=Waits())
    assert not delivery.delivered
    assert delivery.reason is not None and "no answer within 0.2 s" in delivery.reason


def test_a_4xx_is_final_and_a_redirect_is_not_followed() -> None:
    with WebhookReceiver(answers=[404]) as hook:
        gone = post_alert(hook.url, _payload(), sleep=Waits())
    assert not gone.delivered and gone.attempts == 1 and len(hook.posts) == 1
    moved = (302, {"Location": "http://127.0.0.1:9/elsewhere"})
    with WebhookReceiver(answers=[moved]) as hook:
        redirected = post_alert(hook.url, _payload(), sleep=Waits())
    assert not redirected.delivered and redirected.attempts == 1
    assert redirected.reason is not None and "redirects are not followed" in redirected.reason


@pytest.mark.parametrize("url", ["gopher://127.0.0.1/hook", "not a url/hook", "http://[::1/hook"])
def test_a_url_nothing_could_reach_does_not_raise_either(url: str) -> None:
    delivery = post_alert(url, _payload(), attempts=1, sleep=Waits())
    assert not delivery.delivered and delivery.reason is not None
    assert "hook" not in delivery.reason


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com"),
        ("https://user:pw@example.com:8443/x?token=1", "https://example.com:8443"),
        ("http://[::1]:9000/hook", "http://[::1]:9000"),
        ("not a url", "(a URL without a host)"),
        ("http://example.com:99999/x", "(an unparsable URL)"),
    ],
)
def test_urls_are_shown_as_scheme_and_host_only(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


@pytest.mark.parametrize(
    "url", ["hooks.slack.com/services/T0", "ftp://example.com/x", "https://", "http://h:99999/"]
)
def test_a_webhook_url_no_post_could_reach_is_refused_up_front(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_webhook_url(url)
    assert "T0" not in refused.value.message


def test_a_good_webhook_url_passes() -> None:
    check_webhook_url("https://hooks.slack.com/services/T0/B0/XYZ")
    check_webhook_url("http://127.0.0.1:8080/alerts")
