"""A workflow killed with SIGKILL at random moments, then resumed: every item once, with
every step's output, and no step paid twice beyond the requests that were on the wire."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

from pipeline.run.verify import verify
from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import read_jsonl, write_jsonl

WORKFLOW = """
[steps.label]
prompt = "Label the sentiment of: {{ text }}"
schema = "label: positive|negative"

[steps.topic]
prompt = "Name the topic of: {{ text }}"

[steps.draft]
after = ["label", "topic"]
when = 'steps.label.output.label == "negative"'
prompt = "Reply about {{ steps.topic.output }} to: {{ text }}"
"""


def _command(source: str, out: Path, workflow: Path, base_url: str) -> list[str]:
    return [
        sys.executable, "-m", "cli", "run", source, "-o", str(out), "-m", "sim-chat",
        "--workflow", str(workflow), "--base-url", base_url, "-c", "8", "--batch-size", "9",
        "--retry-backoff", "0", "-q",
    ]  # fmt: skip


def _wait_for_requests(sim: BackgroundSimulator, process: subprocess.Popen[bytes], n: int) -> None:
    deadline = time.monotonic() + 60
    while sim.stats().requests_total < n and process.poll() is None:
        assert time.monotonic() < deadline, "the run sent nothing"
        time.sleep(0.01)


def test_sigkill_in_the_middle_of_a_workflow_then_resume_gives_each_item_once(
    tmp_path: Path,
) -> None:
    count, kills = 300, 4
    items = [{"id": f"item-{n:04d}", "text": f"distinct review {n}"} for n in range(count)]
    source = write_jsonl(tmp_path / "in.jsonl", items)
    workflow = tmp_path / "wf.toml"
    workflow.write_text(WORKFLOW)
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": ""}
    rng = random.Random(13)
    with BackgroundSimulator(SimulatorConfig(latency=0.01, jitter=0.01, seed=3)) as sim:
        command = _command(source, out, workflow, sim.base_url)
        for _ in range(kills):
            target = sim.stats().requests_total + rng.randint(5, 120)
            process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
            _wait_for_requests(sim, process, target)
            process.kill()
            process.wait(timeout=30)
            assert not out.exists()
        finished = subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
        assert finished.returncode == 0, finished.stderr.decode()
        by_content = sim.stats().requests_by_digest
    report = verify([source], [str(out)], [str(tmp_path / "out.quarantine.jsonl")])
    assert report.ok, "\n".join(report.lines())
    rows = read_jsonl(out)
    assert [row["id"] for row in rows] == [item["id"] for item in items]
    negatives = 0
    for row in rows:
        output = row["output"]
        assert output["label"]["label"] in ("positive", "negative")
        assert isinstance(output["topic"], str)
        if output["label"]["label"] == "negative":
            negatives += 1
            assert isinstance(output["draft"], str)
        else:
            assert output["draft"] is None
    # Every request asked at least once, and again only if it was on the wire at a kill.
    assert len(by_content) == 2 * count + negatives
    paid_twice = sum(n - 1 for n in by_content.values() if n > 1)
    assert paid_twice <= kills * 8
