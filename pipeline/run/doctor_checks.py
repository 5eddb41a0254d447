"""The doctor's verdicts: what an answer, or its absence, means for a run. No I/O.

Also the data they work on (the settings, each check, the whole diagnosis and its JSON
shape). Kept apart from the network side (pipeline/run/doctor.py) so that every verdict
is a pure function of what was seen, and can be property-tested without a server. A failed
check carries the exit code `sluice run` would meet for the same cause (69, 75, 77, 78),
so a script can act on the doctor as it would on a run.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from pipeline.core.config import Secret
from pipeline.core.errors import (
    AuthRefused,
    ConfigError,
    QuotaExhausted,
    ServiceUnavailable,
    SluiceError,
)
from pipeline.core.redact import Redactor
from pipeline.core.words import counted
from pipeline.dispatch.transport import Response
from pipeline.protocol.headers import LimitReading, error_details

# The checks in the order a request meets them: when one fails, those after it cannot
# be tried.
CHECK_NAMES = ("url", "resolve", "connect", "tls", "key", "model", "limits")
# A run refuses a bad base URL or a missing key (78) before it connects to anything.
UP_FRONT = ("url", "key")


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str  # one line, never the key
    exit_code: int | None = None  # what this failure means for `sluice run`; None unless failed


def passed(name: str, detail: str) -> Check:
    return Check(name, Status.PASSED, detail)


def failed(name: str, detail: str, cause: type[SluiceError]) -> Check:
    """A failure takes its exit code from the error a run would raise for the same cause."""
    return Check(name, Status.FAILED, detail, cause.exit_code)


def skipped(name: str, detail: str) -> Check:
    return Check(name, Status.SKIPPED, detail)


@dataclass(frozen=True, slots=True)
class DoctorSettings:
    """What the CLI found out before any check: a problem with the URL or the key is a
    failed check, not an early exit, so that the user sees every line."""

    base_url: str  # checked, unless base_url_problem says why not
    api_key: Secret | None
    key_variable: str
    model: str | None = None
    probe: bool = False
    timeout: float = 15.0
    base_url_problem: str | None = None
    api_key_problem: str | None = None


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """Every check's verdict, and the rate limits the last answer reported."""

    settings: DoctorSettings
    checks: tuple[Check, ...]
    limits: Mapping[str, LimitReading]

    @property
    def exit_code(self) -> int:
        return exit_code_of(self.checks)

    def as_dict(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "ok": self.exit_code == 0,
            "exit_code": self.exit_code,
            "base_url": None if settings.base_url_problem else settings.base_url,
            "model": settings.model,
            "probe": settings.probe,
            "checks": [
                {
                    "name": c.name,
                    "status": str(c.status),
                    "detail": c.detail,
                    "exit_code": c.exit_code,
                }
                for c in self.checks
            ],
            "limits": {
                kind: {"limit": r.per_minute, "remaining": r.remaining, "reset_seconds": r.reset}
                for kind, r in self.limits.items()
            },
        }


def exit_code_of(checks: Sequence[Check]) -> int:
    """0 when nothing failed, else the code of the failure a run would meet first: a
    configuration refused up front, else the first failure, which the others follow from."""
    codes = [(c.name, c.exit_code) for c in checks if c.exit_code is not None]
    up_front = [code for name, code in codes if name in UP_FRONT and code == ConfigError.exit_code]
    return next(iter(up_front + [code for _, code in codes]), 0)


def untried_check(name: str, settings: DoctorSettings, blocked_by: str) -> Check:
    """A check that cannot be tried; but a missing key is known without asking anyone."""
    if name == "key" and settings.api_key_problem is not None:
        return failed("key", settings.api_key_problem, ConfigError)
    return skipped(name, f"the {blocked_by} check failed")


def key_check(status: int, payload: bytes, settings: DoctorSettings, redact: Redactor) -> Check:
    """GET /models answered `status`: is the key accepted?"""
    if 200 <= status < 300:
        if settings.api_key is None:
            return passed("key", f"none needed: GET /models answered {status} without one")
        return passed("key", f"accepted: GET /models answered {status}")
    code, message = error_details(payload, redact)
    if status == 404:
        return failed(
            "key",
            f"HTTP 404 for {settings.base_url}/models: check --base-url (it usually ends in /v1)",
            ConfigError,
        )
    if status == 429 and code != "insufficient_quota":
        return passed("key", f"accepted, but rate limited right now (HTTP 429: {message})")
    return refusal("key", status, code, message, settings)


