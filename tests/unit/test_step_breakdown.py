"""A workflow run broken down by step: the counters, the ledger, the summary's `steps`,
the console lines, the metrics file and the attempt spans, all fed by hand-made events
(and, for the sums, by generated ones)."""

from __future__ import annotations

import math
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from cli.summary import summary_lines
from pipeline.core.config import Endpoint, OutputConfig, ReadConfig, RequestConfig, RunConfig
from pipeline.core.events import (
    AnswerReused,
    AttemptEnded,
    BatchStarted,
    Event,
    ItemSettled,
    RequestSent,
    StepEnded,
)
from pipeline.core.models import Item, Success, Usage
from pipeline.observe.counters import RunStats
from pipeline.observe.spans import SpanRecord
from pipeline.observe.step_stats import STEP_STATUSES
from pipeline.observe.summary import RunFacts, summary_dict
from pipeline.observe.trace import SpanRecorder
from pipeline.observe.trace_ids import new_trace_id
from pipeline.report.metrics_file import write_metrics_file
from pipeline.run.result import RunResult
from pipeline.spend.ledger import Ledger
from pipeline.spend.prices import Pricing, shipped_table
from pipeline.workflow.steps import read_workflow
from tests.fakes.run_events import MODEL, START, STOP, body, small_run

UNPRICED = "my-own-model"
LABEL_USAGE = Usage(prompt_tokens=20, completion_tokens=4, total_tokens=24)
DRAFT_USAGE = Usage(prompt_tokens=50, completion_tokens=30, total_tokens=80)
WORKFLOW = """
[steps.label]
prompt = "Label: {{ text }}"
schema = "label: positive|negative"

[steps.draft]
after = ["label"]
when = 'steps.label.output.label == "negative"'
prompt = "Reply to: {{ text }}"
"""


def _item(position: int) -> Item:
    return Item(position, "in.jsonl", position + 1, {"text": f"t{position}"}, f"i{position}")


def _sent(item: Item, step: str, attempt: int = 1, at: float = 1001.0) -> RequestSent:
    return RequestSent(item, 0, attempt, at, 0.0, 0.0, body(step), step)


def _ended(
    item: Item,
    step: str,
    usage: Usage | None,
    attempt: int = 1,
    model: str = MODEL,
    latency: float = 0.2,
    at: float = 1001.5,
) -> AttemptEnded:
    status, error = (200, None) if usage is not None else (503, "transient")
    return AttemptEnded(
        item, 0, attempt, at, status, error, usage, model, latency, False, None, step
    )


def workflow_run(draft_model: str = MODEL) -> list[Event]:
    """Item 0: `label` answered on its second try (a 503 first), then `draft` answered.
    Item 1: `label` from the cache, `draft` skipped. Item 2: `label` answered, `draft`
    failed (a 503 on its only try). `draft` is heard of before `label` ends for item 0."""
    a, c = _item(0), _item(2)  # item 1 is never sent
    return [
        BatchStarted(0, 3, 1000.5),
        AnswerReused(MODEL, LABEL_USAGE, "label"),
        StepEnded("label", "cached"),
        _sent(c, "label"),
        _ended(c, "label", LABEL_USAGE, latency=0.1),
        StepEnded("label", "answered"),
        _sent(c, "draft"),
        _ended(c, "draft", None, model=draft_model, latency=0.9),
        StepEnded("draft", "failed"),
        StepEnded("draft", "skipped"),
        _sent(a, "label"),
        _ended(a, "label", None, latency=0.3),
        _sent(a, "label", attempt=2),
        _ended(a, "label", LABEL_USAGE, attempt=2, latency=0.3),
        StepEnded("label", "answered"),
        _sent(a, "draft"),
        _ended(a, "draft", DRAFT_USAGE, model=draft_model, latency=0.9),
        StepEnded("draft", "answered"),
    ]


def _facts(steps: tuple[str, ...] = ()) -> RunFacts:
    return RunFacts("job", "0" * 32, 1000.0, 1002.0, MODEL, "http://x/v1", [], {}, {}, steps)


def _summary(events: list[Event], steps: tuple[str, ...] = ()) -> dict[str, Any]:
    stats, ledger = RunStats(), Ledger(Pricing(shipped_table()))
    for event in events:
        stats.emit(event)
        ledger.emit(event)
    return summary_dict(stats, ledger, _facts(steps), 0)


