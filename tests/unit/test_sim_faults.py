"""Which fault a request gets, the error bodies, the key check and the config's own checks."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.faults import (
    HTTP_STATUS_FAULTS,
    INSUFFICIENT_QUOTA_BODY,
    Fault,
    Latency,
    RandomFaults,
    Trigger,
    api_key_refusal,
    find_trigger,
    malformed_body,
    rate_limited_body,
    server_error_body,
    triggered_invalid_body,
)
from pipeline.simulator.limits import Refusal


@pytest.mark.parametrize(
    ("text", "trigger"),
    [
        ("please [[sim:400]]", Trigger(Fault.INVALID, None)),
        ("[[sim:context_length]] long", Trigger(Fault.CONTEXT_LENGTH, None)),
        ("x [[sim:500x2]] y", Trigger(Fault.SERVER_ERROR, 2)),
        ("[[sim:502x1]]", Trigger(Fault.BAD_GATEWAY, 1)),
        ("[[sim:503x10]]", Trigger(Fault.OVERLOADED, 10)),
        ("[[sim:429x3]]", Trigger(Fault.RATE_LIMITED, 3)),
        ("[[sim:dropx1]]", Trigger(Fault.DROP, 1)),
        ("[[sim:malformedx1]]", Trigger(Fault.MALFORMED, 1)),
        ("[[sim:hang]]", Trigger(Fault.HANG, None)),
        ("[[sim:500]]", Trigger(Fault.SERVER_ERROR, None)),
        ("[[sim:dropx1]] then [[sim:400]]", Trigger(Fault.DROP, 1)),
    ],
)
def test_triggers_are_found_in_text(text: str, trigger: Trigger) -> None:
    assert find_trigger(text) == trigger


@pytest.mark.parametrize(
    "text", ["", "plain text", "[sim:400]", "[[sim:418]]", "[[sim:500x]]", "[[SIM:400]]"]
)
def test_text_without_a_valid_trigger_has_none(text: str) -> None:
    assert find_trigger(text) is None


def test_a_counted_trigger_fires_for_the_first_n_requests_only() -> None:
    twice = Trigger(Fault.SERVER_ERROR, 2)
    assert [twice.fires(earlier) for earlier in range(4)] == [True, True, False, False]
    always = Trigger(Fault.INVALID, None)
    assert all(always.fires(earlier) for earlier in range(100))


def test_no_rates_means_no_random_faults() -> None:
    faults = RandomFaults(SimulatorConfig())
    assert all(faults.draw() is None for _ in range(1000))


def test_fail_rate_one_always_answers_a_server_error() -> None:
    faults = RandomFaults(SimulatorConfig(fail_rate=1.0))
    drawn = {faults.draw() for _ in range(300)}
    assert drawn == set(HTTP_STATUS_FAULTS)


def test_random_faults_follow_their_rates_and_replay_from_the_seed() -> None:
    config = SimulatorConfig(fail_rate=0.1, drop_rate=0.2, hang_rate=0.05, malformed_rate=0.15)
    faults = RandomFaults(config)
    draws = [faults.draw() for _ in range(10_000)]
    again = RandomFaults(config)
    assert draws == [again.draw() for _ in range(10_000)]
    counts = Counter("fail" if fault in HTTP_STATUS_FAULTS else fault for fault in draws)
    assert counts["fail"] == pytest.approx(1000, rel=0.15)
    assert counts[Fault.DROP] == pytest.approx(2000, rel=0.15)
    assert counts[Fault.HANG] == pytest.approx(500, rel=0.15)
    assert counts[Fault.MALFORMED] == pytest.approx(1500, rel=0.15)
    assert counts[None] == pytest.approx(5000, rel=0.15)


def test_another_seed_gives_another_sequence() -> None:
    one = RandomFaults(SimulatorConfig(fail_rate=0.5, seed=1))
    two = RandomFaults(SimulatorConfig(fail_rate=0.5, seed=2))
    assert [one.draw() for _ in range(50)] != [two.draw() for _ in range(50)]


def test_latency_without_jitter_is_exact() -> None:
    latency = Latency(SimulatorConfig(latency=0.3))
    assert {latency.draw() for _ in range(10)} == {0.3}


@given(st.floats(0.0, 2.0), st.floats(0.0, 2.0), st.integers(0, 2**32))
def test_jittered_latency_is_bounded_and_replays(base: float, jitter: float, seed: int) -> None:
    config = SimulatorConfig(latency=base, jitter=jitter, seed=seed)
    assert Latency(config).draw() == Latency(config).draw()
    latency = Latency(config)
    for _ in range(20):
        delay = latency.draw()
        assert max(0.0, base - jitter) - 1e-9 <= delay <= base + jitter + 1e-9


@pytest.mark.parametrize("variant", [0, 1])
def test_malformed_bodies_are_not_json(variant: int) -> None:
    valid = orjson.dumps({"id": "x", "choices": [{"message": {"content": "positive"}}]})
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(malformed_body(valid, variant))


def test_error_bodies_have_openai_fields() -> None:
    quota = orjson.loads(INSUFFICIENT_QUOTA_BODY)["error"]
    assert quota == {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
    invalid = orjson.loads(triggered_invalid_body())["error"]
    assert invalid["message"].startswith("Invalid request: ")
    assert (invalid["type"], invalid["code"]) == ("invalid_request_error", "invalid_request")
    for status in (500, 502, 503):
        assert orjson.loads(server_error_body(status))["error"]["type"] == "server_error"


def test_rate_limited_body_names_the_limit_and_the_wait() -> None:
    body = rate_limited_body(Refusal("tokens", 1.2, 1000, 990, 50), "gpt-4o-mini")
    error = orjson.loads(body)["error"]
    assert (error["type"], error["code"], error["param"]) == ("tokens", "rate_limit_exceeded", None)
    assert error["message"].startswith("Rate limit reached for gpt-4o-mini")
    assert "on tokens per min (TPM): Limit 1000, Used 990, Requested 50." in error["message"]
    assert error["message"].endswith("Please try again in 1.2s.")


def test_the_right_key_passes() -> None:
    assert api_key_refusal("Bearer sk-right-key-1234", "sk-right-key-1234") is None
    assert api_key_refusal("bearer  sk-right-key-1234 ", "sk-right-key-1234") is None


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic sk-right-key-1234", "sk-1234"])
def test_a_missing_key_is_refused(header: str | None) -> None:
    body = api_key_refusal(header, "sk-right-key-1234")
    assert body is not None
    error = orjson.loads(body)["error"]
    assert error["code"] == "invalid_api_key"
    assert "You didn't provide an API key" in error["message"]


def test_a_wrong_key_is_refused_showing_only_its_last_four_characters() -> None:
    body = api_key_refusal("Bearer sk-wrong-secret-abcd", "sk-right-key-1234")
    assert body is not None
    error = orjson.loads(body)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_api_key"
    assert error["message"].startswith("Incorrect API key provided: sk-...abcd.")
    assert b"wrong-secret" not in body
    assert b"right-key" not in body


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=60))
def test_no_refusal_ever_echoes_a_whole_key(key: str) -> None:
    body = api_key_refusal(f"Bearer {key}", "the-required-key-0000")
    assert body is not None
    message = orjson.loads(body)["error"]["message"]
    shown = message.removeprefix("Incorrect API key provided: ").split(". ")[0]
    assert len(shown.removeprefix("sk-...").removeprefix("...")) <= 4
    assert "the-required-key" not in message


@pytest.mark.parametrize(
    "options",
    [
        {"fail_rate": -0.1},
        {"drop_rate": 1.5},
        {"fail_rate": 0.6, "hang_rate": 0.6},
        {"rpm": 0},
        {"tpm": -1},
        {"quota_requests": -1},
        {"burst_seconds": 0},
        {"latency": -1},
        {"embedding_dimensions": 0},
    ],
)
def test_config_refuses_settings_that_cannot_be_served(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(**options)


def test_config_defaults_are_fast_unlimited_and_faultless() -> None:
    config = SimulatorConfig()
    assert (config.rpm, config.tpm, config.quota_requests, config.require_key) == (
        None,
        None,
        None,
        None,
    )
    assert (config.latency, config.jitter, config.fault_rate_total) == (0.0, 0.0, 0.0)
    assert "sk-secret" not in repr(SimulatorConfig(require_key="sk-secret"))
