"""The network edge in real processes: echoed keys, endless answers, dead and failing endpoints."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import read_jsonl, run_cli, write_jsonl
from tests.leaks import key_fragments
from tests.stub_server import StubServer, chat_answer

# Not shaped like sk-...: only the key itself can tell a redactor what to look for.
KEY = "tok_9fQ2xLmP4vRtZ8wYk3NcB7hJ6sDaE1gU5oIq"
CUT_AT = 500  # where sluice cuts a server's message
# A guard against a hang, not a measurement: a dead endpoint used to take 300 s to report.
PROCESS_TIMEOUT = 90


def _sluice(*args: str, key: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": key, "NO_COLOR": "1"}
    env.pop("OPENAI_BASE_URL", None)
    command = [sys.executable, "-m", "cli", "run", *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=PROCESS_TIMEOUT, check=False
    )


def _run(server_url: str, texts: list[str], out: Path, *extra: str, key: str = KEY):
    source = write_jsonl(out.with_name("in.jsonl"), [{"id": t, "text": t} for t in texts])
    args = [source, "-o", str(out), "-m", "m", "-p", "{{ text }}", "--base-url", server_url]
    return _sluice(*args, *extra, key=key)


def _quoting_the_key(status: int, form: str, start: int, header: str) -> web.Response:
    """An error whose message holds the key from character `start` on."""
    lead = f"{form} {start}: refused. "
    message = lead + "x" * (start - len(lead) - len("Bearer ")) + header + " is not valid"
    if form == "cut":  # the server cut the key itself
        message = message[: start + 12]
    if form == "text":
        return web.Response(status=status, text=message)
    return web.json_response({"error": {"message": message, "type": "invalid"}}, status=status)


def test_a_key_the_server_quotes_around_the_cut_reaches_no_file_and_no_terminal(
    tmp_path: Path,
) -> None:
    async def refuse(request: web.Request, message: str) -> web.Response:
        form, start = message.split()
        return _quoting_the_key(400, form, int(start), request.headers["Authorization"])

    starts = range(CUT_AT - len(KEY) - 4, CUT_AT + 4)
    texts = [f"{form} {start}" for form in ("json", "text", "cut") for start in starts]
    with StubServer(refuse) as server:
        done = _run(server.base_url, texts, tmp_path / "out.jsonl")
    assert done.returncode == 1, done.stderr
    quarantine = (tmp_path / "out.quarantine.jsonl").read_text()
    assert [row["id"] for row in read_jsonl(tmp_path / "out.quarantine.jsonl")] == texts
    assert not key_fragments(KEY, quarantine)
    assert not key_fragments(KEY, done.stderr + done.stdout)


def test_a_refused_key_quoted_past_the_cut_is_not_printed(tmp_path: Path) -> None:
    async def refuse_key(request: web.Request, message: str) -> web.Response:
        return _quoting_the_key(401, "json", CUT_AT - 10, request.headers["Authorization"])

    with StubServer(refuse_key) as server:
        done = _run(server.base_url, ["a"], tmp_path / "out.jsonl")
    assert done.returncode == 77, done.stderr
    assert "the server refused the API key (HTTP 401)" in done.stderr
    assert not key_fragments(KEY, done.stderr + done.stdout)


SMALL_CAP = ("--max-response-size", "64KB", "--retry-backoff", "0")


async def _endless(request: web.Request, message: str) -> web.StreamResponse:
    """A 200 that never ends; with `declared`, it also says beforehand how huge it is."""
    if message not in ("endless", "declared"):
        return chat_answer(f"answer to {message}")
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    if message == "declared":
        response.content_length = 10**12
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):
        for _ in range(32_768):  # 2 GiB: endless, as far as a 64 KB cap can tell
            await response.write(b" " * 65_536)
    return response


def test_an_endless_answer_is_cut_at_the_cap_retried_quarantined_and_never_cached(
    tmp_path: Path,
) -> None:
    texts = ["a", "endless", "b", "declared", "c"]
    with StubServer(_endless) as server:
        first = _run(server.base_url, texts, tmp_path / "first.jsonl", *SMALL_CAP)
        asked_first = list(server.asked)
        again = _run(server.base_url, texts, tmp_path / "again.jsonl", *SMALL_CAP)
        asked_again = server.asked[len(asked_first) :]
    assert first.returncode == 1, first.stderr
    assert [r["output"] for r in read_jsonl(tmp_path / "first.jsonl")] == [
        "answer to a",
        "answer to b",
        "answer to c",
    ]
    quarantined = read_jsonl(tmp_path / "first.quarantine.jsonl")
    assert [row["id"] for row in quarantined] == ["endless", "declared"]
    for row in quarantined:
        assert row["error"]["kind"] == "invalid_output" and row["attempts"] == 3
        assert "--max-response-size (64,000 bytes)" in row["error"]["message"]
    assert sorted(asked_first) == sorted(["a", "b", "c"] + ["endless", "declared"] * 3)
    # The good answers came from the cache; the oversize ones were never stored.
    assert again.returncode == 1, again.stderr
    assert sorted(asked_again) == sorted(["endless", "declared"] * 3)


async def _odd_finish_reasons(request: web.Request, message: str) -> web.StreamResponse:
    """Answers whose finish_reason is no string: a list, an object, a number."""
    reasons: dict[str, object] = {"list": [], "object": {"why": "stop"}, "number": 7}
    choice = {"message": {"content": f"answer to {message}"}, "finish_reason": reasons[message]}
    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    return web.json_response({"choices": [choice], "usage": usage})


def test_a_finish_reason_that_is_no_string_is_an_answer_like_any_other(tmp_path: Path) -> None:
    texts = ["list", "object", "number"]
    with StubServer(_odd_finish_reasons) as server:
        done = _run(server.base_url, texts, tmp_path / "out.jsonl", "--no-state")
        again = _run(server.base_url, texts, tmp_path / "again.jsonl", "--no-state")
        asked = list(server.asked)
    assert done.returncode == 0, done.stderr
    assert [r["output"] for r in read_jsonl(tmp_path / "out.jsonl")] == [
        f"answer to {t}" for t in texts
    ]
    # Not cut off, so served from the cache the second time.
    assert again.returncode == 0, again.stderr
    assert sorted(asked) == sorted(texts)
    assert [r["cached"] for r in read_jsonl(tmp_path / "again.jsonl")] == [True] * 3


def _port_nobody_listens_on() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_nothing_listening_at_the_base_url_stops_the_run_at_once_naming_it(
    tmp_path: Path,
) -> None:
    port = _port_nobody_listens_on()
    url = f"http://127.0.0.1:{port}/v1"
    done = _run(url, ["a", "b"], tmp_path / "out.jsonl", key="")
    assert done.returncode == 69, done.stderr
    expected = f"nothing answers at {url}: cannot connect to 127.0.0.1:{port}: Connection refused"
    assert expected in done.stderr
    assert not (tmp_path / "out.quarantine.jsonl").exists()


@pytest.mark.parametrize("port", ["99999", "abc", "0"])
def test_a_base_url_with_an_impossible_port_is_a_configuration_error(
    tmp_path: Path, port: str
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}])
    url = f"http://127.0.0.1:{port}/v1"
    result = run_cli(["run", source, "-o", str(tmp_path / "out.jsonl"), "--base-url", url])
    assert result.exit_code == 78, result.output
    assert "no valid port" in result.output


def test_a_failing_endpoint_is_reported_as_stalled_with_its_error_before_exit_69(
    tmp_path: Path,
) -> None:
    async def overloaded(request: web.Request, message: str) -> web.Response:
        error = {"message": f"overloaded ({request.headers['Authorization']})", "type": "server"}
        return web.json_response({"error": error}, status=503)

    texts = [f"t{n}" for n in range(60)]
    with StubServer(overloaded) as server:
        done = _run(server.base_url, texts, tmp_path / "out.jsonl", "--breaker-timeout", "3")
    assert done.returncode == 69, done.stderr
    lines = done.stderr.splitlines()
    stalled = [n for n, line in enumerate(lines) if line.startswith("sluice: stalled for")]
    failed = [n for n, line in enumerate(lines) if line.startswith("sluice: error:")]
    assert stalled and failed and stalled[0] < failed[0], done.stderr
    assert "waiting for the endpoint to recover" in lines[stalled[0]]
    assert "last error: HTTP 503: overloaded (Bearer ***)" in lines[stalled[0]]
    assert lines[failed[0]].startswith(f"sluice: error: {server.base_url}: the endpoint kept")
    assert "last error: HTTP 503: overloaded" in lines[failed[0]]
    assert not key_fragments(KEY, done.stderr)
