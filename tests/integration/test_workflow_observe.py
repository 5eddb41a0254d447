"""A two-step workflow run against the simulator, as its summary, console, metrics file and
trace break it down by step; then the same items again, answered from the cache."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import read_jsonl, run_cli, write_jsonl

ROWS = [{"id": n, "text": f"review number {n} " * 4} for n in range(30)]
WORKFLOW = """
[steps.label]
prompt = "Label the sentiment of: {{ text }}"
schema = "label: positive|negative"

[steps.draft]
after = ["label"]
when = 'steps.label.output.label == "negative"'
prompt = "Reply to this review: {{ text }}"
"""


def _run(sim: BackgroundSimulator, source: str, workflow: str, out: Path, *extra: str):
    args = ["run", source, "--workflow", workflow, "-o", str(out), "-m", "gpt-4o-mini"]
    args += ["--base-url", sim.base_url, "--allow-insecure-http", *extra]
    return run_cli(args, env={"OPENAI_API_KEY": "sk-test-workflow-observe"})


def _step_series(path: Path, name: str, **labels: str) -> dict[str, float]:
    """The series `name` with `labels`, by step."""
    families = text_string_to_metric_families(path.read_bytes().decode("utf-8"))
    return {
        sample.labels["step"]: sample.value
        for family in families
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    }


def _tries_by_step(path: Path) -> Counter[Any]:
    spans = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return Counter(s["attributes"].get("sluice.step") for s in spans if s["kind"] == "CLIENT")


def test_the_summary_metrics_and_trace_break_a_workflow_run_down_by_step(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ROWS)
    workflow = tmp_path / "wf.toml"
    workflow.write_text(WORKFLOW)
    summary, metrics, trace = tmp_path / "s.json", tmp_path / "run.prom", tmp_path / "t.jsonl"
    observed = ["--summary", str(summary), "--metrics-file", str(metrics)]
    with BackgroundSimulator(SimulatorConfig()) as sim:
        first = _run(sim, source, str(workflow), tmp_path / "out.jsonl", *observed,
                     "--trace-file", str(trace))  # fmt: skip
        sent = sim.stats().requests_total
        assert first.exit_code == 0, first.output
        rows = read_jsonl(tmp_path / "out.jsonl")
        negatives = sum(row["output"]["label"]["label"] == "negative" for row in rows)
        assert 0 < negatives < len(ROWS)

        steps = orjson.loads(summary.read_bytes())["steps"]
        assert list(steps) == ["label", "draft"]
        label, draft = steps["label"], steps["draft"]
        assert label["requests"] == label["answered"] == len(ROWS)
        assert draft["requests"] == draft["answered"] == negatives
        assert draft["skipped"] == len(ROWS) - negatives
        assert label["requests"] + draft["requests"] == sent
        for step in (label, draft):
            assert step["cached"] == step["failed"] == step["not_run"] == 0
            assert step["tokens"]["prompt"] > 0 and step["tokens"]["completion"] > 0
            assert step["cost_usd"] is not None and step["cost_usd"] > 0  # a priced model
            assert step["latency_ms"]["p50"] is not None
        assert "step label" in first.output and "step draft" in first.output

        assert _step_series(metrics, "sluice_step_requests_total") == {
            "label": len(ROWS),
            "draft": negatives,
        }
        assert _tries_by_step(trace) == {"label": len(ROWS), "draft": negatives}

        # The same items again: every step's answer is in the cache, nothing is sent.
        again = _run(sim, source, str(workflow), tmp_path / "again.jsonl", *observed)
        assert again.exit_code == 0, again.output
        assert sim.stats().requests_total == sent
    steps = orjson.loads(summary.read_bytes())["steps"]
    label, draft = steps["label"], steps["draft"]
    assert label["requests"] == draft["requests"] == 0
    assert label["cached"] == len(ROWS) and label["answered"] == 0
    assert draft["cached"] == negatives and draft["skipped"] == len(ROWS) - negatives
    assert label["cost_usd"] == 0.0 and label["saved_by_cache_usd"] > 0
    assert label["reused_tokens"]["prompt"] > 0 and label["tokens"]["prompt"] == 0
    assert _step_series(metrics, "sluice_step_requests_total") == {"label": 0, "draft": 0}
    cached = _step_series(metrics, "sluice_step_items_total", status="cached")
    assert cached == {"label": len(ROWS), "draft": negatives}