def _usd(usage: Usage, model: str = MODEL) -> float:
    price = shipped_table().price_of(model)
    assert price is not None
    return price.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_prompt_tokens)


# The summary.


def test_each_step_has_its_requests_outcomes_tokens_cost_and_latency() -> None:
    steps = _summary(workflow_run(), ("label", "draft"))["steps"]

    assert steps["label"] == {
        "requests": 3,
        "retries": 1,
        "answered": 2,
        "cached": 1,
        "skipped": 0,
        "failed": 0,
        "not_run": 0,
        "tokens": {"prompt": 40, "completion": 8},  # two answers paid; the 503 reported none
        "reused_tokens": {"prompt": 20, "completion": 4},  # the cached one, kept apart
        "cost_usd": round(2 * _usd(LABEL_USAGE), 6),
        "saved_by_cache_usd": round(_usd(LABEL_USAGE), 6),
        "latency_ms": {"p50": 300.0, "p95": 300.0},
    }
    assert steps["draft"] == {
        "requests": 2,
        "retries": 0,
        "answered": 1,
        "cached": 0,
        "skipped": 1,
        "failed": 1,
        "not_run": 0,
        "tokens": {"prompt": 50, "completion": 30},
        "reused_tokens": {"prompt": 0, "completion": 0},
        "cost_usd": round(_usd(DRAFT_USAGE), 6),
        "saved_by_cache_usd": 0.0,
        "latency_ms": {"p50": 900.0, "p95": 900.0},
    }


def test_steps_follow_the_workflow_file_and_otherwise_the_order_first_heard_of() -> None:
    events = workflow_run()
    assert list(_summary(events, ("label", "draft"))["steps"]) == ["label", "draft"]
    assert list(_summary(events, ("draft", "label"))["steps"]) == ["draft", "label"]
    assert list(_summary(events)["steps"]) == ["label", "draft"]
    # A step in the file that nothing happened to is there, with nothing counted.
    quiet = _summary(events, ("topic", "label", "draft"))["steps"]["topic"]
    assert quiet["requests"] == 0 and quiet["cost_usd"] == 0.0
    assert quiet["latency_ms"] == {"p50": None, "p95": None}
    # A step heard of that the file does not list comes after those it does.
    assert list(_summary(events, ("draft",))["steps"]) == ["draft", "label"]


def test_the_facts_of_a_workflow_run_list_its_steps_in_the_files_order() -> None:
    config = RunConfig(
        read=ReadConfig(inputs=("in.jsonl",)),
        request=RequestConfig(endpoint=Endpoint.CHAT, model=MODEL),
        output=OutputConfig(results="out.jsonl", quarantine="bad.jsonl"),
        workflow=read_workflow(tomllib.loads(WORKFLOW)),
    )
    assert RunFacts.of(config, "0" * 32, 0.0, 1.0).steps == ("label", "draft")
    without = RunConfig(config.read, config.request, config.output)
    assert RunFacts.of(without, "0" * 32, 0.0, 1.0).steps == ()


def test_a_run_without_a_workflow_has_no_steps_key_at_all() -> None:
    summary = _summary(small_run())
    assert "steps" not in summary
    with_steps = _summary([*small_run(), *workflow_run()], ("label", "draft"))
    assert set(with_steps) - set(summary) == {"steps"}


def test_a_step_on_an_unpriced_model_has_no_cost_and_the_others_keep_theirs() -> None:
    steps = _summary(workflow_run(draft_model=UNPRICED), ("label", "draft"))["steps"]
    assert steps["draft"]["cost_usd"] is None
    assert steps["label"]["cost_usd"] == round(2 * _usd(LABEL_USAGE), 6)


_STEPS = ("label", "draft", "topic")
_usages = st.builds(Usage, st.integers(0, 10_000), st.integers(0, 10_000), st.just(0))
_step_events = st.one_of(
    st.builds(
        lambda step, attempt: _sent(_item(0), step, attempt),
        st.sampled_from(_STEPS),
        st.integers(1, 4),
    ),
    st.builds(
        lambda step, usage, model, latency: _ended(
            _item(0), step, usage, model=model, latency=latency
        ),
        st.sampled_from(_STEPS),
        st.none() | _usages,
        st.sampled_from([MODEL, "gpt-4o", UNPRICED]),
        st.floats(0.001, 60),
    ),
    st.builds(AnswerReused, st.sampled_from([MODEL, UNPRICED]), _usages, st.sampled_from(_STEPS)),
    st.builds(StepEnded, st.sampled_from(_STEPS), st.sampled_from(STEP_STATUSES)),
)


