"""`--trace-file` through the composition root: the real pipeline (reader, cache, engine,
dispatcher, writer, state), the in-process transport, and the spans it leaves."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from pipeline.core.config import (
    CacheConfig,
    Endpoint,
    ObserveConfig,
    OutputConfig,
    ReadConfig,
    RequestConfig,
    RunConfig,
    StateConfig,
)
from pipeline.core.events import Stalled
from pipeline.dispatch.in_process import InProcessTransport
from pipeline.dispatch.transport import Response
from pipeline.observe.progress import SilentProgress
from pipeline.run.result import RunResult
from pipeline.run.root import run

TEXTS = ["apple", "pear", "apple", "refuse me", "plum", "fig"]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def _answer(path: str, payload: bytes) -> Response:
    text = orjson.loads(payload)["messages"][-1]["content"]
    if text == "refuse me":
        body = {"error": {"message": "no", "code": "invalid_request"}}
        return Response(400, {}, orjson.dumps(body), 0.0)
    answer = {
        "choices": [{"message": {"content": text.upper()}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    return Response(200, {}, orjson.dumps(answer), 0.0)


class _Quiet(SilentProgress):
    def stalled(self, stall: Stalled) -> None:
        raise AssertionError(f"no stall expected: {stall.describe()}")


def _config(tmp_path: Path, content: bool = False) -> RunConfig:
    source = tmp_path / "in.jsonl"
    lines = [orjson.dumps({"id": n, "text": text}) + b"\n" for n, text in enumerate(TEXTS)]
    source.write_bytes(b"".join(lines))
    return RunConfig(
        read=ReadConfig(inputs=(str(source),), batch_size=4),
        request=RequestConfig(endpoint=Endpoint.CHAT, model="m", prompt="{{ text }}"),
        output=OutputConfig(
            results=str(tmp_path / "out.jsonl"),
            quarantine=str(tmp_path / "bad.jsonl"),
            trace=str(tmp_path / "trace.jsonl"),
        ),
        cache=CacheConfig(directory=str(tmp_path / "cache"), size_limit=None),
        state=StateConfig(directory=str(tmp_path / "state")),
        observe=ObserveConfig(job="fruit", trace_content=content, trace_id=TRACE_ID),
        max_error_rate=0.5,
    )


def _run(config: RunConfig) -> RunResult:
    @contextlib.asynccontextmanager
    async def in_process(_: RunConfig) -> AsyncIterator[InProcessTransport]:
        yield InProcessTransport(_answer)

    return asyncio.run(run(config, _Quiet(), in_process))


def _spans(tmp_path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (tmp_path / "trace.jsonl").read_bytes().splitlines()]


def test_a_run_leaves_one_tree_of_spans_under_its_trace_id(tmp_path: Path) -> None:
    result = _run(_config(tmp_path))

    assert result.exit_code == 0 and result.warnings == []
    spans = _spans(tmp_path)
    assert {s["trace_id"] for s in spans} == {TRACE_ID}
    by_id = {s["span_id"]: s for s in spans}
    [root] = [s for s in spans if s["parent_span_id"] is None]
    assert root["name"] == "sluice.run" and root["attributes"]["sluice.job"] == "fruit"
    assert all(s["parent_span_id"] in by_id for s in spans if s is not root)
    items = [s for s in spans if s["name"] == "sluice.item"]
    assert sorted(s["attributes"]["sluice.item.id"] for s in items) == list(range(6))
    # The twin "apple" waited for the first one's answer: no request of its own.
    tries = Counter(s["attributes"]["sluice.item.id"] for s in spans if s["kind"] == "CLIENT")
    assert tries == {0: 1, 1: 1, 3: 1, 4: 1, 5: 1}
    assert [s["status"]["code"] for s in spans if s["name"] == "sluice.batch"] == ["OK", "OK"]
    assert b"APPLE" not in (tmp_path / "trace.jsonl").read_bytes()


def test_a_re_run_answered_from_the_cache_has_item_spans_and_no_tries(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _run(config)
    _run(replace(config, state=replace(config.state, fresh=True)))

    spans = _spans(tmp_path)
    cached = [s for s in spans if s["attributes"].get("sluice.item.cached") is True]
    assert len(cached) == 5
    tries = [s for s in spans if s["kind"] == "CLIENT"]
    assert [t["attributes"]["sluice.item.id"] for t in tries] == [3]  # only the refusal
