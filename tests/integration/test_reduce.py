"""`sluice reduce` against the simulator: one answer per group through several levels,
schemas on the answers, rows that cannot be grouped, and a SIGKILL in the middle."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import read_jsonl, run_cli, write_jsonl

LABELS = ("positive", "negative", "neutral")
TEMPLATE = (
    "Themes of these {{ group }} reviews (level {{ level }}):\n"
    "{% for row in rows %}- {{ row.text if row.text is defined else row.output }}\n{% endfor %}"
)


def _results(count: int) -> list[dict]:
    """Rows as a labelling run writes them."""
    return [
        {
            "id": n,
            "text": f"review {n}: the handle broke after {n % 17} days of use",
            "output": {"label": LABELS[n % 3]},
        }
        for n in range(count)
    ]


def _args(tmp_path: Path, source: str, base_url: str, *extra: str) -> list[str]:
    (tmp_path / "themes.j2").write_text(TEMPLATE)
    return [
        "reduce", source, "-o", str(tmp_path / "themes.jsonl"), "-m", "sim-chat",
        "--prompt-file", str(tmp_path / "themes.j2"), "--base-url", base_url,
        "--max-input-tokens", "1500", *extra,
    ]  # fmt: skip


def test_two_thousand_rows_reduce_to_one_answer_per_group_over_several_levels(
    tmp_path: Path,
) -> None:
    source = write_jsonl(tmp_path / "results.jsonl", _results(2000))
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = run_cli(_args(tmp_path, source, sim.base_url, "--group-by", "output.label"))
        sent = sim.stats().requests_total
        assert result.exit_code == 0, result.output
        again = run_cli(_args(tmp_path, source, sim.base_url, "--group-by", "output.label"))
        assert again.exit_code == 0, again.output
        assert sim.stats().requests_total == sent  # a second reduce is all from the cache
    rows = read_jsonl(tmp_path / "themes.jsonl")
    assert [row["group"] for row in rows] == list(LABELS)  # in the order groups appeared
    for row in rows:
        assert isinstance(row["output"], str) and row["output"]
        assert row["levels"] >= 2  # too many rows for one request
        assert row["rows"] == len([n for n in range(2000) if LABELS[n % 3] == row["group"]])
    assert sent > 3 * 2  # chunks at the first level, then fewer at the next
    assert not (tmp_path / ".themes.jsonl.sluice-reduce").exists()


def test_without_group_by_everything_reduces_to_one_row_and_schema_shapes_it(
    tmp_path: Path,
) -> None:
    source = write_jsonl(tmp_path / "results.jsonl", _results(300))
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = run_cli(_args(tmp_path, source, sim.base_url, "--schema", "themes: list[str]"))
    assert result.exit_code == 0, result.output
    (row,) = read_jsonl(tmp_path / "themes.jsonl")
    assert row["group"] is None and row["rows"] == 300
    assert isinstance(row["output"]["themes"], list)


def test_rows_that_cannot_be_grouped_are_quarantined_and_the_rest_reduced(
    tmp_path: Path,
) -> None:
    rows = [*_results(30), {"id": "odd", "text": "x", "output": {"label": 5}}]
    source = write_jsonl(tmp_path / "results.jsonl", rows)
    with BackgroundSimulator(SimulatorConfig()) as sim:
        group_by = "lower(output.label)"
        result = run_cli(_args(tmp_path, source, sim.base_url, "--group-by", group_by))
    assert result.exit_code == 1, result.output
    assert len(read_jsonl(tmp_path / "themes.jsonl")) == 3
    (bad,) = read_jsonl(tmp_path / "themes.quarantine.jsonl")
    assert bad["item"]["id"] == "odd"
    assert bad["error"]["kind"] == "invalid_input"
    assert "--group-by" in bad["error"]["message"]


def test_a_reduce_needs_its_template_and_an_output_file(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "results.jsonl", _results(3))
    missing = run_cli(["reduce", source, "-o", str(tmp_path / "t.jsonl"), "-m", "m"])
    assert missing.exit_code == 2
    assert "--prompt-file" in missing.output
    no_output = run_cli(["reduce", source, "-m", "m", "-p", "{{ rows }}"])
    assert no_output.exit_code == 2


def test_a_killed_reduce_resumes_without_paying_again_for_finished_chunks(
    tmp_path: Path,
) -> None:
    source = write_jsonl(tmp_path / "results.jsonl", _results(2000))
    env = {**os.environ, "OPENAI_API_KEY": ""}
    with BackgroundSimulator(SimulatorConfig(latency=0.05, seed=2)) as sim:
        command = [sys.executable, "-m", "cli", *_args(tmp_path, source, sim.base_url)]
        command += ["--group-by", "output.label", "-c", "4", "-q"]
        process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while sim.stats().requests_total < 12 and process.poll() is None:
            assert time.monotonic() < deadline, "the reduce sent nothing"
            time.sleep(0.01)
        process.kill()
        process.wait(timeout=30)
        assert not (tmp_path / "themes.jsonl").exists()
        finished = subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
        assert finished.returncode == 0, finished.stderr.decode()
        by_content = sim.stats().requests_by_digest
    assert len(read_jsonl(tmp_path / "themes.jsonl")) == 3
    # Only the requests on the wire at the kill were paid for twice.
    assert sum(n - 1 for n in by_content.values() if n > 1) <= 4