StepEvent = RequestSent | AttemptEnded | AnswerReused | StepEnded


@given(st.lists(_step_events, max_size=60))
def test_the_steps_add_up_to_the_run(events: list[StepEvent]) -> None:
    stats, ledger = RunStats(), Ledger(Pricing(shipped_table()))
    for event in events:
        stats.emit(event)
        ledger.emit(event)
    summary = summary_dict(stats, ledger, _facts(), 0)
    heard = list(dict.fromkeys(e.step for e in events))
    if not heard:
        assert "steps" not in summary
        return
    steps = summary["steps"]
    assert list(steps) == heard
    sent = [e for e in events if isinstance(e, RequestSent)]
    paid = [e.usage for e in events if isinstance(e, AttemptEnded) and e.usage is not None]
    assert sum(s["requests"] for s in steps.values()) == summary["requests"] == len(sent)
    assert sum(s["retries"] for s in steps.values()) == sum(e.attempt > 1 for e in sent)
    assert sum(s["tokens"]["prompt"] for s in steps.values()) == sum(u.prompt_tokens for u in paid)
    ended = Counter((e.step, e.status) for e in events if isinstance(e, StepEnded))
    for name, step in steps.items():
        assert {status: step[status] for status in STEP_STATUSES} == {
            status: ended[(name, status)] for status in STEP_STATUSES
        }
        spend = ledger.steps.get(name)
        assert (step["cost_usd"] is None) == (spend is not None and spend.unpriced_answers > 0)
    costs = [s["cost_usd"] for s in steps.values()]
    if None not in costs:  # every answer priced: the steps' costs are the run's
        assert ledger.attempt.cost is not None
        assert math.isclose(sum(costs), ledger.attempt.cost, abs_tol=1e-5)
    else:
        assert ledger.attempt.cost is None


# The console.


def _lines(summary: dict[str, Any], quiet: bool = False, exit_code: int = 0) -> list[str]:
    config = RunConfig(
        read=ReadConfig(inputs=("in.jsonl",)),
        request=RequestConfig(endpoint=Endpoint.CHAT, model=MODEL),
        output=OutputConfig(results="out.jsonl", quarantine="bad.jsonl"),
    )
    result = RunResult(exit_code, RunStats(), 2.0, summary={**summary, "exit_code": exit_code})
    return summary_lines(result, config, quiet=quiet)


def test_the_console_summary_has_one_aligned_line_per_step() -> None:
    lines = _lines(_summary(workflow_run(), ("label", "draft")))
    label = next(line for line in lines if line.startswith("step label"))
    draft = next(line for line in lines if line.startswith("step draft"))
    assert lines.index(label) + 1 == lines.index(draft)
    assert label.endswith(
        "3 requests, 1 retry; 2 answered, 1 cached; tokens 40 in, 8 out; "
        "$0.0000; p50 300ms p95 300ms"
    )
    assert "1 answered, 1 skipped, 1 failed" in draft
    # Every row's value starts in the same column, the step rows' too.
    columns = {len(line) - len(line[line.index("  ") :].lstrip()) for line in lines}
    assert len(columns) == 1
    assert not any(line.startswith("step") for line in _lines(_summary(small_run())))


def test_quiet_console_summary_names_only_the_steps_where_something_failed() -> None:
    lines = _lines(_summary(workflow_run(), ("label", "draft")), quiet=True, exit_code=3)
    assert [line.split("  ")[0] for line in lines if line.startswith("step")] == ["step draft"]


def test_an_unpriced_step_says_so_on_the_console() -> None:
    lines = _lines(_summary(workflow_run(draft_model=UNPRICED), ("label", "draft")))
    assert "; unpriced; " in next(line for line in lines if line.startswith("step draft"))


# The metrics file.


