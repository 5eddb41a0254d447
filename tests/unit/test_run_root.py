"""The composition root, whole, through the in-process Transport: real files, state and cache,
every stage wired as `sluice run` wires it (traces included), and no HTTP."""

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
from pipeline.core.events import BatchesCommitted, Stalled
from pipeline.dispatch.in_process import InProcessTransport
from pipeline.dispatch.transport import Response
from pipeline.observe.counters import RunStats
from pipeline.observe.progress import SilentProgress
from pipeline.run.result import RunResult
from pipeline.run.root import run

TEXTS = ["apple", "pear", "apple", "refuse me", "plum", "fig"]


async def _answer(path: str, payload: bytes) -> Response:
    """Echo the prompt in capitals; refuse the one that asks for it (HTTP 400)."""
    text = orjson.loads(payload)["messages"][-1]["content"]
    if text == "refuse me":
        body = {"error": {"message": "no", "code": "invalid_request"}}
        return Response(400, {}, orjson.dumps(body), 0.0)
    answer = {
        "choices": [{"message": {"content": text.upper()}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    return Response(200, {}, orjson.dumps(answer), 0.0)


class _Recorder(SilentProgress):
    def __init__(self) -> None:
        self.items_seen: list[int] = []

    def update(self, stats: RunStats, committed: BatchesCommitted) -> None:
        self.items_seen.append(stats.items)

    def stalled(self, stall: Stalled) -> None:
        raise AssertionError(f"no stall expected: {stall.describe()}")


def _config(tmp_path: Path) -> RunConfig:
    source = tmp_path / "in.jsonl"
    lines = [orjson.dumps({"id": n, "text": text}) + b"\n" for n, text in enumerate(TEXTS)]
    source.write_bytes(b"".join(lines))
    return RunConfig(
        read=ReadConfig(inputs=(str(source),), batch_size=4),
        request=RequestConfig(endpoint=Endpoint.CHAT, model="m", prompt="{{ text }}"),
        output=OutputConfig(
            results=str(tmp_path / "out.jsonl"),
            quarantine=str(tmp_path / "bad.jsonl"),
            summary=str(tmp_path / "summary.json"),
        ),
        cache=CacheConfig(directory=str(tmp_path / "cache"), size_limit=None),
        state=StateConfig(directory=str(tmp_path / "state")),
        max_error_rate=0.5,
    )


def _run(config: RunConfig) -> tuple[RunResult, int, _Recorder]:
    transport = InProcessTransport(_answer)

    @contextlib.asynccontextmanager
    async def in_process(_: RunConfig) -> AsyncIterator[InProcessTransport]:
        yield transport

    progress = _Recorder()
    result = asyncio.run(run(config, progress, in_process))
    return result, transport.sent, progress


def _rows(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_a_run_wired_by_the_root_writes_every_item_once_in_input_order(tmp_path: Path) -> None:
    config = _config(tmp_path)
    result, sent, progress = _run(config)

    assert result.exit_code == 0 and result.error is None
    results = _rows(tmp_path / "out.jsonl")
    assert [(r["id"], r["output"]) for r in results] == [
        (0, "APPLE"), (1, "PEAR"), (2, "APPLE"), (4, "PLUM"), (5, "FIG")
    ]  # fmt: skip
    [refused] = _rows(tmp_path / "bad.jsonl")
    assert refused["id"] == 3 and refused["error"]["kind"] == "permanent"
    # The second "apple" is a twin of the first, in the same batch: it waits for its answer.
    assert sent == 5
    summary = orjson.loads((tmp_path / "summary.json").read_bytes())
    assert summary == result.summary
    assert (summary["items"], summary["succeeded"], summary["quarantined"]) == (6, 5, 1)
    assert summary["requests"] == 5
    assert summary["tokens"] == {"prompt": 12, "completion": 8, "cached_prompt": 0}
    assert summary["cache"]["stored"] == 4
    assert progress.items_seen[-1] == 6


def test_a_fresh_re_run_pays_only_for_what_the_cache_cannot_answer(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _run(config)
    again = replace(config, state=config.state._replace(fresh=True))
    result, sent, _ = _run(again)

    assert result.exit_code == 0
    assert sent == 1  # the refusal was not an answer, so it was not stored
    assert result.summary["cached"] == 5 and result.summary["cache"]["hits"] == 5
    assert (tmp_path / "out.jsonl").read_bytes().count(b"\n") == 5


def test_a_run_refused_up_front_touches_no_file(tmp_path: Path) -> None:
    config = _config(tmp_path)
    missing = replace(config, read=config.read._replace(inputs=(str(tmp_path / "nope.jsonl"),)))
    result, sent, _ = _run(missing)

    assert result.exit_code == 66 and sent == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


# Traces: the spans a run writes with --trace-file.

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def _traced(config: RunConfig) -> RunConfig:
    trace = str(Path(config.output.results).with_name("trace.jsonl"))
    return replace(
        config,
        output=config.output._replace(trace=trace),
        observe=ObserveConfig(job="fruit", trace_id=TRACE_ID),
    )


def _spans(tmp_path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (tmp_path / "trace.jsonl").read_bytes().splitlines()]


def test_a_run_leaves_one_tree_of_spans_under_its_trace_id(tmp_path: Path) -> None:
    result, _, _ = _run(_traced(_config(tmp_path)))

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
    config = _traced(_config(tmp_path))
    _run(config)
    _run(replace(config, state=config.state._replace(fresh=True)))

    spans = _spans(tmp_path)
    cached = [s for s in spans if s["attributes"].get("sluice.item.cached") is True]
    assert len(cached) == 5
    tries = [s for s in spans if s["kind"] == "CLIENT"]
    assert [t["attributes"]["sluice.item.id"] for t in tries] == [3]  # only the refusal
