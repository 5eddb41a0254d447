"""The alert webhook: one JSON POST per run with all its findings, never failing the run.

The body is Slack-compatible (`text` is one paragraph in Slack's markup) and
carries the findings as data for other receivers:

    {"text": "...", "job": "reviews", "severity": "warning", "exit_code": 0,
     "trace_id": "...", "findings": [{"rule", "severity", "message", "value", "baseline"}],
     "summary": {"items", "succeeded", "quarantined", "wall_seconds", "items_per_second",
                 "cost", "currency", "model", "started_at", "ended_at"}}

It runs after the pipeline has finished, outside its event loop, so it uses
the standard library's blocking client: no event loop to start or share.
Connection errors, timeouts, 5xx and 429 are retried a few times with a short
backoff (a 429's Retry-After is honoured up to a few seconds); other answers
are final. Redirects are not followed. Webhook URLs carry tokens in their path
or query, so every message names the URL as scheme://host[:port] only.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pipeline import __version__
from pipeline.core.errors import ConfigError
from pipeline.core.jsonio import dumps
from pipeline.core.words import counted
from pipeline.report.alerts import Finding, number

TIMEOUT_SECONDS = 5.0
ATTEMPTS = 3
BACKOFF_SECONDS = 0.5  # doubled after each failed attempt: 0.5 s, then 1 s
MAX_RETRY_AFTER_SECONDS = 5.0
_SUMMARY_FIGURES = ("items", "succeeded", "quarantined", "wall_seconds", "items_per_second")
_SUMMARY_TEXTS = ("model", "started_at", "ended_at")


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    reason: str | None = None  # why not, in one line with the URL redacted


def check_webhook_url(url: str) -> None:
    """Refuse, before a run starts, a URL no POST could reach (ConfigError, exit 78)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ConfigError(f"--alert-webhook {redacted_url(url)} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"--alert-webhook {redacted_url(url)} is not an http:// or https:// URL with a host"
        )


def redacted_url(url: str) -> str:
    """scheme://host[:port]: the path, query and any user:password may hold a token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unparsable URL)"
    if not parts.scheme or not host:
        return "(a URL without a host)"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}"


def alert_payload(
    job: str, summary: Mapping[str, Any], findings: Sequence[Finding]
) -> dict[str, Any]:
    """The one JSON object a run posts: a Slack paragraph, then the same as data."""
    figures: dict[str, Any] = {key: number(summary, key) for key in _SUMMARY_FIGURES}
    figures.update({key: _text(summary.get(key)) for key in _SUMMARY_TEXTS})
    cost = summary.get("cost")
    figures["cost"] = number(summary, "cost", "this_attempt")
    figures["currency"] = _text(cost.get("currency")) if isinstance(cost, Mapping) else None
    return {
        "text": slack_text(job, summary, findings),
        "job": job,
        "severity": max(findings, key=lambda f: f.severity).severity.label if findings else None,
        "exit_code": summary.get("exit_code"),
        "trace_id": _text(summary.get("trace_id")),
        "findings": [finding.as_dict() for finding in findings],
        "summary": figures,
    }


def slack_text(job: str, summary: Mapping[str, Any], findings: Sequence[Finding]) -> str:
    """One paragraph naming the job and every finding, escaped for Slack's markup."""
    parts = [f"{finding.severity.label}: {finding.message}" for finding in findings]
    trace = _text(summary.get("trace_id"))
    head = f"sluice job *{_slack_escape(job)}*: {counted(len(findings), 'finding')}"
    tail = f" (exit code {summary.get('exit_code')}" + (f", trace {trace})" if trace else ")")
    return head + tail + (": " + _slack_escape("; ".join(parts)) + "." if parts else ".")


def post_alert(
    url: str,
    payload: Mapping[str, Any],
    *,
    timeout: float = TIMEOUT_SECONDS,
    attempts: int = ATTEMPTS,
    backoff: float = BACKOFF_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST the payload, retrying briefly; never raises (a failed alert must not fail a run)."""
    try:
        body = dumps(dict(payload))
    except (TypeError, ValueError) as error:
        return Delivery(False, 0, f"alert not sent: its body could not be encoded ({error})")
    tries = max(1, attempts)
    reason = "not attempted"
    for attempt in range(1, tries + 1):
        outcome = _post_once(url, body, timeout)
        if outcome.delivered:
            return Delivery(True, attempt)
        reason = outcome.reason
        if not outcome.retry or attempt == tries:
            return Delivery(False, attempt, _not_delivered(url, reason, attempt))
        sleep(outcome.wait if outcome.wait is not None else backoff * 2 ** (attempt - 1))
    return Delivery(False, tries, _not_delivered(url, reason, tries))


@dataclass(frozen=True)
class _Outcome:
    delivered: bool
    reason: str = ""
    retry: bool = False
    wait: float | None = None  # a 429's Retry-After, when it gave one


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx stays an answer: it is not delivered, and the token stays put


_OPENER = urllib.request.build_opener(_NoRedirects)


def _post_once(url: str, body: bytes, timeout: float) -> _Outcome:
    headers = {"Content-Type": "application/json", "User-Agent": _user_agent()}
    try:
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(64 * 1024)  # let the server finish; its body says nothing we need
            return _Outcome(True)
    except urllib.error.HTTPError as error:
        return _answered(error)
    except urllib.error.URLError as error:
        cause = error.reason
        if isinstance(cause, TimeoutError):
            return _Outcome(False, f"no answer within {timeout:g} s", retry=True)
        words = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
        return _Outcome(False, _scrubbed(words.lower(), url), retry=True)
    except TimeoutError:
        return _Outcome(False, f"no answer within {timeout:g} s", retry=True)
    except (OSError, http.client.HTTPException) as error:
        return _Outcome(False, f"the connection broke ({type(error).__name__})", retry=True)
    except Exception as error:  # a boundary: whatever goes wrong here, the run's result stands
        return _Outcome(False, f"the request could not be made ({type(error).__name__})")


def _answered(error: urllib.error.HTTPError) -> _Outcome:
    code = error.code
    error.close()
    reason = f"it answered HTTP {code}"
    if 300 <= code < 400:
        return _Outcome(False, reason + " (redirects are not followed)")
    if code == 429:
        return _Outcome(
            False, reason, retry=True, wait=_retry_after(error.headers.get("Retry-After"))
        )
    return _Outcome(False, reason, retry=code >= 500)


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait, from a Retry-After in seconds; capped, since the run is waiting."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or seconds != seconds or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_SECONDS)


def _not_delivered(url: str, reason: str, attempts: int) -> str:
    tries = counted(attempts, "attempt")
    return f"alert not delivered to {redacted_url(url)}: {reason} (after {tries})"


def _scrubbed(text: str, url: str) -> str:
    """Any piece of the URL beyond scheme://host taken out of a library's message."""
    pieces: tuple[str | None, ...]
    try:
        parts = urlsplit(url)
        pieces = (url, parts.path, parts.query, parts.username, parts.password)
    except ValueError:
        pieces = (url, None, None, None, None)
    for piece in pieces:
        if piece and len(piece) > 1:
            text = text.replace(piece.lower(), "***").replace(piece, "***")
    return text


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _user_agent() -> str:
    return f"sluice/{__version__}"
