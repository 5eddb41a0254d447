"""Workflows in real runs against the simulator: what each step sends, what rows hold,
failures naming their step, steps running side by side, and later steps paying alone."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.parquet as pq

from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import read_jsonl, run_cli, write_jsonl

ROWS = [{"id": n, "title": f"title {n}", "text": f"review number {n} " * 4} for n in range(40)]

LABEL = """
[steps.label]
prompt = "Label the sentiment of: {{ text }}"
schema = "label: positive|negative"
"""
DRAFT = """
[steps.draft]
after = ["label"]
when = 'steps.label.output.label == "negative"'
prompt = "Reply to this {{ steps.label.output.label }} review: {{ text }}"
"""


def _workflow(tmp_path: Path, text: str, name: str = "wf.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _run(sim: BackgroundSimulator, source: str, out: Path, workflow: str, *extra: str):
    args = ["run", source, "-o", str(out), "-m", "sim-chat", "--workflow", workflow]
    return run_cli([*args, "--base-url", sim.base_url, "--batch-size", "8", *extra])


def test_a_two_step_workflow_sends_every_item_once_and_only_the_negatives_twice(
    tmp_path: Path,
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, out, _workflow(tmp_path, LABEL + DRAFT))
        sent = sim.stats().requests_total
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    assert [row["id"] for row in rows] == [r["id"] for r in ROWS]
    negatives = [row for row in rows if row["output"]["label"]["label"] == "negative"]
    assert 0 < len(negatives) < len(rows)
    assert sent == len(rows) + len(negatives)
    for row in rows:
        assert set(row["output"]) == {"label", "draft"}
        draft = row["steps"]["draft"]
        if row in negatives:
            assert isinstance(row["output"]["draft"], str)
            assert draft["status"] == "answered"
        else:
            assert row["output"]["draft"] is None
            assert draft["status"] == "skipped"
            assert "steps.label.output.label" in draft["reason"]
        assert row["steps"]["label"] == {
            "status": "answered",
            "model": "sim-chat",
            "answered_by": "label",
            "reason": None,
        }
    verified = run_cli(["verify", source, "-r", str(out)])
    assert verified.exit_code == 0, verified.output


def test_steps_that_do_not_depend_on_each_other_are_in_flight_together(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ROWS[:2])
    both = LABEL + '[steps.topic]\nprompt = "Topic of: {{ text }}"\n'
    with BackgroundSimulator(SimulatorConfig(latency=1.0)) as sim:
        result = _run(sim, source, tmp_path / "out.jsonl", _workflow(tmp_path, both))
        stats = sim.stats()
    assert result.exit_code == 0, result.output
    assert stats.requests_total == 4
    # Until the first answer one request goes alone; then the first item's other step
    # and both of the second's go together. Steps in lockstep would make it 2.
    assert stats.max_in_flight == 3


def test_a_failing_required_step_quarantines_the_item_naming_it_and_keeps_the_others(
    tmp_path: Path,
) -> None:
    rows = [*ROWS[:5], {"id": "bad", "title": "fine title", "text": "refuse me [[sim:400]]"}]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    steps = """
[steps.title]
prompt = "Classify the title: {{ title }}"

[steps.reply]
after = ["title"]
prompt = "Reply to: {{ text }} ({{ steps.title.output }})"
"""
    out = tmp_path / "out.jsonl"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, out, _workflow(tmp_path, steps), "--max-error-rate", "1")
    assert result.exit_code == 0, result.output
    assert [row["id"] for row in read_jsonl(out)] == [r["id"] for r in ROWS[:5]]
    (bad,) = read_jsonl(tmp_path / "out.quarantine.jsonl")
    assert bad["id"] == "bad"
    assert bad["error"]["step"] == "reply"
    assert bad["error"]["kind"] == "permanent"
    assert bad["error"]["message"].startswith("step reply: HTTP 400")
    assert isinstance(bad["output"]["title"], str)  # what did succeed is kept
    assert bad["steps"]["title"]["status"] == "answered"
    assert bad["steps"]["reply"]["status"] == "failed"
    assert bad["item"] == rows[-1]

    # The same failure on an optional step leaves null, and the item succeeds.
    optional = _workflow(tmp_path, steps + "optional = true\n", "optional.toml")
    again = tmp_path / "again.jsonl"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, again, optional)
    assert result.exit_code == 0, result.output
    last = read_jsonl(again)[-1]
    assert last["id"] == "bad"
    assert last["output"]["reply"] is None
    assert last["steps"]["reply"]["status"] == "failed"
    assert "HTTP 400" in last["steps"]["reply"]["reason"]


def test_a_retry_of_a_failed_step_pays_only_for_what_failed(tmp_path: Path) -> None:
    rows = [{"id": n, "title": f"t{n}", "text": f"text {n} [[sim:500x2]]"} for n in range(6)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    steps = """
[steps.title]
prompt = "Classify the title: {{ title }}"