def refusal(
    name: str, status: int, code: str | None, message: str, settings: DoctorSettings
) -> Check:
    """A non-2xx answer, as the run would take it."""
    said = f"HTTP {status}: {_without_full_stop(message)}"
    if 300 <= status < 400:
        return failed(
            name, f"{said} (a redirect; sluice follows none: check --base-url)", ConfigError
        )
    if status in (401, 403):
        where = settings.key_variable
        advice = f"check the key in {where}" if settings.api_key else f"set {where}"
        return failed(name, f"refused, {said}; {advice}", AuthRefused)
    if status == 429:
        return failed(name, said, QuotaExhausted)  # out of quota, or busy: try again later
    if status >= 500:
        return failed(name, said, ServiceUnavailable)
    return failed(name, said, ConfigError)


def model_ids(payload: bytes) -> list[str] | None:
    """The ids of an OpenAI-style model list, or None when the body is not one."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return None
    return [str(entry["id"]) for entry in data if isinstance(entry, dict) and "id" in entry]


def is_listed(model: str, ids: Sequence[str]) -> bool:
    # Ollama lists `llama3.1:latest` and serves it as `llama3.1` as well.
    return model in ids or f"{model}:latest" in ids


def listed_check(model: str, ids: Sequence[str] | None) -> Check:
    """Without --probe: does GET /models list the model? A near miss is named, as a typo."""
    if ids is None:
        return skipped("model", "GET /models gave no model list; --probe asks the model itself")
    if is_listed(model, ids):
        return passed("model", f"{model} is listed by GET /models")
    close = difflib.get_close_matches(model, ids, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return failed(
        "model",
        f"{model} is not among the {counted(len(ids), 'model')} the server lists{hint}; "
        "a gateway may serve models it does not list: --probe asks it directly",
        ConfigError,
    )


def probe_check(
    model: str,
    response: Response,
    ids: Sequence[str] | None,
    settings: DoctorSettings,
    redact: Redactor,
) -> Check:
    """The one-token chat request answered: does the model serve?"""
    status = response.status
    if 200 <= status < 300:
        if not _has_choices(response.payload):
            return failed(
                "model",
                f"HTTP {status}, but not a chat answer: check --base-url points at an "
                "OpenAI-compatible API",
                ConfigError,
            )
        unlisted = "" if ids is None or is_listed(model, ids) else " (not listed by GET /models)"
        took = in_milliseconds(response.latency)
        return passed("model", f"{model} answered a one-token request in {took}{unlisted}")
    code, message = error_details(response.payload, redact)
    if status == 404 or code == "model_not_found":
        return failed(
            "model", f"the server does not serve {model}: HTTP {status}: {message}", ConfigError
        )
    return refusal("model", status, code, message, settings)


def _has_choices(payload: bytes) -> bool:
    """One token may be all reasoning and no content, so only the answer's shape counts."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    return isinstance(body, dict) and isinstance(body.get("choices"), list)


def limits_check(readings: Mapping[str, LimitReading], probed: bool) -> Check:
    """Limits are reported, never failed: a server that sends none may still have some."""
    if not readings:
        where = "" if probed else " with GET /models (a chat answer may carry them: --probe)"
        return passed("limits", f"none reported{where}; give --rpm/--tpm if the account has limits")
    return passed("limits", "; ".join(_reading(kind, r) for kind, r in readings.items()))


def _reading(kind: str, reading: LimitReading) -> str:
    parts = []
    if reading.per_minute is not None:
        parts.append(f"limit {reading.per_minute:,.0f}")
    if reading.remaining is not None:
        parts.append(f"{reading.remaining:,.0f} left")
    if reading.reset is not None:
        parts.append(f"resets in {reading.reset:,.2f}".rstrip("0").rstrip(".") + "s")
    return f"{kind}: {', '.join(parts)}"


def in_milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def _without_full_stop(message: str) -> str:
    """Advice follows a message after a semicolon; its own full stop would stand between.
    A message cut short ends in `...`, which stays."""
    return message if message.endswith("...") else message.removesuffix(".")
