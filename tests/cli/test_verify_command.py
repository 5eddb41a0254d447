"""`sluice verify`: exit codes, the text and JSON reports, and a real run's outputs checked."""

from __future__ import annotations

from pathlib import Path

import orjson

from pipeline.simulator.background import BackgroundSimulator
from tests.conftest import read_jsonl, run_cli, write_jsonl


def _files(tmp_path: Path, results: list[str], quarantined: list[str]) -> list[str]:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i} for i in ["a", "b", "c", "d"]])
    out = write_jsonl(tmp_path / "out.jsonl", [{"id": i, "output": "x"} for i in results])
    bad = write_jsonl(tmp_path / "out.quarantine.jsonl", [{"id": i} for i in quarantined])
    return [source, "--results", out, "--quarantine", bad]


def test_exit_0_with_a_short_summary_when_the_outputs_partition_the_input(tmp_path: Path) -> None:
    result = run_cli(["verify", *_files(tmp_path, ["a", "c", "d"], ["b"])])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "ok: every input item is in exactly one output row, in input order",
        "4 input items; 3 result rows + 1 quarantine row = 4",
    ]
    assert result.stderr == ""


def test_exit_1_listing_the_ids_at_fault(tmp_path: Path) -> None:
    result = run_cli(["verify", *_files(tmp_path, ["a", "a", "c", "zz"], ["d"])])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0].startswith("NOT OK")
    assert 'missing (no output row): 1 id: "b"' in result.stdout
    assert 'duplicated (output rows to spare): 1 id: "a"' in result.stdout
    assert 'unexpected (not in the input): 1 id: "zz"' in result.stdout


def test_json_report_parses(tmp_path: Path) -> None:
    result = run_cli(["verify", *_files(tmp_path, ["a", "c", "b"], ["d"]), "--json"])
    assert result.exit_code == 1
    report = orjson.loads(result.stdout)
    assert report["ok"] is False
    assert report["out_of_order_count"] == 1
    assert report["out_of_order"][0] == {
        "file": str(tmp_path / "out.jsonl"),
        "line": 3,
        "id": "b",
        "position": 1,
        "after": 2,
    }
    assert report["missing"] == [] and report["input_items"] == 4


def test_the_quarantine_may_be_left_out_and_results_repeated(tmp_path: Path) -> None:
    args = _files(tmp_path, ["a", "c"], [])
    retried = write_jsonl(tmp_path / "retried.jsonl", [{"id": "b"}, {"id": "d"}])
    assert run_cli(["verify", args[0], "-r", args[2], "-r", retried]).exit_code == 0
    assert run_cli(["verify", args[0], "-r", args[2]]).exit_code == 1


def test_exit_66_for_a_missing_file(tmp_path: Path) -> None:
    args = _files(tmp_path, ["a", "b", "c", "d"], [])
    result = run_cli(["verify", str(tmp_path / "nope.jsonl"), *args[1:]])
    assert result.exit_code == 66
    assert result.stderr.strip().splitlines() == [
        f"sluice: error: input {str(tmp_path / 'nope.jsonl')!r} does not exist"
    ]
    result = run_cli(["verify", *args[:3], "--quarantine", str(tmp_path / "gone.jsonl")])
    assert result.exit_code == 66
    assert "quarantine file" in result.stderr and "gone.jsonl" in result.stderr


def test_exit_65_for_an_unreadable_output(tmp_path: Path) -> None:
    args = _files(tmp_path, ["a"], [])
    broken = tmp_path / "out.parquet"
    broken.write_bytes(b"not parquet at all")
    result = run_cli(["verify", args[0], "--results", str(broken)])
    assert result.exit_code == 65
    assert "out.parquet" in result.stderr and "Traceback" not in result.output


def test_exit_2_without_results(tmp_path: Path) -> None:
    args = _files(tmp_path, [], [])
    assert run_cli(["verify", args[0]]).exit_code == 2


def test_every_flag_is_explained() -> None:
    result = run_cli(["verify", "--help"])
    assert result.exit_code == 0
    for flag in ("--results", "--quarantine", "--id-field", "--show", "--json"):
        assert flag in result.stdout


def test_a_real_runs_outputs_pass_and_a_retry_joins_them(
    sim: BackgroundSimulator, tmp_path: Path
) -> None:
    rows = [{"id": f"r-{n:02d}", "text": f"review {n}"} for n in range(28)]
    rows[20] = {"text": "no id: known by its position"}
    rows[24] = {"id": "r-03", "text": "a duplicate id"}
    rows[26] = {"id": "r-26", "text": "[[sim:context_length]]"}  # a 400: quarantined
    lines = [orjson.dumps(row) for row in rows]
    lines[5:5] = [b"not json", b"[1, 2]"]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    out, bad = str(tmp_path / "out.jsonl"), str(tmp_path / "out.quarantine.jsonl")
    options = ["-m", "sim-chat", "-p", "Review: {{ text }}", "--base-url", sim.base_url, "-q"]
    ran = run_cli(["run", str(source), "-o", out, *options])
    assert ran.exit_code == 1, ran.output  # quarantined items exceed --max-error-rate 0
    assert [row["id"] for row in read_jsonl(bad)] == [5, 6, "r-03", "r-26"]
    checked = run_cli(["verify", str(source), "-r", out, "--quarantine", bad])
    assert checked.exit_code == 0, checked.output
    assert "30 input items; 26 result rows + 4 quarantine rows = 30" in checked.stdout

    # A retry writes a second pair of files; with the first results they cover the input.
    again, still_bad = str(tmp_path / "again.jsonl"), str(tmp_path / "again.quarantine.jsonl")
    retried = run_cli(["retry", bad, "-o", again, *options])
    assert retried.exit_code == 1, retried.output
    assert [row["id"] for row in read_jsonl(still_bad)] == [5, 6, "r-03", "r-26"]
    joined = ["verify", str(source), "-r", out, "-r", again, "--quarantine", still_bad]
    assert run_cli(joined).exit_code == 0
