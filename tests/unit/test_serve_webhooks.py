"""The pure rules of serve's webhooks: the secret, Standard Webhooks signatures, allowed
targets, the backoff schedule, and the outbox's file format."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import random
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.errors import ConfigError
from pipeline.serve.webhook_rules import (
    WEBHOOKS_OFF,
    PendingDelivery,
    pending_delivery,
    retry_delay,
)
from pipeline.serve.webhooks import OutboxStore, check_target, sign, webhook_secret

# The example the Standard Webhooks reference libraries test their signing with.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

ALLOWED = frozenset({"hooks.example.com", "127.0.0.1"})


def test_the_published_example_signs_to_the_published_signature() -> None:
    secret = webhook_secret({"SLUICE_WEBHOOK_SECRET": SPEC_SECRET})
    assert secret is not None
    assert sign(secret, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


@given(
    secret=st.binary(min_size=1, max_size=64),
    message_id=st.text(min_size=1, max_size=40),
    timestamp=st.integers(min_value=0, max_value=2**40),
    body=st.binary(max_size=200),
)
def test_a_signature_is_the_hmac_of_id_timestamp_and_body(
    secret: bytes, message_id: str, timestamp: int, body: bytes
) -> None:
    version, _, encoded = sign(secret, message_id, timestamp, body).partition(",")
    signed = message_id.encode() + b"." + str(timestamp).encode() + b"." + body
    assert version == "v1"
    assert base64.b64decode(encoded) == hmac.digest(secret, signed, hashlib.sha256)


@pytest.mark.parametrize("environ", [{}, {"SLUICE_WEBHOOK_SECRET": ""}])
def test_no_secret_means_unsigned(environ: dict[str, str]) -> None:
    assert webhook_secret(environ) is None


def test_a_plain_secret_is_used_as_its_bytes() -> None:
    assert webhook_secret({"SLUICE_WEBHOOK_SECRET": "correct horse"}) == b"correct horse"


def test_a_whsec_secret_is_base64_with_or_without_its_padding() -> None:
    key = os.urandom(24) + b"\x01"  # 25 bytes: base64 with padding
    encoded = base64.b64encode(key).decode()
    assert encoded.endswith("=")
    for value in (encoded, encoded.rstrip("=")):
        assert webhook_secret({"SLUICE_WEBHOOK_SECRET": "whsec_" + value}) == key


@pytest.mark.parametrize("value", ["whsec_not*base64!", "whsec_"])
def test_a_broken_whsec_secret_is_a_config_error_that_does_not_show_it(value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        webhook_secret({"SLUICE_WEBHOOK_SECRET": value})
    assert refused.value.exit_code == 78
    assert "SLUICE_WEBHOOK_SECRET" in refused.value.message
    assert "base64!" not in refused.value.message


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/h/TOKEN",
        "http://HOOKS.Example.COM:8080/h?token=TOKEN",
        "http://127.0.0.1:9999/h",
        "https://hooks.example.com./h",
    ],
)
def test_a_url_on_an_allowed_host_passes_whatever_its_case_or_port(url: str) -> None:
    assert check_target(url, ALLOWED) is None


def test_allowed_hosts_compare_without_case_or_brackets() -> None:
    assert check_target("http://[::1]:8000/h", frozenset({"[::1]"})) is None
    assert check_target("http://example.com/h", frozenset({"Example.COM"})) is None


def test_with_no_allowed_host_every_url_is_refused() -> None:
    assert check_target("https://hooks.example.com/h", frozenset()) == WEBHOOKS_OFF
    assert "--webhook-allow" in WEBHOOKS_OFF


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data", "is not one the server allows"),
        ("http://localhost:8080/admin", "is not one the server allows"),
        ("https://hooks.example.com.evil.test/h", "is not one the server allows"),
        ("ftp://hooks.example.com/h", "is not an http:// or https:// URL with a host"),
        ("hooks.example.com/h", "is not an http:// or https:// URL with a host"),
        ("http:///h", "is not an http:// or https:// URL with a host"),
        ("http://hooks.example.com:99999/h", "is not a valid URL"),
        ("http://[::1/h", "is not a valid URL"),
    ],
)
def test_a_url_that_is_not_allowed_says_why(url: str, why: str) -> None:
    reason = check_target(url, ALLOWED)
    assert reason is not None and why in reason


@given(
    host=st.sampled_from(["hooks.example.com", "10.0.0.1", "metadata.internal"]),
    secret=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=6, max_size=20),
)
def test_a_reason_never_shows_a_urls_path_query_or_password(host: str, secret: str) -> None:
    for url in (
        f"https://{host}/hooks/{secret}",
        f"https://{host}/h?token={secret}",
        f"https://user:{secret}@{host}/h",
        f"gopher://{host}/{secret}",
    ):
        reason = check_target(url, ALLOWED) or ""
        assert secret not in reason


@given(
    failures=st.integers(min_value=1, max_value=10_000),
    now=st.floats(min_value=0, max_value=1e10),
    window=st.floats(min_value=-1e6, max_value=1e6),
    first=st.floats(min_value=0.001, max_value=10),
    cap=st.floats(min_value=0.001, max_value=3600),
    seed=st.integers(),
)
def test_a_retry_waits_within_its_ceiling_and_never_past_the_deadline(
    failures: int, now: float, window: float, first: float, cap: float, seed: int
) -> None:
    deadline = now + window
    delay = retry_delay(failures, now, deadline, random.Random(seed), first, cap)
    if now >= deadline:
        assert delay is None
        return
    assert delay is not None
    assert 0.0 <= delay <= min(cap, first * 2.0 ** min(failures - 1, 64))
    assert now + delay <= deadline


@given(seed=st.integers())
def test_the_first_retry_waits_at_most_the_first_backoff(seed: int) -> None:
    delay = retry_delay(1, 0.0, 3600.0, random.Random(seed), first=1.0, cap=300.0)
    assert delay is not None and 0.0 <= delay <= 1.0


def test_the_ceiling_doubles_up_to_the_cap() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b  # always the ceiling, to read the schedule off

    ceilings = [retry_delay(n, 0.0, 1e9, Top(), first=1.0, cap=300.0) for n in range(1, 12)]
    assert ceilings == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def test_an_outbox_file_is_owner_only_and_reads_back(tmp_path: Path) -> None:
    store = OutboxStore(str(tmp_path / "outbox"))
    pending = PendingDelivery("msg_j1", "https://h/TOKEN", '{"a":1}', 1.7e9, 2)
    name = store.write(pending)
    assert store.names() == [name]
    assert stat.S_IMODE(os.stat(tmp_path / "outbox" / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "outbox").st_mode) == 0o700
    assert store.read(name) == pending
    store.remove(name)
    assert store.names() == []


@pytest.mark.parametrize(
    "record",
    [
        [],
        {},
        {"webhook_id": "m", "url": "u", "body": "{}"},
        {"webhook_id": "m", "url": "u", "body": "{}", "enqueued_at": "now"},
        {"webhook_id": "m", "url": "u", "body": "{}", "enqueued_at": 1.0, "attempts": "2"},
        {"webhook_id": "m", "url": "u", "body": "{}", "enqueued_at": True},
        {"webhook_id": 7, "url": "u", "body": "{}", "enqueued_at": 1.0},
    ],
)
def test_a_file_the_outbox_did_not_write_is_refused(record: object) -> None:
    with pytest.raises(ValueError):
        pending_delivery(record)
