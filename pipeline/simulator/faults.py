"""Which fault a request gets, and the OpenAI-shaped error bodies that go with them.

Pure: random faults come from a seeded `random.Random`, per-item faults from
`[[sim:...]]` triggers in the request's text; nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import hmac
import random
import re
from dataclasses import dataclass
from enum import StrEnum

import orjson

from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.limits import Refusal, format_reset

# A triggered 429 asks for a short wait so client tests of the retry path stay fast;
# `429_long` asks for hours, as a provider does when a daily allowance is spent.
TRIGGERED_RATE_LIMIT_WAIT = 0.05
LONG_RATE_LIMIT_WAIT = 7200.0


class InvalidRequest(Exception):
    """A body the API refuses: 400 invalid_request_error unless `status` says otherwise."""

    def __init__(
        self, message: str, param: str | None = None, code: str | None = None, status: int = 400
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status


class Fault(StrEnum):
    INVALID = "400"
    CONTEXT_LENGTH = "context_length"
    RATE_LIMITED = "429"
    LONG_RATE_LIMIT = "429_long"
    SERVER_ERROR = "500"
    BAD_GATEWAY = "502"
    OVERLOADED = "503"
    DROP = "drop"
    MALFORMED = "malformed"
    HANG = "hang"
    INVALID_JSON = "invalid_json"
    SCHEMA_VIOLATION = "schema_violation"
    STALL = "stall"


# Faults that keep the 200 but bend the answer's content; only JSON answers can carry them.
CONTENT_FAULTS = frozenset({Fault.INVALID_JSON, Fault.SCHEMA_VIOLATION})


HTTP_STATUS_FAULTS = {
    Fault.SERVER_ERROR: 500,
    Fault.BAD_GATEWAY: 502,
    Fault.OVERLOADED: 503,
}


@dataclass(frozen=True, slots=True)
class Trigger:
    fault: Fault
    times: int | None
    """Only the first `times` requests with the same content get the fault; None: all."""

    def fires(self, earlier_requests: int) -> bool:
        """Whether a request gets the fault, given how many with its content came before."""
        return self.times is None or earlier_requests < self.times


_TRIGGER_MARK = "[[sim:"
_TRIGGER = re.compile(
    r"\[\[sim:(" + "|".join(re.escape(fault.value) for fault in Fault) + r")(?:x(\d+))?\]\]"
)


def find_input_trigger(texts: list[str]) -> tuple[int, Trigger] | None:
    """The first trigger among a packed request's inputs, with the index of its input."""
    for index, text in enumerate(texts):
        trigger = find_trigger(text)
        if trigger is not None:
            return index, trigger
    return None


def find_trigger(text: str) -> Trigger | None:
    """The first `[[sim:KIND]]` or `[[sim:KINDxN]]` trigger in `text`, if any."""
    if _TRIGGER_MARK not in text:
        return None
    match = _TRIGGER.search(text)
    if match is None:
        return None
    times = match.group(2)
    return Trigger(Fault(match.group(1)), int(times) if times is not None else None)


def without_content_fault(trigger: Trigger | None) -> Trigger | None:
    """A content trigger has nothing to bend in text or vectors; any other stays."""
    return None if trigger is not None and trigger.fault in CONTENT_FAULTS else trigger


class RandomFaults:
    """Draws the random fault (or none) of each request from the configured rates."""

    def __init__(self, config: SimulatorConfig) -> None:
        self._rng = random.Random(config.seed)
        self._enabled = config.fault_rate_total > 0.0
        # One draw per request against cumulative thresholds keeps the rates exact
        # and the sequence reproducible from the seed.
        self._thresholds: list[tuple[float, Fault]] = []
        total = 0.0
        for rate, fault in (
            (config.fail_rate, Fault.SERVER_ERROR),
            (config.drop_rate, Fault.DROP),
            (config.hang_rate, Fault.HANG),
            (config.malformed_rate, Fault.MALFORMED),
        ):
            total += rate
            self._thresholds.append((total, fault))

    def draw(self) -> Fault | None:
        if not self._enabled:
            return None
        roll = self._rng.random()
        for threshold, fault in self._thresholds:
            if roll < threshold:
                if fault is Fault.SERVER_ERROR:
                    return self._rng.choice(tuple(HTTP_STATUS_FAULTS))
                return fault
        return None

    def malformed_variant(self) -> int:
        return self._rng.randrange(2)


