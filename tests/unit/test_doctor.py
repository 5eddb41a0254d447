"""The doctor's verdicts (pure): what each answer means, and which exit code wins."""

from __future__ import annotations

import asyncio

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.config import Secret
from pipeline.core.redact import Redactor
from pipeline.dispatch.transport import Response
from pipeline.protocol.headers import LimitReading
from pipeline.run.doctor import diagnose
from pipeline.run.doctor_checks import (
    CHECK_NAMES,
    Check,
    DoctorSettings,
    Status,
    exit_code_of,
    key_check,
    limits_check,
    listed_check,
    model_ids,
    probe_check,
)
from tests.leaks import key_fragments

KEY = "tok_9fQ2xLmP4vRtZ8wYk3NcB7hJ6sDaE1gU5oIq"
SETTINGS = DoctorSettings("https://api.example.com/v1", Secret(KEY), "OPENAI_API_KEY")
REDACT = Redactor(Secret(KEY))
RUN_EXIT_CODES = {69, 75, 77, 78}

statuses = st.integers(min_value=200, max_value=599)
codes = st.sampled_from([None, "insufficient_quota", "model_not_found", "invalid_api_key"])
messages = st.text(max_size=80)


def _error_body(message: str, code: str | None) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    )


@st.composite
def checks(draw: st.DrawFn) -> Check:
    name = draw(st.sampled_from(CHECK_NAMES))
    status = draw(st.sampled_from(Status))
    code = draw(st.sampled_from(sorted(RUN_EXIT_CODES))) if status is Status.FAILED else None
    return Check(name, status, "detail", code)


@given(st.lists(checks(), max_size=8))
def test_the_exit_code_is_the_failure_a_run_would_meet_first(found: list[Check]) -> None:
    failures = [c for c in found if c.status is Status.FAILED]
    code = exit_code_of(found)
    if not failures:
        assert code == 0
    elif any(c.name in ("url", "key") and c.exit_code == 78 for c in failures):
        assert code == 78  # a run refuses a bad URL or a missing key before connecting
    else:
        assert code == failures[0].exit_code


@given(statuses, codes, messages)
def test_the_key_check_maps_every_answer_to_a_run_exit_code(
    status: int, code: str | None, message: str
) -> None:
    check = key_check(status, _error_body(message, code), SETTINGS, REDACT)
    if 200 <= status < 300 or (status == 429 and code != "insufficient_quota"):
        assert check.status is Status.PASSED and check.exit_code is None
        return
    assert check.status is Status.FAILED
    assert check.exit_code in RUN_EXIT_CODES
    if status in (401, 403):
        assert check.exit_code == 77
    if status >= 500:
        assert check.exit_code == 69
    if status == 429:
        assert check.exit_code == 75


@given(statuses, st.text(max_size=40), st.text(max_size=40), st.integers(0, len(KEY)))
def test_a_key_the_server_quotes_never_reaches_a_check(
    status: int, before: str, after: str, cut: int
) -> None:
    # Whole, or cut short by the server as some do.
    quoted = _error_body(f"{before}Bearer {KEY[:cut] if cut > 7 else KEY}{after}", None)
    check = key_check(status, quoted, SETTINGS, REDACT)
    answer = Response(status, {}, quoted, 0.01)
    probed = probe_check("m", answer, None, SETTINGS, REDACT)
    assert not key_fragments(KEY, check.detail + probed.detail)


@given(statuses, codes, messages)
def test_the_probe_passes_on_a_chat_answer_and_names_an_unserved_model_78(
    status: int, code: str | None, message: str
) -> None:
    answer = Response(status, {}, _error_body(message, code), 0.2)
    check = probe_check("m", answer, ["m"], SETTINGS, REDACT)
    if 200 <= status < 300:  # an error body in a 2xx is no chat answer
        assert (check.status, check.exit_code) == (Status.FAILED, 78)
    elif status == 404 or code == "model_not_found":
        assert (check.status, check.exit_code) == (Status.FAILED, 78)
        assert check.detail.startswith("the server does not serve m: ")
    else:
        assert check.status is Status.FAILED and check.exit_code in RUN_EXIT_CODES


@given(st.sampled_from([200, 201]), st.lists(st.text(min_size=1, max_size=8), max_size=5))
def test_any_2xx_with_choices_is_an_answer_listed_or_not(status: int, ids: list[str]) -> None:
    body = orjson.dumps({"choices": [{"message": {"content": None}, "finish_reason": "length"}]})
    check = probe_check("m", Response(status, {}, body, 0.2), ids, SETTINGS, REDACT)
    assert check.status is Status.PASSED
    assert check.detail.endswith("(not listed by GET /models)") == ("m" not in ids)


names = st.text(alphabet="abcdefgh-.:0123456789", min_size=1, max_size=12)


@given(names, st.lists(names, max_size=20))
def test_a_model_passes_when_listed_and_fails_78_otherwise(model: str, ids: list[str]) -> None:
    check = listed_check(model, ids)
    if model in ids or f"{model}:latest" in ids:
        assert check.status is Status.PASSED
    else:
        assert (check.status, check.exit_code) == (Status.FAILED, 78)


def test_a_model_cannot_be_judged_without_a_model_list() -> None:
    assert listed_check("m", None).status is Status.SKIPPED


@given(st.lists(names, max_size=20))
def test_model_ids_reads_back_an_openai_model_list(ids: list[str]) -> None:
    body = orjson.dumps({"object": "list", "data": [{"id": i, "object": "model"} for i in ids]})
    assert model_ids(body) == ids


def test_model_ids_of_something_else_is_none() -> None:
    assert model_ids(b"<html>") is None
    assert model_ids(b'{"models": []}') is None
    assert model_ids(b"[1, 2]") is None


readings = st.builds(
    LimitReading,
    st.none() | st.floats(1, 1e9),
    st.none() | st.floats(0, 1e9),
    st.none() | st.floats(0, 3600),
)


@given(st.dictionaries(st.sampled_from(["requests", "tokens"]), readings), st.booleans())
def test_the_limits_check_always_passes_and_names_what_was_reported(
    reported: dict[str, LimitReading], probed: bool
) -> None:
    check = limits_check(reported, probed)
    assert check.status is Status.PASSED
    for kind in reported:
        assert f"{kind}: " in check.detail
    if not reported:
        assert check.detail.startswith("none reported")


def test_a_bad_base_url_fails_without_any_network_and_skips_the_rest() -> None:
    settings = DoctorSettings(
        "ftp://x", None, "OPENAI_API_KEY", model="m", base_url_problem="base URL is bad"
    )
    diagnosis = asyncio.run(diagnose(settings))
    assert [c.status for c in diagnosis.checks] == [Status.FAILED] + [Status.SKIPPED] * 6
    assert {c.detail for c in diagnosis.checks[1:]} == {"the url check failed"}
    assert diagnosis.exit_code == 78
    assert diagnosis.as_dict()["base_url"] is None
