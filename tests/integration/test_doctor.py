"""`sluice doctor` against the simulator and small servers on 127.0.0.1 that misbehave on cue."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from aiohttp import web
from typer.testing import Result

from cli.app import app
from pipeline.simulator.background import LOOPBACK, BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import run_cli
from tests.leaks import key_fragments

# Not shaped like sk-...: only the key itself can tell a redactor what to look for.
KEY = "tok_9fQ2xLmP4vRtZ8wYk3NcB7hJ6sDaE1gU5oIq"
CHECKS = ["url", "resolve", "connect", "tls", "key", "model", "limits"]
LINE = re.compile(r"(ok|FAIL|skip) {2,}(\w+) +(.+)")
PROCESS_TIMEOUT = 60  # a guard against a hang, not a measurement
DOCTOR_PROCESS = [sys.executable, "-m", "cli", "doctor"]


def _doctor(*args: str, key: str | None = None) -> Result:
    """In process, through the registered command, as a user would type it."""
    return run_cli(["doctor", *args], env={"OPENAI_API_KEY": key})


def _lines(result: Result) -> dict[str, tuple[str, str]]:
    """{check: (label, detail)} from the text output, which must be nothing but check lines."""
    parsed = [LINE.fullmatch(line) for line in result.stdout.splitlines()]
    assert all(parsed), result.stdout
    assert [m[2] for m in parsed if m] == CHECKS
    return {m[2]: (m[1], m[3]) for m in parsed if m}


def _labels(result: Result) -> list[str]:
    return [label for label, _ in _lines(result).values()]


def _port_nobody_listens_on() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextmanager
def _server(
    models: Handler, chat: Handler | None = None, tls: ssl.SSLContext | None = None
) -> Iterator[_Seen]:
    """A small OpenAI-shaped server: GET /v1/models and POST /v1/chat/completions."""
    seen = _Seen()

    async def count_models(request: web.Request) -> web.StreamResponse:
        seen.models += 1
        seen.authorization.append(request.headers.get("Authorization", ""))
        return await models(request)

    async def count_chat(request: web.Request) -> web.StreamResponse:
        seen.chat_bodies.append(orjson.loads(await request.read()))
        return await (chat or _answer)(request)

    app = web.Application()
    app.router.add_get("/v1/models", count_models)
    app.router.add_post("/v1/chat/completions", count_chat)
    ready = threading.Event()
    running: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def serve() -> None:
        stop = asyncio.Event()
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, LOOPBACK, 0, ssl_context=tls).start()
        scheme = "https" if tls else "http"
        seen.base_url = f"{scheme}://{LOOPBACK}:{runner.addresses[0][1]}/v1"
        running.append((asyncio.get_running_loop(), stop))
        ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the test server did not start"
    try:
        yield seen
    finally:
        loop, stop = running[0]
        loop.call_soon_threadsafe(stop.set)
        thread.join()


class _Seen:
    def __init__(self) -> None:
        self.base_url = ""
        self.models = 0
        self.authorization: list[str] = []
        self.chat_bodies: list[Any] = []


def _model_list(*names: str, headers: dict[str, str] | None = None) -> Handler:
    async def answer(request: web.Request) -> web.StreamResponse:
        body = {"object": "list", "data": [{"id": name, "object": "model"} for name in names]}
        return web.json_response(body, headers=headers)

    return answer


def _error(status: int, message: str, code: str | None = None) -> Handler:
    async def answer(request: web.Request) -> web.StreamResponse:
        body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
        return web.json_response(body, status=status)

    return answer


async def _answer(request: web.Request) -> web.StreamResponse:
    body = {
        "choices": [{"message": {"content": "OK"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    limits = {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-limit-tokens": "200000",
        "x-ratelimit-remaining-tokens": "199990",
        "x-ratelimit-reset-tokens": "3ms",
    }
    return web.json_response(body, headers=limits)


# --- against the simulator -------------------------------------------------------------


def test_every_check_passes_against_the_simulator(sim: BackgroundSimulator) -> None:
    result = _doctor("--base-url", sim.base_url, "-m", "sim-chat")
    assert result.exit_code == 0, result.output
    lines = _lines(result)
    assert _labels(result) == ["ok", "ok", "ok", "skip", "ok", "ok", "ok"]
    assert lines["resolve"][1] == "127.0.0.1 -> 127.0.0.1"
    assert lines["tls"][1] == "plain http: no TLS to check"
    assert lines["key"][1].startswith("none needed")  # a local server, and no key set
    assert lines["model"][1] == "sim-chat is listed by GET /models"
    assert lines["limits"][1].startswith("none reported")
    assert result.stderr == ""


def test_without_a_model_the_model_check_is_skipped_and_the_rest_pass(
    sim: BackgroundSimulator,
) -> None:
    result = _doctor("--base-url", sim.base_url)
    assert result.exit_code == 0, result.output
    assert _lines(result)["model"] == ("skip", "no model named (-m)")


def test_a_refused_key_exits_77_and_the_key_is_never_printed() -> None:
    with BackgroundSimulator(SimulatorConfig(require_key="sk-the-right-key-000000")) as keyed:
        result = _doctor("--base-url", keyed.base_url, "-m", "sim-chat", key=KEY)
        stats = keyed.stats()
    assert result.exit_code == 77, result.output
    lines = _lines(result)
    assert lines["key"][0] == "FAIL"
    assert "refused, HTTP 401" in lines["key"][1]
    assert "check the key in OPENAI_API_KEY" in lines["key"][1]
    assert lines["model"] == ("skip", "the key check failed")
    assert lines["limits"] == ("skip", "the key check failed")
    assert stats.requests_by_path == {"/v1/models": 1}
    assert not key_fragments(KEY, result.output)


def test_the_right_key_is_accepted() -> None:
    with BackgroundSimulator(SimulatorConfig(require_key=KEY)) as keyed:
        result = _doctor("--base-url", keyed.base_url, key=KEY)
    assert result.exit_code == 0, result.output
    assert _lines(result)["key"] == ("ok", "accepted: GET /models answered 200")
    assert not key_fragments(KEY, result.output)


def test_an_unknown_model_exits_78_naming_the_close_ones(sim: BackgroundSimulator) -> None:
    result = _doctor("--base-url", sim.base_url, "-m", "sim-chta")
    assert result.exit_code == 78, result.output
    label, detail = _lines(result)["model"]
    assert label == "FAIL"
    assert "sim-chta is not among the 2 models the server lists (did you mean sim-chat" in detail
    # A model the server refuses does not hide the limits, which come with any answer.
    assert _lines(result)["limits"][0] == "ok"


def test_probe_sends_exactly_one_chat_request_of_one_token() -> None:
    with BackgroundSimulator(SimulatorConfig(rpm=600, tpm=100_000)) as limited:
        result = _doctor("--base-url", limited.base_url, "-m", "any-model", "--probe")
        stats = limited.stats()
    assert result.exit_code == 0, result.output
    assert stats.requests_by_path == {"/v1/models": 1, "/v1/chat/completions": 1}
    detail = _lines(result)["model"][1]
    assert detail.startswith("any-model answered a one-token request in ")
    assert detail.endswith("(not listed by GET /models)")
    assert _lines(result)["limits"][1].startswith("requests: limit 600, ")


# --- against small servers written here -------------------------------------------------


def test_the_probe_body_asks_for_one_token_and_its_limits_are_reported() -> None:
    with _server(_model_list("m")) as seen:
        result = _doctor("--base-url", seen.base_url, "-m", "m", "--probe")
    assert result.exit_code == 0, result.output
    assert seen.chat_bodies == [
        {"model": "m", "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1}
    ]
    assert _lines(result)["limits"][1] == (
        "requests: limit 500, 499 left; tokens: limit 200,000, 199,990 left, resets in 0s"
    )


def test_a_model_the_server_does_not_serve_exits_78_with_the_probe() -> None:
    refuse = _error(404, "The model `m` does not exist.", "model_not_found")
    with _server(_model_list("m"), refuse) as seen:
        result = _doctor("--base-url", seen.base_url, "-m", "m", "--probe")
    assert result.exit_code == 78, result.output
    assert _lines(result)["model"] == (
        "FAIL",
        "the server does not serve m: HTTP 404: The model `m` does not exist.",
    )


def test_a_key_the_server_quotes_back_is_redacted() -> None:
    async def quote_it(request: web.Request) -> web.StreamResponse:
        return await _error(403, f"key {request.headers['Authorization']} lacks access")(request)

    with _server(quote_it) as seen:
        result = _doctor("--base-url", seen.base_url, "--json", key=KEY)
    assert result.exit_code == 77, result.output
    assert seen.authorization == [f"Bearer {KEY}"]
    assert not key_fragments(KEY, result.output)
    assert "***" in result.output


def test_a_base_url_without_v1_is_named_as_the_likely_cause() -> None:
    with _server(_model_list("m")) as seen:
        result = _doctor("--base-url", seen.base_url.removesuffix("/v1"))
    assert result.exit_code == 78, result.output
    assert "check --base-url (it usually ends in /v1)" in _lines(result)["key"][1]


def test_an_exhausted_quota_exits_75_and_a_failing_server_69() -> None:
    quota = _error(429, "You exceeded your current quota.", "insufficient_quota")
    with _server(quota) as seen:
        out_of_quota = _doctor("--base-url", seen.base_url)
    with _server(_error(503, "overloaded")) as seen:
        failing = _doctor("--base-url", seen.base_url)
    assert out_of_quota.exit_code == 75, out_of_quota.output
    assert failing.exit_code == 69, failing.output
    assert _lines(failing)["key"] == ("FAIL", "HTTP 503: overloaded")


def test_a_redirect_is_not_followed() -> None:
    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("http://127.0.0.1:9/elsewhere")

    with _server(redirect) as seen:
        result = _doctor("--base-url", seen.base_url, key=KEY)
    assert result.exit_code == 78, result.output
    assert seen.models == 1
    assert "a redirect; sluice follows none" in _lines(result)["key"][1]


async def _hang(request: web.Request) -> web.StreamResponse:
    await asyncio.get_running_loop().create_future()  # never done: shutdown cancels it
    raise AssertionError("unreachable")


def test_a_server_that_never_answers_fails_after_the_timeout() -> None:
    with _server(_hang) as seen:
        result = _doctor("--base-url", seen.base_url, "--timeout", "0.5")
    assert result.exit_code == 69, result.output
    assert _lines(result)["key"] == ("FAIL", "GET /models: no answer within 0.5s")


def test_a_model_that_never_answers_the_probe_fails_after_the_timeout() -> None:
    with _server(_model_list("m"), _hang) as seen:
        result = _doctor("--base-url", seen.base_url, "-m", "m", "--probe", "--timeout", "0.5")
    assert result.exit_code == 69, result.output
    lines = _lines(result)
    assert lines["model"] == ("FAIL", "the one-token request: no answer within 0.5s")
    assert lines["limits"][0] == "ok"  # read from GET /models' answer


# --- nothing to talk to ----------------------------------------------------------------


def test_nothing_listening_exits_69_and_skips_what_depends_on_it() -> None:
    port = _port_nobody_listens_on()
    result = _doctor("--base-url", f"http://127.0.0.1:{port}/v1", "-m", "m")
    assert result.exit_code == 69, result.output
    lines = _lines(result)
    assert lines["connect"] == ("FAIL", f"cannot connect to 127.0.0.1:{port}: Connection refused")
    assert [lines[name] for name in CHECKS[3:]] == [("skip", "the connect check failed")] * 4


def test_https_to_a_plain_http_port_fails_the_tls_check(sim: BackgroundSimulator) -> None:
    url = sim.base_url.replace("http://", "https://")
    result = _doctor("--base-url", url)
    assert result.exit_code == 69, result.output
    label, detail = _lines(result)["tls"]
    assert label == "FAIL"
    assert "the port may speak plain http" in detail
    assert _lines(result)["key"] == ("skip", "the tls check failed")


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no system trusts (unless told to)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    certificate, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(certificate), "-subj", f"/CN={LOOPBACK}"),
            *("-addext", f"subjectAltName=IP:{LOOPBACK}"),
        ],
        check=True,
        capture_output=True,
        timeout=PROCESS_TIMEOUT,
    )
    return certificate, key


def _tls_context(certificate: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    return context


def test_an_untrusted_certificate_fails_the_tls_check(tmp_path: Path) -> None:
    tls = _tls_context(*_self_signed_certificate(tmp_path))
    with _server(_model_list("m"), tls=tls) as seen:
        result = _doctor("--base-url", seen.base_url)
    assert result.exit_code == 69, result.output
    label, detail = _lines(result)["tls"]
    assert (label, detail.replace("self signed", "self-signed")) == (
        "FAIL",
        "certificate not trusted: self-signed certificate",
    )
    assert seen.models == 0  # nothing was sent over a connection that proved nothing


def test_a_trusted_certificate_passes_the_tls_check_in_a_process(tmp_path: Path) -> None:
    certificate, key = _self_signed_certificate(tmp_path)
    with _server(_model_list("m"), tls=_tls_context(certificate, key)) as seen:
        # OpenSSL reads SSL_CERT_FILE: the process trusts this one certificate.
        done = _doctor_process(
            "--base-url", seen.base_url, "-m", "m", key="", SSL_CERT_FILE=str(certificate)
        )
    assert done.returncode == 0, done.stdout + done.stderr
    tls_line = next(line for line in done.stdout.splitlines() if " tls " in line)
    assert re.fullmatch(
        r"ok {4}tls {7}TLSv1\.[23], certificate verified, valid until \S+", tls_line
    )
    assert seen.models == 1


def test_no_key_for_a_remote_host_exits_78_and_is_shown_with_the_other_failures() -> None:
    # .invalid never resolves (RFC 6761), so this needs no network.
    result = _doctor("--base-url", "https://doctor-test.invalid/v1", "--timeout", "5")
    assert result.exit_code == 78, result.output  # a run refuses it before connecting
    lines = _lines(result)
    assert lines["resolve"][0] == "FAIL"
    assert lines["key"][0] == "FAIL"
    assert "no API key: set the environment variable OPENAI_API_KEY" in lines["key"][1]


def test_a_bad_base_url_exits_78() -> None:
    result = _doctor("--base-url", "ftp://example.com/v1")
    assert result.exit_code == 78, result.output
    assert _lines(result)["url"] == (
        "FAIL",
        "base URL 'ftp://example.com/v1' must look like https://host/v1",
    )
    assert set(_labels(result)[1:]) == {"skip"}


def test_plain_http_to_another_host_is_refused_unless_allowed() -> None:
    result = _doctor("--base-url", "http://doctor-test.invalid/v1")
    assert result.exit_code == 78, result.output
    assert "refusing plain http" in _lines(result)["url"][1]


def test_doctor_and_run_declare_the_connection_options_alike() -> None:
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]

    def connection(command: str) -> dict[str, tuple[object, ...]]:
        return {
            p.name: (p.opts, p.secondary_opts, p.envvar, p.default, p.help)
            for p in commands[command].params
            if p.name in ("base_url", "api_key_env", "allow_insecure_http")
        }

    assert len(connection("doctor")) == 3
    assert connection("doctor") == connection("run")


def test_a_bad_flag_exits_2() -> None:
    result = _doctor("--timeout", "0")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_probe_without_a_model_is_a_usage_error() -> None:
    result = _doctor("--probe")
    assert result.exit_code == 2
    assert (
        result.stderr == "sluice: error: --probe asks a model to answer: name it with -m/--model\n"
    )
    assert result.stdout == ""


# --- JSON, and as a process --------------------------------------------------------------


def test_json_gives_every_check_with_its_status_and_exit_code() -> None:
    with BackgroundSimulator(SimulatorConfig(rpm=600)) as limited:
        result = _doctor("--base-url", limited.base_url, "-m", "nope", "--json")
    assert result.exit_code == 78, result.output
    report = orjson.loads(result.stdout)
    assert set(report) == {"ok", "exit_code", "base_url", "model", "probe", "checks", "limits"}
    assert (report["ok"], report["exit_code"], report["model"]) == (False, 78, "nope")
    assert report["base_url"] == limited.base_url
    assert [c["name"] for c in report["checks"]] == CHECKS
    assert [c["status"] for c in report["checks"]] == [
        *["passed"] * 3,
        "skipped",
        "passed",
        "failed",
        "passed",
    ]
    assert [c["exit_code"] for c in report["checks"]] == [None] * 5 + [78, None]
    assert all(isinstance(c["detail"], str) and c["detail"] for c in report["checks"])
    assert report["limits"]["requests"]["limit"] == 600


def _doctor_process(*args: str, key: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": key, "NO_COLOR": "1", **env_vars}
    env.pop("OPENAI_BASE_URL", None)
    return subprocess.run(
        [*DOCTOR_PROCESS, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )


KEYED = ("--require-key-env", "SIM_KEY")


def test_doctor_as_a_process_against_sluice_sim() -> None:
    simulator = subprocess.Popen(
        [sys.executable, "-m", "cli", "sim", "--port", "0", "--rpm", "600", *KEYED],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SIM_KEY": KEY, "NO_COLOR": "1"},
    )
    assert simulator.stderr is not None
    try:
        first_line = simulator.stderr.readline()
        announced = re.search(r"(http://127\.0\.0\.1:\d+/v1)", first_line)
        assert announced, first_line + simulator.stderr.read()
        url = announced.group(1)
        good = _doctor_process("--base-url", url, "-m", "sim-chat", key=KEY)
        wrong = _doctor_process("--base-url", url, key="tok_wrong_key_1234567890")
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok    limits    requests: limit 600, " in good.stdout
    assert wrong.returncode == 77, wrong.stdout + wrong.stderr
    assert not key_fragments(KEY, good.stdout + good.stderr + wrong.stdout + wrong.stderr)