def _series(path: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = path.read_bytes().decode("utf-8")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _step_series(path: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {key: value for key, value in _series(path).items() if "step" in dict(key[1])}


def test_the_metrics_file_has_each_steps_requests_outcomes_tokens_cost_and_latency(
    tmp_path: Path,
) -> None:
    summary = _summary(workflow_run(draft_model=UNPRICED), ("label", "draft"))
    target = tmp_path / "run.prom"
    write_metrics_file(str(target), summary)

    def key(name: str, step: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
        return name, frozenset({"job": "job", "step": step, **labels}.items())

    series = _step_series(target)
    assert series[key("sluice_step_requests_total", "label")] == 3
    assert series[key("sluice_step_requests_total", "draft")] == 2
    assert series[key("sluice_step_items_total", "label", status="cached")] == 1
    assert series[key("sluice_step_items_total", "draft", status="skipped")] == 1
    assert series[key("sluice_step_tokens_total", "draft", kind="completion")] == 30
    assert series[key("sluice_step_cost_usd_total", "label")] == pytest.approx(
        2 * _usd(LABEL_USAGE), abs=1e-6
    )
    assert key("sluice_step_cost_usd_total", "draft") not in series  # unpriced: left out
    latency = "sluice_last_run_step_request_latency_seconds"
    assert series[key(latency, "draft", quantile="0.95")] == pytest.approx(0.9)
    names = {name for name, _ in series}
    assert names == {
        "sluice_step_requests_total",
        "sluice_step_items_total",
        "sluice_step_tokens_total",
        "sluice_step_cost_usd_total",
        latency,
    }


def test_a_run_without_a_workflow_writes_no_step_series(tmp_path: Path) -> None:
    target = tmp_path / "run.prom"
    write_metrics_file(str(target), _summary(small_run()))
    assert _step_series(target) == {}
    assert b"step" not in target.read_bytes()


def test_step_and_job_label_values_are_escaped(tmp_path: Path) -> None:
    summary = _summary(workflow_run(), ("label", "draft"))
    job = 'nightly "reviews"\\eu\nsecond line'
    step = 'odd "step"\\name\n'
    summary = {**summary, "job": job, "steps": {step: summary["steps"]["label"]}}
    target = tmp_path / "run.prom"
    write_metrics_file(str(target), summary)
    labels = dict(next(iter(_step_series(target)))[1])
    assert labels["job"] == job and labels["step"] == step


# The trace.


class Collected:
    def __init__(self) -> None:
        self.spans: list[SpanRecord] = []

    def export(self, span: SpanRecord) -> None:
        self.spans.append(span)

    def close(self) -> str | None:
        return None


def _spans(events: list[Event]) -> list[SpanRecord]:
    collected = Collected()
    recorder = SpanRecorder(new_trace_id(), START, 1_700_000_000.0, [collected], {})
    for event in events:
        recorder.emit(event)
    assert recorder.finish(STOP, 0) == []
    return collected.spans


def test_each_try_of_a_step_carries_the_step_and_none_outside_workflows() -> None:
    tries = [s for s in _spans(workflow_run()) if s.kind == "CLIENT"]
    assert Counter(s.attributes["sluice.step"] for s in tries) == {"label": 3, "draft": 2}
    plain = [s for s in _spans(small_run()) if s.kind == "CLIENT"]
    assert plain and not any("sluice.step" in s.attributes for s in plain)


def test_steps_of_one_item_in_flight_together_each_get_their_own_span() -> None:
    a = _item(0)
    events: list[Event] = [
        BatchStarted(0, 1, 1000.5),
        _sent(a, "label", at=1001.0),
        _sent(a, "topic", at=1001.1),
        _ended(a, "topic", DRAFT_USAGE, at=1001.4),
        _ended(a, "label", LABEL_USAGE, at=1001.6),
        ItemSettled(0, 1001.7, Success(a, {"label": 1, "topic": 2}, LABEL_USAGE, attempts=2)),
    ]
    spans = _spans(events)
    tries = {s.attributes["sluice.step"]: s for s in spans if s.kind == "CLIENT"}
    assert set(tries) == {"label", "topic"}
    assert all(s.status_code == "OK" for s in tries.values())
    assert tries["label"].attributes["gen_ai.usage.input_tokens"] == LABEL_USAGE.prompt_tokens
    assert tries["topic"].attributes["gen_ai.usage.input_tokens"] == DRAFT_USAGE.prompt_tokens
    [item] = [s for s in spans if s.name == "sluice.item"]
    assert {s.parent_span_id for s in tries.values()} == {item.span_id}
