"""The composition root, whole, through the in-process Transport: real files, state and cache,
every stage wired as `sluice run` wires it, and no HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import orjson

from pipeline.core.config import (
    CacheConfig,
    Endpoint,
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
    again = replace(config, state=replace(config.state, fresh=True))
    result, sent, _ = _run(again)

    assert result.exit_code == 0
    assert sent == 1  # the refusal was not an answer, so it was not stored
    assert result.summary["cached"] == 5 and result.summary["cache"]["hits"] == 5
    assert (tmp_path / "out.jsonl").read_bytes().count(b"\n") == 5


def test_a_run_refused_up_front_touches_no_file(tmp_path: Path) -> None:
    config = _config(tmp_path)
    missing = replace(config, read=replace(config.read, inputs=(str(tmp_path / "nope.jsonl"),)))
    result, sent, _ = _run(missing)

    assert result.exit_code == 66 and sent == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]
