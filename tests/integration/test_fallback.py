"""--fallback-model against a real server on 127.0.0.1: the fallback answers only while
the main model's breaker is open, or for prompts the main model finds too long."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
from aiohttp import web

from tests.conftest import read_jsonl, run_cli, write_jsonl
from tests.stub_server import StubServer, chat_answer

CONTEXT_LENGTH = {
    "error": {
        "message": "This model's maximum context length is 10 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}


class TwoModels:
    """`main` is down (503) or refuses long prompts; `backup` always answers."""

    def __init__(self, main_down: bool) -> None:
        self.main_down = main_down
        self.asked: Counter[str] = Counter()

    async def __call__(self, request: web.Request, message: str) -> web.StreamResponse:
        model = orjson.loads(await request.read())["model"]
        self.asked[model] += 1
        if model == "main" and self.main_down:
            return web.json_response({"error": {"message": "overloaded"}}, status=503)
        if model == "main" and message.startswith("long"):
            return web.json_response(CONTEXT_LENGTH, status=400)
        return chat_answer(f"{model} says {message}")


def _run(server: StubServer, source: str, out: Path, *extra: str):
    args = ["run", source, "-o", str(out), "-m", "main", "-p", "{{ text }}", "--no-cache"]
    return run_cli([*args, "--base-url", server.base_url, "--retry-backoff", "0", *extra])


def test_while_the_main_model_is_down_the_fallback_answers(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": n, "text": f"t{n}"} for n in range(60)])
    out = tmp_path / "out.jsonl"
    models = TwoModels(main_down=True)
    with StubServer(models) as server:
        result = _run(server, source, out, "--fallback-model", "backup", "--max-retries", "40")
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    assert [row["id"] for row in rows] == list(range(60))
    assert {row["model"] for row in rows} == {"backup"}
    assert all(row["output"] == f"backup says t{row['id']}" for row in rows)
    # The breaker opened on the main model's failures; after that it got probes only.
    assert 20 <= models.asked["main"] < 60 + 20
    assert models.asked["backup"] == 60


def test_a_prompt_too_long_for_the_main_model_goes_to_the_fallback(tmp_path: Path) -> None:
    rows = [{"id": 1, "text": "short"}, {"id": 2, "text": "long text"}, {"id": 3, "text": "ok"}]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    models = TwoModels(main_down=False)
    with StubServer(models) as server:
        result = _run(server, source, out, "--fallback-model", "backup")
    assert result.exit_code == 0, result.output
    answered = {row["id"]: row["model"] for row in read_jsonl(out)}
    assert answered == {1: "main", 2: "backup", 3: "main"}
    assert models.asked == {"main": 3, "backup": 1}


def test_a_healthy_main_model_never_uses_the_fallback(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": n, "text": f"t{n}"} for n in range(30)])
    out = tmp_path / "out.jsonl"
    models = TwoModels(main_down=False)
    with StubServer(models) as server:
        result = _run(server, source, out, "--fallback-model", "backup")
    assert result.exit_code == 0, result.output
    assert models.asked == {"main": 30}
    assert {row["model"] for row in read_jsonl(out)} == {"main"}


def test_without_a_fallback_a_too_long_prompt_is_quarantined_and_rows_name_no_model(
    tmp_path: Path,
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "long"}, {"id": 2, "text": "a"}])
    out = tmp_path / "out.jsonl"
    with StubServer(TwoModels(main_down=False)) as server:
        result = _run(server, source, out)
    assert result.exit_code == 1
    (row,) = read_jsonl(out)
    assert "model" not in row
    (bad,) = read_jsonl(tmp_path / "out.quarantine.jsonl")
    assert bad["error"]["kind"] == "permanent"
