"""A workflow step's `fallback` against a real server on 127.0.0.1: while the step's model
is down, its stand-in (a function, or another model) answers, and rows say which did."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
from aiohttp import web

from tests.conftest import read_jsonl, run_cli, write_jsonl
from tests.stub_server import StubServer, chat_answer

ITEMS = [{"id": n, "text": f"URGENT {n}" if n % 2 else f"calm {n}"} for n in range(30)]


class MainDown:
    """`main` answers 503 to everything; any other model answers."""

    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()

    async def __call__(self, request: web.Request, message: str) -> web.StreamResponse:
        model = orjson.loads(await request.read())["model"]
        self.asked[model] += 1
        if model == "main":
            return web.json_response({"error": {"message": "overloaded"}}, status=503)
        return chat_answer(f"{model}: {message}")


def _run(server: StubServer, tmp_path: Path, workflow: str) -> tuple[object, list[dict]]:
    source = write_jsonl(tmp_path / "in.jsonl", ITEMS)
    (tmp_path / "wf.toml").write_text(workflow)
    out = tmp_path / "out.jsonl"
    args = ["run", source, "-o", str(out), "--workflow", str(tmp_path / "wf.toml"), "-m", "main"]
    args += ["--base-url", server.base_url, "--retry-backoff", "0", "--max-retries", "40"]
    result = run_cli([*args, "--no-cache"])
    return result, read_jsonl(out) if out.exists() else []


def test_a_function_answers_while_the_steps_model_is_down(tmp_path: Path) -> None:
    # A module beside the workflow file, found without installing it.
    (tmp_path / "wf_urgency_rules.py").write_text(
        "def urgency(fields):\n    return 'high' if 'URGENT' in fields['text'] else 'low'\n"
    )
    workflow = """
[steps.urgency]
prompt = "How urgent is: {{ text }}"
fallback = "urgency_rules"

[steps.urgency_rules]
call = "wf_urgency_rules:urgency"
"""
    models = MainDown()
    with StubServer(models) as server:
        result, rows = _run(server, tmp_path, workflow)
    assert result.exit_code == 0, result.output
    assert [row["id"] for row in rows] == [item["id"] for item in ITEMS]
    assert set(rows[0]["output"]) == {"urgency"}  # a stand-in is not a step of its own
    answered_by = Counter(row["steps"]["urgency"]["answered_by"] for row in rows)
    assert answered_by["urgency_rules"] > 0
    for row in rows:
        report = row["steps"]["urgency"]
        if report["answered_by"] == "urgency_rules":
            assert row["output"]["urgency"] == ("high" if "URGENT" in row["text"] else "low")
            assert report["model"] is None
    assert models.asked["main"] < len(ITEMS) + 40  # the open breaker let only probes through


def test_another_model_with_its_own_prompt_answers_while_the_steps_model_is_down(
    tmp_path: Path,
) -> None:
    workflow = """
[steps.label]
prompt = "Label: {{ text }}"
fallback = "label_small"

[steps.label_small]
model = "backup"
prompt = "Short label: {{ text }}"
"""
    models = MainDown()
    with StubServer(models) as server:
        result, rows = _run(server, tmp_path, workflow)
    assert result.exit_code == 0, result.output
    backed = [row for row in rows if row["steps"]["label"]["answered_by"] == "label_small"]
    assert backed
    for row in backed:
        assert row["output"]["label"] == f"backup: Short label: {row['text']}"
        assert row["steps"]["label"]["model"] == "backup"
    assert models.asked["backup"] == len(backed)


def test_a_stand_in_asking_the_same_model_is_refused(tmp_path: Path) -> None:
    workflow = """
[steps.label]
prompt = "Label: {{ text }}"
fallback = "again"

[steps.again]
prompt = "Label again: {{ text }}"
"""
    with StubServer(MainDown()) as server:
        result, _ = _run(server, tmp_path, workflow)
    assert result.exit_code == 78
    assert "must ask another model" in result.output
