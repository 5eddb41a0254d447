"""`sluice plan` / `run --dry-run`: counts, tokens and cost before a run, nothing sent."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import run_cli, write_jsonl

ITEMS = 60


def _source(tmp_path: Path, rows: list[object] | None = None) -> str:
    texts = [{"id": n, "text": f"review {n}: " + "good " * (n % 7)} for n in range(ITEMS)]
    return write_jsonl(tmp_path / "in.jsonl", rows if rows is not None else texts)


def _options(sim: BackgroundSimulator, *extra: str) -> list[str]:
    return [
        "-m", "gpt-4o-mini", "-p", "Label: {{ text }}", "--max-tokens", "16",
        "--base-url", sim.base_url, "--batch-size", "10", *extra,
    ]  # fmt: skip


def _plan(args: list[str]) -> dict:
    result = run_cli(args)
    assert result.exit_code in (0, 65), result.output
    return orjson.loads(result.stdout)


@pytest.mark.parametrize("command", [["plan"], ["run", "--dry-run"]])
def test_a_plan_sends_nothing_and_estimates_what_the_run_then_reports(
    tmp_path: Path, command: list[str]
) -> None:
    source = _source(tmp_path)
    out = str(tmp_path / "out.jsonl")
    with BackgroundSimulator(SimulatorConfig()) as sim:
        plan = _plan([*command, source, "-o", out, *_options(sim), "--json"])
        assert sim.stats().requests_total == 0
        assert not Path(out).exists() and not (tmp_path / ".out.jsonl.sluice").exists()
        assert (plan["items"], plan["invalid"], plan["cached"]) == (ITEMS, 0, 0)
        assert plan["requests"] == ITEMS
        assert plan["max_completion_tokens"] == 16 * ITEMS
        summary_path = tmp_path / "summary.json"
        ran = run_cli(["run", source, "-o", out, *_options(sim), "--summary", str(summary_path)])
        assert ran.exit_code == 0, ran.output
    summary = orjson.loads(summary_path.read_bytes())
    assert summary["requests"] == plan["requests"]
    assert plan["prompt_tokens"] == pytest.approx(summary["tokens"]["prompt"], rel=0.10)
    # Before any answer exists, max_tokens is the only word on completions: a ceiling.
    assert summary["cost"]["this_attempt"] <= plan["max_cost_usd"] == plan["cost_usd"]


def test_answers_in_the_cache_make_the_cost_estimate_close(tmp_path: Path) -> None:
    rows = [{"id": n, "text": f"review {n}"} for n in range(ITEMS)]
    first, second = rows[: ITEMS // 2], [{**row, "id": row["id"] + ITEMS} for row in rows]
    with BackgroundSimulator(SimulatorConfig()) as sim:
        run_cli(
            ["run", write_jsonl(tmp_path / "a.jsonl", first), "-o", "a.out.jsonl", *_options(sim)]
        )
        # Half of these are answered by the cache; their lengths say what the rest will cost.
        source = write_jsonl(tmp_path / "b.jsonl", [*first, *second[ITEMS // 2 :]])
        plan = _plan(["plan", source, *_options(sim), "--json"])
        assert plan["completion_basis"] == "answers in the cache"
        summary_path = tmp_path / "summary.json"
        run_cli(
            ["run", source, "-o", "b.out.jsonl", *_options(sim), "--summary", str(summary_path)]
        )
    summary = orjson.loads(summary_path.read_bytes())
    assert (plan["cached"], plan["requests"]) == (summary["cached"], summary["requests"])
    assert plan["cost_usd"] == pytest.approx(summary["cost"]["this_attempt"], rel=0.10)


def test_a_plan_counts_invalid_items_by_kind_and_exits_65(tmp_path: Path) -> None:
    rows: list[object] = [
        {"id": 1, "text": "a"},
        {"id": 1, "text": "b"},
        {"id": 2},
        {"id": 3, "text": "c"},
    ]
    source = _source(tmp_path, rows)
    with (tmp_path / "in.jsonl").open("a") as handle:
        handle.write("{not json\n")
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = run_cli(["plan", source, *_options(sim), "--json"])
        assert result.exit_code == 65
        plan = orjson.loads(result.stdout)
        assert sim.stats().requests_total == 0
    assert plan["items"] == 5 and plan["invalid"] == 3 and plan["requests"] == 2
    assert plan["invalid_by_kind"] == {"cannot_render": 1, "duplicate_id": 1, "unreadable": 1}


def test_a_plan_knows_what_the_cache_and_an_unfinished_run_already_did(tmp_path: Path) -> None:
    source = _source(tmp_path)
    out = str(tmp_path / "out.jsonl")
    with BackgroundSimulator(SimulatorConfig()) as sim:
        run_cli(["run", source, "-o", out, *_options(sim), "--max-requests", "20"])
        plan = _plan(["plan", source, "-o", out, *_options(sim), "--json"])
        assert plan["done"] == 20 and plan["items"] == ITEMS
        assert plan["requests"] + plan["cached"] == ITEMS - 20
        fresh = _plan(
            ["plan", source, "-o", str(tmp_path / "other.jsonl"), *_options(sim), "--json"]
        )
        assert fresh["done"] == 0 and fresh["cached"] == 20  # every answer paid for is stored
        assert sim.stats().requests_total == 20


def test_show_prints_the_first_rendered_requests_and_the_table_says_the_rest(
    tmp_path: Path,
) -> None:
    source = _source(tmp_path)
    with BackgroundSimulator(SimulatorConfig()) as sim:
        result = run_cli(["plan", source, *_options(sim, "--rpm", "600"), "--show", "2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    shown = [orjson.loads(line) for line in lines[:2]]
    assert shown[0]["body"]["messages"][-1]["content"] == "Label: review 0: "
    assert shown[1]["id"] == 1
    table = "\n".join(lines[2:])
    assert "60 to send" in table and "at least 6s (600 rpm" in table
    assert "$" in table


def test_an_unpriced_model_has_no_cost_and_the_limits_can_be_probed(tmp_path: Path) -> None:
    source = _source(tmp_path)
    with BackgroundSimulator(SimulatorConfig(rpm=1200)) as sim:
        args = ["plan", source, *_options(sim), "--json", "--probe-limits"]
        args[args.index("gpt-4o-mini")] = "house-model"
        plan = _plan(args)
        assert sim.stats().requests_total == 1  # the one probe
    assert plan["cost_usd"] is None and plan["price"] is None
    assert plan["limits"]["rpm"] == 1200 and plan["seconds"] == pytest.approx(3.0, abs=0.5)


def test_plan_flags_belong_to_a_dry_run(tmp_path: Path) -> None:
    source = _source(tmp_path)
    for flag in (["--show", "2"], ["--probe-limits"]):
        result = run_cli(["run", source, "-o", str(tmp_path / "o.jsonl"), "-m", "m", *flag])
        assert result.exit_code == 2
        assert "--dry-run" in result.stderr
