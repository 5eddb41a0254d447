"""The pure rules of job-finished webhooks: the secret, the signature, allowed targets,
backoff, and the outbox's record format.

Signatures follow the Standard Webhooks convention (https://www.standardwebhooks.com):

    webhook-signature: v1,<base64 of HMAC-SHA256(secret, b"{id}.{timestamp}." + body)>

where `timestamp` is the `webhook-timestamp` header (whole seconds since the
epoch) and `body` the exact bytes posted. No clock, no network, no file here:
the outbox (webhooks.py) hands these rules `now` and the values it read.

An outbox file holds one pending delivery, named by a hash of its webhook-id:

    {"webhook_id": "msg_<job id>", "url": ..., "body": "<the JSON posted>",
     "enqueued_at": <wall seconds>, "attempts": <failed attempts so far>}
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pipeline.core.errors import ConfigError
from pipeline.report.webhook import redacted_url

SECRET_VARIABLE = "SLUICE_WEBHOOK_SECRET"
SECRET_PREFIX = "whsec_"  # the Standard Webhooks form: whsec_ then the key in base64
WEBHOOKS_OFF = "webhooks are off: start sluice serve with --webhook-allow HOST"
_HEADER_SAFE_ID = re.compile(r"[A-Za-z0-9_.\-]{1,200}")


@dataclass(frozen=True)
class PendingDelivery:
    webhook_id: str
    url: str
    body: str  # the exact text posted and signed
    enqueued_at: float  # wall seconds: the retry window outlives a restart
    attempts: int = 0


def webhook_secret(environ: Mapping[str, str]) -> bytes | None:
    """The signing key from SLUICE_WEBHOOK_SECRET, or None when it is unset or empty.

    `whsec_<base64>` is decoded as the convention says; any other text is used
    as its UTF-8 bytes. A `whsec_` value that is not base64 is a ConfigError
    (exit 78) whose message never shows the value.
    """
    value = environ.get(SECRET_VARIABLE, "")
    if not value:
        return None
    if not value.startswith(SECRET_PREFIX):
        return value.encode("utf-8")
    encoded = value.removeprefix(SECRET_PREFIX)
    try:
        # Secrets are often shared without their base64 padding; put it back.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"{SECRET_VARIABLE} starts with {SECRET_PREFIX} but the rest is not base64"
        ) from None
    if not key:
        raise ConfigError(f"{SECRET_VARIABLE} is {SECRET_PREFIX} with no key after it")
    return key


def sign(secret: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value: `v1,` and the base64 HMAC-SHA256."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def check_target(url: str, allowed_hosts: frozenset[str]) -> str | None:
    """Why `url` may not receive webhooks, or None when it may.

    Only http(s) URLs whose host (any case, any port) is on the allow list pass,
    so a job cannot make the server post to its own network's internal
    addresses. Messages name the URL as scheme://host[:port] only: tokens live
    in paths and queries.
    """
    if not allowed_hosts:
        return WEBHOOKS_OFF
    shown = redacted_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return f"webhook_url {shown} is not a valid URL"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return f"webhook_url {shown} is not an http:// or https:// URL with a host"
    host = normal_host(parts.hostname)
    if host not in normal_hosts(allowed_hosts):
        return f"webhook_url host {host} is not one the server allows (--webhook-allow)"
    return None


def normal_host(host: str) -> str:
    """Hosts compare without case, IPv6 brackets or the root's trailing dot."""
    return host.strip("[]").rstrip(".").lower()


def normal_hosts(hosts: Iterable[str]) -> frozenset[str]:
    return frozenset(normal_host(host) for host in hosts)


def retry_delay(
    failures: int,
    now: float,
    deadline: float,
    rng: random.Random,
    first: float = 1.0,
    cap: float = 300.0,
) -> float | None:
    """Seconds before the next attempt after `failures` failed ones, or None to give up.

    Full jitter (a uniform draw up to a ceiling that doubles from `first` to
    `cap`) keeps a receiver that comes back from being hit by every pending
    delivery at once. The wait is cut short at `deadline`, so the last attempt
    falls on it; once `now` has reached it, there is nothing left to wait for.
    """
    if now >= deadline:
        return None
    exponent = min(max(failures - 1, 0), 64)  # 2**64 seconds is past any cap
    ceiling = min(cap, first * 2.0**exponent)
    return min(rng.uniform(0.0, ceiling), deadline - now)


def webhook_id_for(job_id: str) -> str:
    """The same id on every attempt, for receivers to de-duplicate on; header-safe."""
    return "msg_" + (job_id if _HEADER_SAFE_ID.fullmatch(job_id) else digest(job_id))


def pending_delivery(record: Any) -> PendingDelivery:
    """The delivery an outbox file holds; ValueError when it is not an outbox record."""
    texts = ("webhook_id", "url", "body")
    attempts = record.get("attempts", 0) if isinstance(record, dict) else None
    if (
        not isinstance(record, dict)
        or not all(isinstance(record.get(key), str) for key in texts)
        or not _is_number(record.get("enqueued_at"))
        or not isinstance(attempts, int)
        or isinstance(attempts, bool)
    ):
        raise ValueError("not an outbox record")
    return PendingDelivery(
        record["webhook_id"], record["url"], record["body"], record["enqueued_at"], attempts
    )


def file_name(webhook_id: str) -> str:
    """A name any filesystem accepts, whatever the id holds."""
    return digest(webhook_id) + ".json"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
