"""The error taxonomy, classified by the action each error calls for.

    SluiceError                      stops the whole run; carries its exit code
    ├── UsageError            2      a flag or argument the user can fix
    ├── BudgetReached         3      --max-cost, --max-requests or --deadline reached
    ├── InputUnreadable      65      an input that cannot be read as a whole
    ├── InputMissing         66      an input path that does not exist
    ├── ServiceUnavailable   69      the endpoint kept failing (circuit breaker)
    ├── OutputError          73      results cannot be written
    ├── QuotaExhausted       75      429 insufficient_quota, or the server asks for a long wait
    ├── AuthRefused          77      401/403: the key is wrong or lacks access
    └── ConfigError          78      no key, a bad template or base URL, an unknown model

Per-item failures are data, not exceptions: each ends as an `ErrorKind` on a
quarantine row, or as a retry.

    ErrorKind
    ├── rate_limited     429 rate_limit_exceeded          -> everyone pauses, retry
    ├── transient        408, 409, 5xx, reset, timeout    -> backoff, retry, fewer in flight
    ├── permanent        400, 404, 413, 422               -> quarantine at once
    ├── invalid_input    bad line, missing field, dup id  -> never sent
    ├── invalid_output   2xx without a usable answer      -> bounded retry
    └── fatal            401, 403, insufficient_quota,    -> stop the run
                         model_not_found
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    INVALID_INPUT = "invalid_input"
    INVALID_OUTPUT = "invalid_output"
    FATAL = "fatal"


class SluiceError(Exception):
    """An error that ends the run with a one-line message and a stable exit code.

    `resumable` says whether running the same command again, once the cause is
    gone (a lock released, credit added, space freed), continues the job; errors
    that the same command would meet again say what to change instead.
    """

    exit_code = 70
    resumable = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(SluiceError):
    exit_code = 2
    resumable = False


class BudgetReached(SluiceError):
    """A budget of the job is spent: the run stopped sending; more budget resumes it."""

    exit_code = 3

    def __init__(self, budget: str, message: str) -> None:
        super().__init__(message)
        self.budget = budget  # max_cost, max_requests or deadline


class InputUnreadable(SluiceError):
    exit_code = 65
    resumable = False


class InputMissing(SluiceError):
    exit_code = 66


class ServiceUnavailable(SluiceError):
    exit_code = 69


class OutputError(SluiceError):
    exit_code = 73


class SchemaMismatch(OutputError):
    """A result row that does not fit the Parquet schema: the same run would meet it again."""

    resumable = False


class QuotaExhausted(SluiceError):
    exit_code = 75


class AuthRefused(SluiceError):
    exit_code = 77


class ConfigError(SluiceError):
    exit_code = 78
    resumable = False


_STATUS_KINDS: dict[int, ErrorKind] = {
    400: ErrorKind.PERMANENT,
    401: ErrorKind.FATAL,
    403: ErrorKind.FATAL,
    404: ErrorKind.PERMANENT,
    408: ErrorKind.TRANSIENT,
    409: ErrorKind.TRANSIENT,
    413: ErrorKind.PERMANENT,
    422: ErrorKind.PERMANENT,
    429: ErrorKind.RATE_LIMITED,
}


def error_kind_for_status(status: int, code: str | None = None) -> ErrorKind:
    """Map an HTTP status (and the body's `error.code`) to the action it calls for."""
    if code in ("insufficient_quota", "model_not_found"):
        return ErrorKind.FATAL
    if status in _STATUS_KINDS:
        return _STATUS_KINDS[status]
    if status >= 500:
        return ErrorKind.TRANSIENT
    # Anything else (other 4xx, unexpected 1xx/3xx) cannot succeed by repeating it.
    return ErrorKind.PERMANENT