[steps.reply]
after = ["title"]
prompt = "Reply to: {{ text }}"
"""
    workflow = _workflow(tmp_path, steps)
    out = tmp_path / "out.jsonl"
    quarantine = tmp_path / "out.quarantine.jsonl"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        first = _run(sim, source, out, workflow, "--max-retries", "1", "--retry-backoff", "0")
        assert first.exit_code == 1
        assert len(read_jsonl(quarantine)) == len(rows)
        before = sim.stats().requests_by_path["/v1/chat/completions"]
        args = ["retry", str(quarantine), "-o", str(tmp_path / "retried.jsonl")]
        args += ["-m", "sim-chat", "--workflow", workflow, "--base-url", sim.base_url]
        retried = run_cli([*args, "--retry-backoff", "0"])
        assert retried.exit_code == 0, retried.output
        # The titles came from the cache: only the failed replies were asked again.
        replies = sim.stats().requests_by_path["/v1/chat/completions"] - before
    assert replies == len(rows)
    for row in read_jsonl(tmp_path / "retried.jsonl"):
        assert row["steps"]["title"]["status"] == "cached"
        assert row["steps"]["reply"]["status"] == "answered"


def test_adding_a_step_to_a_finished_workflow_pays_only_for_the_new_step(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    topic = '[steps.topic]\nprompt = "Topic of: {{ text }}"\n'
    with BackgroundSimulator(SimulatorConfig()) as sim:
        first = _run(sim, source, out, _workflow(tmp_path, LABEL))
        assert first.exit_code == 0, first.output
        assert sim.stats().requests_total == len(ROWS)
        second = _run(sim, source, out, _workflow(tmp_path, LABEL + topic, "more.toml"))
        assert second.exit_code == 0, second.output
        assert sim.stats().requests_total == 2 * len(ROWS)
    for row in read_jsonl(out):
        assert row["steps"]["label"]["status"] == "cached"
        assert row["steps"]["topic"]["status"] == "answered"


def test_parquet_results_hold_a_typed_column_per_step(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ROWS[:10])
    out = tmp_path / "out.parquet"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = _run(sim, source, out, _workflow(tmp_path, LABEL + DRAFT))
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    output = table.schema.field("output").type
    assert str(output.field("label").type) == "struct<label: string>"
    assert str(output.field("draft").type) == "string"
    statuses = [dict(steps)["draft"]["status"] for steps in table.column("steps").to_pylist()]
    assert set(statuses) <= {"answered", "skipped"}


def test_a_wrong_workflow_is_refused_before_any_request(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ROWS[:3])
    cycle = '[steps.a]\nafter = ["b"]\nprompt = "x"\n[steps.b]\nafter = ["a"]\nprompt = "y"\n'
    unknown = '[steps.a]\nafter = ["nope"]\nprompt = "x"\n'
    unread = '[steps.a]\nprompt = "{{ steps.b.output }}"\n[steps.b]\nprompt = "y"\n'
    missing_field = '[steps.a]\nprompt = "{{ txt }}"\n'
    cases = [
        (cycle, "cycle: a -> b -> a"),
        (unknown, "'nope', which is not a step"),
        (unread, "reads steps.b"),
        (missing_field, "no item of the first batch could be rendered"),
    ]
    with BackgroundSimulator(SimulatorConfig()) as sim:
        for number, (text, said) in enumerate(cases):
            workflow = _workflow(tmp_path, text, f"wrong{number}.toml")
            result = _run(sim, source, tmp_path / f"out{number}.jsonl", workflow)
            assert result.exit_code == 78, result.output
            assert said in result.output
        assert sim.stats().requests_total == 0


def test_the_summary_says_which_workflow_ran(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ROWS[:4])
    summary = tmp_path / "summary.json"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        workflow = _workflow(tmp_path, LABEL + DRAFT)
        result = _run(sim, source, tmp_path / "out.jsonl", workflow, "--summary", str(summary))
    assert result.exit_code == 0, result.output
    options = orjson.loads(summary.read_bytes())["options"]
    assert list(options["workflow"]) == ["label", "draft"]
    assert options["workflow"]["draft"]["after"] == ["label"]


def test_plan_breaks_a_workflow_down_by_step_and_sends_nothing(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ROWS)
    workflow = _workflow(tmp_path, LABEL + DRAFT)
    with BackgroundSimulator(SimulatorConfig()) as sim:
        args = ["plan", source, "--workflow", workflow, "-m", "gpt-4o-mini", "--json"]
        result = run_cli([*args, "--base-url", sim.base_url, "--no-cache"])
        assert sim.stats().requests_total == 0
    assert result.exit_code == 0, result.output
    plan = orjson.loads(result.output)
    label, draft = plan["steps"]["label"], plan["steps"]["draft"]
    assert (label["requests"], label["model"]) == (len(ROWS), "gpt-4o-mini")
    assert label["cost_usd"] > 0
    # The draft's prompt holds the label's answer: only an upper bound is known before.
    assert (draft["requests"], draft["requests_at_most"], draft["cost_usd"]) == (
        None,
        len(ROWS),
        None,
    )
    assert plan["requests"] == len(ROWS)


def test_steps_after_a_failed_required_step_are_not_run_and_counted_so(tmp_path: Path) -> None:
    rows = [*ROWS[:3], {"id": "bad", "title": "t", "text": "refuse me [[sim:400]]"}]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    steps = """
[steps.reply]
prompt = "Reply to: {{ text }}"

[steps.thanks]
after = ["reply"]
prompt = "Thank them for: {{ title }}"
"""
    summary = tmp_path / "summary.json"
    with BackgroundSimulator(SimulatorConfig()) as sim:
        workflow = _workflow(tmp_path, steps)
        args = ["--summary", str(summary), "--max-error-rate", "1"]
        result = _run(sim, source, tmp_path / "out.jsonl", workflow, *args)
    assert result.exit_code == 0, result.output
    (bad,) = read_jsonl(tmp_path / "out.quarantine.jsonl")
    assert bad["steps"]["thanks"]["status"] == "not_run"
    assert bad["output"] == {"thanks": None}
    counted = orjson.loads(summary.read_bytes())["steps"]
    assert (counted["reply"]["failed"], counted["thanks"]["not_run"]) == (1, 1)
    assert counted["thanks"]["answered"] == 3
