"""What an exchange that brought no answer means: a verdict to retry or quarantine by,
or, for answers no retry can mend, an error that stops the whole run.

Run-fatal: a redirect (following it would resend the key elsewhere), a refused
key, an exhausted quota, an unknown model, and a server asking to wait longer
than the run may. Every message is redacted as a whole, then cut, first.
"""

from __future__ import annotations

from pipeline.core.errors import (
    AuthRefused,
    ConfigError,
    ErrorKind,
    QuotaExhausted,
    SluiceError,
    error_kind_for_status,
)
from pipeline.core.redact import Redactor
from pipeline.dispatch.first_contact import CONNECT_FAILED
from pipeline.dispatch.transport import AnswerTooLarge, Response, TransportError
from pipeline.protocol.headers import error_details, retry_after, should_retry
from pipeline.traffic.retry_policy import Verdict


def refusal_verdict(
    response: Response, redact: Redactor, wall_now: float, longest_wait: float
) -> Verdict:
    """The verdict on a non-2xx answer; raises for a run-fatal one. `wall_now`: the wall
    clock, for a Retry-After given as a date; `longest_wait`: the longest one obeyed."""
    status = response.status
    code, message = error_details(response.payload, redact)
    kind = error_kind_for_status(status, code)
    if 300 <= status < 400:
        raise ConfigError(
            f"the server answered with a redirect ({status}); sluice does not follow "
            "redirects, since they would resend the key elsewhere: check --base-url"
        )
    if kind is ErrorKind.FATAL:
        raise _fatal_error(status, code, message)
    wait = retry_after(response.headers, wall_now)
    if wait is not None and wait > longest_wait:
        raise QuotaExhausted(
            f"the server asks to wait {wait:,.0f}s before trying again (HTTP {status}), "
            f"longer than --breaker-timeout; run the same command again later"
        )
    return Verdict(
        kind, f"HTTP {status}: {message}", status, code, wait, should_retry(response.headers)
    )


def failed_exchange_verdict(exc: TransportError, redact: Redactor) -> Verdict:
    """The verdict on an exchange that failed on the way (no connection, a timeout, a
    cut or oversize answer)."""
    message = redact.clip(str(exc))
    if isinstance(exc, AnswerTooLarge):  # never stored, retried like any unusable answer
        return Verdict(ErrorKind.INVALID_OUTPUT, message, exc.status)
    code = CONNECT_FAILED if exc.connect_failed else None
    return Verdict(ErrorKind.TRANSIENT, message, code=code, timed_out=exc.timed_out)


def _fatal_error(status: int, code: str | None, message: str) -> SluiceError:
    if code == "insufficient_quota":
        return QuotaExhausted(
            f"the account's quota is exhausted (HTTP {status}): {message} "
            "Add credit or raise the limit, then run the same command again."
        )
    if code == "model_not_found":
        return ConfigError(f"the server does not serve that model (HTTP {status}): {message}")
    return AuthRefused(
        f"the server refused the API key (HTTP {status}): {message} "
        "Check the key in the environment variable named by --api-key-env."
    )