class Latency:
    """Seeded delays: `latency` plus uniform jitter, never negative."""

    def __init__(self, config: SimulatorConfig) -> None:
        # Its own stream, so turning jitter on does not change which requests fail.
        self._rng = random.Random(f"latency:{config.seed}")
        self._latency = config.latency
        self._jitter = config.jitter

    def draw(self) -> float:
        if self._jitter == 0.0:
            return self._latency
        return max(0.0, self._latency + self._rng.uniform(-self._jitter, self._jitter))


def malformed_body(valid_body: bytes, variant: int = 0) -> bytes:
    """A 200 body a client cannot parse: truncated JSON, or an HTML error page."""
    if variant == 0:
        return valid_body[: max(1, len(valid_body) // 2)]
    return b"<html><body><h1>502 Bad Gateway</h1></body></html>"


def error_body(
    message: str, error_type: str, code: str | None = None, param: str | None = None
) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    )


def invalid_request_body(message: str, param: str | None = None, code: str | None = None) -> bytes:
    return error_body(message, "invalid_request_error", code, param)


def triggered_invalid_body(param: str | None = None) -> bytes:
    """The [[sim:400]] refusal; `param` names the input of a packed request that holds it."""
    if param is None:
        return invalid_request_body(
            "Invalid request: the simulator was asked to refuse this item ([[sim:400]]).",
            code="invalid_request",
        )
    return invalid_request_body(
        f"Invalid value for '{param}': the simulator was asked to refuse this input ([[sim:400]]).",
        param,
        "invalid_request",
    )


def context_length_body(message: str, param: str = "messages") -> bytes:
    return invalid_request_body(message, param, "context_length_exceeded")


def server_error_body(status: int) -> bytes:
    messages = {
        500: "The server had an error while processing your request. Sorry about that!",
        502: "Bad gateway.",
        503: "The engine is currently overloaded, please try again later.",
    }
    return error_body(messages.get(status, "Server error."), "server_error")


INSUFFICIENT_QUOTA_BODY = error_body(
    "You exceeded your current quota, please check your plan and billing details.",
    "insufficient_quota",
    "insufficient_quota",
)


def rate_limited_body(refusal: Refusal, model: str) -> bytes:
    """The 429 body; its `type` is the binding limit, `requests` or `tokens`, as OpenAI sends."""
    unit = "RPM" if refusal.kind == "requests" else "TPM"
    message = (
        f"Rate limit reached for {model} in organization org-sim on {refusal.kind} per min "
        f"({unit}): Limit {refusal.limit}, Used {refusal.used}, Requested {refusal.requested}. "
        f"Please try again in {format_reset(refusal.wait)}."
    )
    return error_body(message, refusal.kind, "rate_limit_exceeded")


def not_found_body(method: str, path: str) -> bytes:
    return invalid_request_body(f"Invalid URL ({method} {path})")


def api_key_refusal(authorization: str | None, required_key: str) -> bytes | None:
    """None when `Authorization` carries the required key, else the 401 body.

    The body names at most the last four characters of the key that was sent.
    """
    scheme, _, presented = (authorization or "").strip().partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        return invalid_request_body(
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code="invalid_api_key",
        )
    if hmac.compare_digest(
        presented.encode("utf-8", "replace"), required_key.encode("utf-8", "replace")
    ):
        return None
    return invalid_request_body(
        f"Incorrect API key provided: {mask_key(presented)}. "
        "This simulator only accepts the key it was started with.",
        code="invalid_api_key",
    )


def mask_key(key: str) -> str:
    # Short keys would be mostly revealed by their last four characters.
    if len(key) < 8:
        return "***"
    prefix = "sk-" if key.startswith("sk-") else ""
    return f"{prefix}...{key[-4:]}"
