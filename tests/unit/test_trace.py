"""Tracing: the recorder turns a run's events into a tree of spans, written as JSON lines.

Driven with hand-made events (tests/fakes/run_events.py), with generated runs
(hypothesis), and by the real engine and dispatcher over the in-process transport.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.config import (
    ConnectionConfig,
    Endpoint,
    OutputConfig,
    ReadConfig,
    RequestConfig,
    RetryConfig,
    RunConfig,
    Secret,
    TrafficConfig,
)
from pipeline.core.errors import ErrorKind, OutputError
from pipeline.core.events import (
    AttemptEnded,
    BatchesCommitted,
    BatchStarted,
    Event,
    ItemSettled,
    RequestSent,
)
from pipeline.core.models import Batch, Failure, Item, Outcome, Success, Usage
from pipeline.core.redact import Redactor
from pipeline.dispatch.dispatcher import Dispatcher
from pipeline.dispatch.in_process import InProcessTransport
from pipeline.dispatch.transport import Response
from pipeline.engines.asyncio_pool import AsyncioEngine
from pipeline.observe.broadcast import Broadcast
from pipeline.observe.counters import RunStats
from pipeline.observe.span_attributes import (
    plain_attributes,
    prompt_attributes,
    safe_url,
    server_attributes,
)
from pipeline.observe.spans import JsonlSpanFile, SpanIds, SpanRecord
from pipeline.observe.trace import SpanRecorder
from pipeline.observe.trace_ids import new_trace_id
from pipeline.prepare.preparer import PreparedBatch
from pipeline.prepare.request_builder import Request
from pipeline.traffic.control import TrafficControl
from tests.fakes.clock import FakeClock
from tests.fakes.run_events import (
    ANSWER_MARK,
    ATTEMPTS,
    MODEL,
    PROMPT_MARK,
    SETTLED_IDS,
    START,
    STOP,
    body,
    small_run,
)

UNIX_START = 1_700_000_000.0
KEY = "sk-test-0123456789abcdefghijklmnop"

Span = dict[str, Any]


class Collected:
    """An exporter that keeps what it is given: spans, and whether it was closed."""

    def __init__(self) -> None:
        self.spans: list[SpanRecord] = []
        self.closed = False

    def export(self, span: SpanRecord) -> None:
        self.spans.append(span)

    def close(self) -> str | None:
        self.closed = True
        return None


class Broken:
    """An exporter whose every export fails."""

    def export(self, span: SpanRecord) -> None:
        raise OSError("disk on fire")

    def close(self) -> str | None:
        return None


def _recorder(exporters: Sequence[Any], content: bool = False, **kwargs: Any) -> SpanRecorder:
    attributes = {"sluice.job": "reviews", "gen_ai.request.model": MODEL}
    return SpanRecorder(new_trace_id(), START, UNIX_START, exporters, attributes, content, **kwargs)


def _play(recorder: SpanRecorder, events: Sequence[Event], exit_code: int = 130) -> list[str]:
    for event in events:
        recorder.emit(event)
    return recorder.finish(STOP, exit_code)


def _trace_file(
    tmp_path: Path, content: bool = False, **kwargs: Any
) -> tuple[list[Span], bytes, list[str]]:
    path = tmp_path / "trace.jsonl"
    warnings = _play(_recorder([JsonlSpanFile(str(path))], content, **kwargs), small_run())
    raw = path.read_bytes()
    return [orjson.loads(line) for line in raw.splitlines()], raw, warnings


def _by_name(spans: list[Span], name: str) -> list[Span]:
    return [s for s in spans if s["name"] == name]


def _attempts(spans: list[Span]) -> list[Span]:
    return [s for s in spans if s["kind"] == "CLIENT"]


def _check_tree(spans: list[Span]) -> Span:
    """Every parent is a span of the same trace; one root, the run; every span reaches it."""
    by_id = {s["span_id"]: s for s in spans}
    assert len(by_id) == len(spans), "span ids are unique"
    assert len({s["trace_id"] for s in spans}) == 1
    [root] = [s for s in spans if s["parent_span_id"] is None]
    assert root["name"] == "sluice.run"
    for span in spans:
        seen = set()
        while span["parent_span_id"] is not None:
            assert span["span_id"] not in seen
            seen.add(span["span_id"])
            span = by_id[span["parent_span_id"]]
        assert span is root
    return root


# The file.


def test_every_line_is_a_span_and_the_parents_form_one_tree(tmp_path: Path) -> None:
    spans, _, warnings = _trace_file(tmp_path)

    assert warnings == []
    for span in spans:
        assert set(span) == {
            "trace_id", "span_id", "parent_span_id", "name", "kind",
            "start_time_unix_nano", "end_time_unix_nano", "status", "attributes",
        }  # fmt: skip
        assert len(span["trace_id"]) == 32 and len(span["span_id"]) == 16
        assert span["status"]["code"] in ("OK", "ERROR")
    root = _check_tree(spans)
    assert spans[-1] is root  # ended last
    parents = {s["span_id"]: s["name"] for s in spans}
    for span in spans:
        expected = {
            "sluice.run": None,
            "sluice.batch": "sluice.run",
            "sluice.item": "sluice.batch",
            f"chat {MODEL}": "sluice.item",
        }[span["name"]]
        assert parents.get(span["parent_span_id"]) == expected


def test_every_item_has_one_span_with_its_outcome(tmp_path: Path) -> None:
    spans, _, _ = _trace_file(tmp_path)
    items = {s["attributes"]["sluice.item.id"]: s for s in _by_name(spans, "sluice.item")}

    assert sorted(items) == sorted([*SETTLED_IDS, "g"])
    assert len(_by_name(spans, "sluice.item")) == len(items)
    for item_id in SETTLED_IDS:
        assert items[item_id]["attributes"]["sluice.item.attempts"] == ATTEMPTS[item_id]
    outcomes = {i: s["attributes"].get("sluice.outcome") for i, s in items.items()}
    assert outcomes == {
        "a": "ok", "b": "ok", "c": "ok", "d": "invalid_input", "e": "permanent",
        "in.jsonl:6": "ok", "g": None,
    }  # fmt: skip
    assert items["c"]["attributes"]["sluice.item.cached"] is True
    assert items["a"]["attributes"]["sluice.item.cached"] is False
    assert items["a"]["attributes"]["sluice.item.input_tokens"] == 7
    assert items["e"]["status"] == {"code": "ERROR", "message": "HTTP 400: bad request"}
    assert items["e"]["attributes"]["error.type"] == "permanent"
    assert items["e"]["attributes"]["http.response.status_code"] == 400
    assert items["a"]["status"] == {"code": "OK", "message": None}


def test_a_retried_item_has_one_attempt_span_per_try_and_a_cached_one_none(
    tmp_path: Path,
) -> None:
    spans, _, _ = _trace_file(tmp_path)
    per_item = Counter(s["attributes"]["sluice.item.id"] for s in _attempts(spans))

    assert per_item == {k: v for k, v in ATTEMPTS.items() if v}
    first, second = sorted(
        (s for s in _attempts(spans) if s["attributes"]["sluice.item.id"] == "b"),
        key=lambda s: s["attributes"]["sluice.attempt"],
    )
    assert first["status"] == {"code": "ERROR", "message": "transient (HTTP 503)"}
    assert first["attributes"]["error.type"] == "transient"
    assert first["attributes"]["http.response.status_code"] == 503
    assert "http.request.resend_count" not in first["attributes"]
    assert second["status"]["code"] == "OK"
    assert second["attributes"]["http.request.resend_count"] == 1
    assert second["attributes"]["gen_ai.usage.input_tokens"] == 7
    assert second["attributes"]["gen_ai.usage.output_tokens"] == 3
    assert second["attributes"]["gen_ai.operation.name"] == "chat"
    assert second["attributes"]["gen_ai.request.model"] == MODEL
    assert second["attributes"]["gen_ai.request.max_tokens"] == 5
    assert second["attributes"]["sluice.limiter_wait_s"] == 0.5
    assert first["attributes"]["sluice.queue_wait_s"] == 0.3
    # Both tries hang under the same item span.
    assert first["parent_span_id"] == second["parent_span_id"]


def test_times_are_the_run_clock_mapped_to_unix_time_and_children_lie_within_parents(
    tmp_path: Path,
) -> None:
    spans, _, _ = _trace_file(tmp_path)
    by_id = {s["span_id"]: s for s in spans}

    root = _check_tree(spans)
    assert root["start_time_unix_nano"] == int(UNIX_START * 1e9)
    assert root["end_time_unix_nano"] == int(UNIX_START * 1e9) + 20 * 10**9
    for span in spans:
        assert span["start_time_unix_nano"] <= span["end_time_unix_nano"]
        if (parent := by_id.get(span["parent_span_id"])) is not None:
            assert parent["start_time_unix_nano"] <= span["start_time_unix_nano"]
            assert span["end_time_unix_nano"] <= parent["end_time_unix_nano"]
    # An item's span starts with its batch, when all of the batch's items were queued.
    [batch0] = [s for s in spans if s["attributes"].get("sluice.batch.index") == 0]
    item_a = next(
        s for s in _by_name(spans, "sluice.item") if s["attributes"]["sluice.item.id"] == "a"
    )
    assert item_a["start_time_unix_nano"] == batch0["start_time_unix_nano"]


def test_what_the_run_left_open_ends_in_error_when_it_finishes(tmp_path: Path) -> None:
    spans, _, _ = _trace_file(tmp_path)
    batches = {s["attributes"]["sluice.batch.index"]: s for s in _by_name(spans, "sluice.batch")}
    g_spans = [s for s in spans if s["attributes"].get("sluice.item.id") == "g"]

    assert batches[0]["status"]["code"] == batches[1]["status"]["code"] == "OK"
    assert batches[0]["attributes"]["sluice.batch.succeeded"] == 3
    assert batches[0]["attributes"]["sluice.batch.cached"] == 1
    assert batches[0]["attributes"]["sluice.batch.failed"] == 1
    assert batches[2]["status"] == {
        "code": "ERROR",
        "message": "not committed: the run stopped",
    }
    assert sorted(s["status"]["message"] for s in g_spans) == [
        "no answer: the run stopped",
        "not settled: the run stopped",
    ]
    run = _by_name(spans, "sluice.run")[0]
    assert run["status"] == {"code": "ERROR", "message": "exit code 130"}
    attributes = run["attributes"]
    assert attributes["sluice.exit_code"] == 130
    assert attributes["sluice.job"] == "reviews"
    assert (attributes["sluice.items"], attributes["sluice.items.failed"]) == (6, 2)
    assert (attributes["sluice.requests"], attributes["sluice.retries"]) == (6, 1)
    assert attributes["sluice.batches.committed"] == 2


def test_a_run_that_ended_well_has_an_ok_run_span_and_an_error_names_its_cause() -> None:
    collected = Collected()
    recorder = _recorder([collected])
    assert recorder.finish(STOP, 0) == []
    assert collected.closed
    assert (collected.spans[-1].status_code, collected.spans[-1].status_message) == ("OK", None)

    failed = Collected()
    _recorder([failed]).finish(STOP, 77, "the server refused the key (HTTP 401)")
    assert failed.spans[-1].status_message == "the server refused the key (HTTP 401)"
    assert _recorder([failed]).finish(STOP, 0) == []


def test_finishing_twice_writes_nothing_more(tmp_path: Path) -> None:
    collected = Collected()
    recorder = _recorder([collected])
    _play(recorder, small_run())
    count = len(collected.spans)
    assert recorder.finish(STOP + 1, 0) == []
    recorder.emit(BatchStarted(9, 1, STOP + 2))
    assert len(collected.spans) == count


# Content and secrets.


def test_no_prompt_or_answer_text_without_trace_content(tmp_path: Path) -> None:
    spans, raw, _ = _trace_file(tmp_path, content=False)

    assert PROMPT_MARK.encode() not in raw and ANSWER_MARK.encode() not in raw
    assert not any("gen_ai.input.messages" in s["attributes"] for s in spans)
    assert not any("sluice.item.output" in s["attributes"] for s in spans)


def test_trace_content_puts_prompts_on_attempts_and_answers_on_items(tmp_path: Path) -> None:
    spans, _, _ = _trace_file(tmp_path, content=True)

    for attempt in _attempts(spans):
        messages = orjson.loads(attempt["attributes"]["gen_ai.input.messages"])
        assert messages[0] == {
            "role": "system",
            "parts": [{"type": "text", "content": "Classify."}],
        }
        assert messages[1]["role"] == "user"
        assert messages[1]["parts"][0]["content"].startswith(PROMPT_MARK)
    items = {s["attributes"]["sluice.item.id"]: s for s in _by_name(spans, "sluice.item")}
    assert items["a"]["attributes"]["sluice.item.output"] == f"{ANSWER_MARK} a"
    assert items["c"]["attributes"]["sluice.item.output"] == f"{ANSWER_MARK} c"
    assert "sluice.item.output" not in items["e"]["attributes"]


def test_the_key_never_reaches_the_trace_even_when_a_prompt_or_an_error_quotes_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "trace.jsonl"
    recorder = _recorder([JsonlSpanFile(str(path))], content=True, redact=Redactor(Secret(KEY)))
    it = Item(0, "in.jsonl", 1, {"text": KEY}, "k1")
    leaky = {"model": MODEL, "messages": [{"role": "user", "content": f"my key is {KEY}"}]}
    events: list[Event] = [
        BatchStarted(0, 1, 1001.0),
        RequestSent(it, 0, 1, 1001.0, 0.0, 0.0, leaky),
        AttemptEnded(it, 0, 1, 1002.0, 400, "permanent", None, "m", 0.1, False),
        ItemSettled(0, 1002.0, Failure(it, ErrorKind.PERMANENT, f"bad key {KEY}", 400, 1)),
    ]
    _play(recorder, events, exit_code=1)

    raw = path.read_bytes()
    assert b"sk-test" not in raw and KEY[10:20].encode() not in raw
    assert b"my key is" in raw  # the content itself is there, the key is not


def test_the_run_span_of_a_real_config_names_no_key_nor_credentials() -> None:
    config = RunConfig(
        read=ReadConfig(inputs=("in.jsonl",)),
        request=RequestConfig(endpoint=Endpoint.CHAT, model=MODEL),
        output=OutputConfig(results="out.jsonl", quarantine="bad.jsonl"),
        connection=ConnectionConfig(
            base_url="https://user:hunter2@gateway.example/v1?api-key=secret-q",
            api_key=Secret(KEY),
        ),
    )
    collected = Collected()
    SpanRecorder.for_run(config, new_trace_id(), START, UNIX_START, [collected]).finish(STOP, 0)

    text = orjson.dumps(collected.spans[-1].as_json()).decode()
    assert "hunter2" not in text and "secret-q" not in text and KEY not in text
    attributes = collected.spans[-1].attributes
    assert attributes["sluice.base_url"] == "https://gateway.example/v1"
    assert attributes["gen_ai.request.model"] == MODEL
    assert attributes["sluice.inputs"] == ["in.jsonl"]


# The file's life.


def test_the_file_appears_whole_when_the_run_finishes_and_not_before(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    recorder = _recorder([JsonlSpanFile(str(path))])
    for event in small_run():
        recorder.emit(event)

    assert not path.exists()
    [temp] = [p for p in tmp_path.iterdir() if p.name.startswith(".trace.jsonl.")]
    assert temp.name.endswith(".partial")

    recorder.finish(STOP, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.jsonl"]
    lines = path.read_bytes().splitlines()
    assert len(lines) == 1 + 3 + 7 + 6  # run, batches, items, attempts
    assert orjson.loads(lines[-1])["name"] == "sluice.run"


def test_a_trace_file_that_cannot_be_created_is_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(OutputError):
        JsonlSpanFile(str(tmp_path / "no-such-dir" / "trace.jsonl"))
    with pytest.raises(OutputError):
        JsonlSpanFile(str(tmp_path))  # a directory


def test_a_trace_file_that_fails_midway_is_a_warning_not_the_runs_end() -> None:
    # /dev/full takes the open and refuses every write: a disk that filled during the run.
    recorder = _recorder([JsonlSpanFile("/dev/full")])
    warnings = _play(recorder, small_run())

    assert len(warnings) == 1 and "/dev/full" in warnings[0]


def test_a_broken_exporter_is_dropped_with_one_warning_and_the_others_go_on() -> None:
    collected = Collected()
    recorder = _recorder([Broken(), collected])
    warnings = _play(recorder, small_run())

    assert warnings == ["a trace exporter failed and was dropped: disk on fire"]
    assert len(collected.spans) == 17


def test_a_leftover_of_a_killed_run_is_swept_when_a_new_trace_file_opens(tmp_path: Path) -> None:
    leftover = tmp_path / ".trace.jsonl.abc123.partial"
    leftover.write_bytes(b"half a span")
    JsonlSpanFile(str(tmp_path / "trace.jsonl"))
    assert not leftover.exists()


# Attributes.


def test_attributes_are_what_opentelemetry_accepts() -> None:
    plain = plain_attributes(
        {"none": None, "text": "t", "flag": True, "n": 3, "x": 1.5, "names": ["a", "b"],
         "mixed": [1, "a"], "nested": {"k": [1, 2]}, "tuple": (1, 2)}
    )  # fmt: skip
    assert plain == {
        "text": "t", "flag": True, "n": 3, "x": 1.5, "names": ["a", "b"],
        "mixed": '[1,"a"]', "nested": '{"k":[1,2]}', "tuple": [1, 2],
    }  # fmt: skip


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=10), _json_values, max_size=8))
def test_any_json_attribute_becomes_a_scalar_or_a_list_of_one_scalar_type(
    attributes: dict[str, Any],
) -> None:
    for value in plain_attributes(attributes).values():
        if isinstance(value, list):
            assert len({type(v) for v in value}) <= 1
            assert all(isinstance(v, str | bool | int | float) for v in value)
        else:
            assert isinstance(value, str | bool | int | float)


@given(st.lists(_json_values, max_size=5))
def test_any_messages_list_becomes_json_text_without_raising(messages: list[Any]) -> None:
    attributes = prompt_attributes({"messages": messages})
    assert isinstance(orjson.loads(attributes["gen_ai.input.messages"]), list)


def test_chat_messages_take_the_genai_message_form() -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]  # fmt: skip
    converted = orjson.loads(prompt_attributes({"messages": messages})["gen_ai.input.messages"])
    assert converted == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}, {"type": "image_url"}]},
        {"role": "assistant",
         "parts": [{"type": "tool_call", "id": "c1", "name": "f", "arguments": "{}"}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "42"}]},
    ]  # fmt: skip
    assert prompt_attributes({"input": ["a", "b"]}) == {"sluice.request.input": '["a","b"]'}


def test_the_provider_is_named_only_when_the_host_says_who_it_is() -> None:
    assert server_attributes("https://api.openai.com/v1") == {
        "server.address": "api.openai.com",
        "server.port": 443,
        "gen_ai.provider.name": "openai",
    }
    azure = server_attributes("https://mine.openai.azure.com/openai/v1")
    assert azure["gen_ai.provider.name"] == "azure.ai.openai"
    local = server_attributes("http://127.0.0.1:8000/v1")
    assert local == {"server.address": "127.0.0.1", "server.port": 8000}
    assert server_attributes("not a url") == {}


def test_a_safe_url_keeps_no_credentials() -> None:
    assert safe_url("https://u:p@host:8443/v1?key=k#f") == "https://host:8443/v1"
    assert safe_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


# Ids.


@given(st.integers(min_value=0, max_value=(1 << 64) - 1), st.integers(1, 300))
def test_span_ids_are_unique_nonzero_16_hex_digits(salt: int, count: int) -> None:
    ids = SpanIds(salt)
    drawn = [ids.next() for _ in range(count)]
    assert len(set(drawn)) == count
    assert all(len(i) == 16 and int(i, 16) != 0 for i in drawn)


def test_a_trace_id_is_32_hex_digits() -> None:
    trace_id = new_trace_id()
    assert len(trace_id) == 32 and int(trace_id, 16) != 0


# Generated runs.

# Each item's plan: None = cached; [] = invalid; else the attempts' errors in order
# (None = answered), ending in None (answered) or in a kind (failed).
_plans: st.SearchStrategy[list[str | None] | None] = st.one_of(
    st.none(),
    st.just([]),
    st.lists(st.sampled_from(["transient", "rate_limited"]), max_size=3).flatmap(
        lambda errors: st.sampled_from([None, "permanent", "transient"]).map(
            lambda last: [*errors, last]
        )
    ),
)


def _generated_run(plans: list[Any], batch_size: int, committed: int) -> Iterator[Event]:
    clock = START
    batches = [plans[i : i + batch_size] for i in range(0, len(plans), batch_size)]
    position = 0
    for index, batch in enumerate(batches):
        clock += 1
        yield BatchStarted(index, len(batch), clock)
        for plan in batch:
            it = Item(position, "in.jsonl", position + 1, {}, position)
            position += 1
            outcome: Outcome
            if plan is None:
                outcome = Success(it, "x", Usage(), cached=True, attempts=0)
            elif not plan:
                outcome = Failure(it, ErrorKind.INVALID_INPUT, "bad")
            else:
                for number, error in enumerate(plan, 1):
                    clock += 0.5
                    yield RequestSent(it, index, number, clock, 0.0, 0.0, body("x"))
                    status = 200 if error is None else 500
                    yield AttemptEnded(
                        it, index, number, clock + 0.1, status, error, None, "m", 0.1, False
                    )
                last = plan[-1]
                outcome = (
                    Success(it, "x", Usage(), attempts=len(plan))
                    if last is None
                    else Failure(it, ErrorKind(last), "no", 500, len(plan))
                )
            yield ItemSettled(index, clock + 0.2, outcome)
    yield BatchesCommitted([], list(range(min(committed, len(batches)))), clock + 1)


@given(st.lists(_plans, max_size=25), st.integers(1, 6), st.integers(0, 6))
def test_any_run_gives_a_tree_with_one_span_per_item_and_one_per_try(
    plans: list[Any], batch_size: int, committed: int
) -> None:
    collected = Collected()
    recorder = _recorder([collected])
    _play(recorder, list(_generated_run(plans, batch_size, committed)), exit_code=0)
    spans = [s.as_json() for s in collected.spans]

    _check_tree(spans)
    items = _by_name(spans, "sluice.item")
    assert sorted(s["attributes"]["sluice.item.id"] for s in items) == list(range(len(plans)))
    tries = Counter(s["attributes"]["sluice.item.id"] for s in _attempts(spans))
    assert tries == {n: len(plan) for n, plan in enumerate(plans) if plan}
    batches = _by_name(spans, "sluice.batch")
    assert len(batches) == -(-len(plans) // batch_size)
    not_committed = [b for b in batches if b["status"]["code"] == "ERROR"]
    assert len(not_committed) == max(0, len(batches) - committed)


# The real engine and dispatcher, through the in-process transport.


class _Server:
    """Answers in capitals; "flaky" fails its first try (503); "refuse me" is refused (400)."""

    def __init__(self) -> None:
        self.flaky_failed = False

    async def __call__(self, path: str, payload: bytes) -> Response:
        text = orjson.loads(payload)["messages"][0]["content"]
        if text == "refuse me":
            return Response(400, {}, orjson.dumps({"error": {"message": "no"}}), 0.0)
        if text == "flaky" and not self.flaky_failed:
            self.flaky_failed = True
            return Response(503, {}, orjson.dumps({"error": {"message": "busy"}}), 0.0)
        answer = {
            "choices": [{"message": {"content": text.upper()}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
        return Response(200, {}, orjson.dumps(answer), 0.0)


def _request(text: str) -> Request:
    request_body = {"model": "m", "messages": [{"role": "user", "content": text}]}
    return Request(Endpoint.CHAT, "/chat/completions", request_body)


class _Written:
    async def write(self, batches: list[tuple[Batch, list[Outcome]]]) -> None:
        pass


def test_the_engine_and_dispatcher_produce_the_whole_tree(tmp_path: Path) -> None:
    texts = [["apple", "flaky", "refuse me"], ["plum"]]
    path = tmp_path / "trace.jsonl"

    async def scenario() -> list[str]:
        clock, stats = FakeClock(), RunStats()
        recorder = SpanRecorder(
            new_trace_id(), clock.now(), UNIX_START, [JsonlSpanFile(str(path))], {}
        )
        events = Broadcast(stats, recorder)
        traffic = TrafficControl(TrafficConfig(concurrency=2), clock, events, random.Random(0))
        dispatcher = Dispatcher(
            InProcessTransport(_Server()), traffic, RetryConfig(), events,
            Redactor(None), clock, random.Random(0),
        )  # fmt: skip
        engine = AsyncioEngine(dispatcher, _Written(), events, 2, 4)
        pending = []
        for index, batch in enumerate(texts):
            items = [Item(index * 3 + n, "in.jsonl", n + 1, {}, t) for n, t in enumerate(batch)]
            requests: list[Request | str | None] = [_request(t) for t in batch]
            pending.append(PreparedBatch(Batch(index, items), requests, [None] * len(items)))
        pending.reverse()

        async def next_batch() -> PreparedBatch | None:
            return pending.pop() if pending else None

        await engine.run(next_batch)
        return recorder.finish(clock.now(), 0)

    assert asyncio.run(scenario()) == []
    spans = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    _check_tree(spans)
    items = {s["attributes"]["sluice.item.id"]: s for s in _by_name(spans, "sluice.item")}
    assert sorted(items) == ["apple", "flaky", "plum", "refuse me"]
    assert items["refuse me"]["attributes"]["sluice.outcome"] == "permanent"
    tries = Counter(s["attributes"]["sluice.item.id"] for s in _attempts(spans))
    assert tries == {"apple": 1, "flaky": 2, "refuse me": 1, "plum": 1}
    assert {s["name"] for s in _attempts(spans)} == {"chat m"}
    assert all(s["status"]["code"] == "OK" for s in _by_name(spans, "sluice.batch"))
