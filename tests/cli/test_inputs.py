"""Inputs a careful user will feed sluice, through run, retry and verify on the simulator.

Items whose id is not valid, damaged gzip, a named pipe called .parquet, and a
pretty-printed JSON array.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from pipeline.simulator.background import BackgroundSimulator
from tests.conftest import read_jsonl, run_cli, write_jsonl
from tests.corrupt import gzip_with_a_flipped_byte


def _options(sim: BackgroundSimulator, quiet: bool = True) -> list[str]:
    options = ["-m", "sim-chat", "-p", "Review: {{ text }}", "--base-url", sim.base_url]
    return [*options, "-q"] if quiet else options


def test_an_invalid_id_never_takes_another_items_id(
    sim: BackgroundSimulator, tmp_path: Path
) -> None:
    rows = [
        {"id": None, "text": "null id"},
        {"id": 1.5, "text": "float id"},
        {"id": True, "text": "boolean id"},
        {"id": 0, "text": "real id 0, the first invalid item's position"},
        {"id": 1, "text": "real id 1, the second invalid item's position"},
        {"text": "no id field: known by its position, 5"},
        {"id": 2, "text": "real id 2, the third invalid item's position"},
    ]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out, bad = str(tmp_path / "out.jsonl"), str(tmp_path / "out.quarantine.jsonl")
    ran = run_cli(["run", source, "-o", out, *_options(sim)])
    assert ran.exit_code == 1, ran.output  # three quarantined
    assert [row["id"] for row in read_jsonl(out)] == [0, 1, 5, 2]
    quarantined = read_jsonl(bad)
    assert [row["id"] for row in quarantined] == [None, None, None]
    assert [row["source"] for row in quarantined] == [
        {"file": source, "line": n} for n in (1, 2, 3)
    ]
    checked = run_cli(["verify", source, "-r", out, "--quarantine", bad])
    assert checked.exit_code == 0, checked.output

    # Retried, they stay invalid items without an id, carried over and never sent.
    again, still_bad = str(tmp_path / "again.jsonl"), str(tmp_path / "again.quarantine.jsonl")
    retried = run_cli(["retry", bad, "-o", again, *_options(sim)])
    assert retried.exit_code == 1, retried.output
    assert read_jsonl(again) == []
    carried = read_jsonl(still_bad)
    assert [(row["id"], row["source"]) for row in carried] == [
        (row["id"], row["source"]) for row in quarantined
    ]
    assert all(row["error"]["kind"] == "invalid_input" for row in carried)
    assert all(row["attempts"] == 0 for row in carried)
    joined = ["verify", source, "-r", out, "-r", again, "--quarantine", still_bad]
    assert run_cli(joined).exit_code == 0
    # Spelled another way, the input is still the same file.
    assert run_cli([*joined[:1], f"./{os.path.relpath(source)}", *joined[2:]]).exit_code == 0


def _damaged_gzip(path: Path, rows: list[dict]) -> str:
    path.write_bytes(gzip_with_a_flipped_byte(b"".join(orjson.dumps(row) + b"\n" for row in rows)))
    return str(path)


def _one_error_line(stderr: str, name: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert name in lines[0] and "damaged" in lines[0] and "Traceback" not in stderr
    return lines[0]


def test_damaged_gzip_is_exit_65_naming_the_file_in_run_verify_and_retry(
    sim: BackgroundSimulator, tmp_path: Path
) -> None:
    reviews = [{"id": f"r-{n}", "text": f"review number {n}, " * 3} for n in range(40)]
    source = _damaged_gzip(tmp_path / "in.jsonl.gz", reviews)
    out = str(tmp_path / "out.jsonl")
    # Not quiet: the background count for the progress line runs too, and says nothing.
    ran = run_cli(["run", source, "-o", out, *_options(sim, quiet=False)])
    assert ran.exit_code == 65, ran.output
    _one_error_line(ran.stderr, "in.jsonl.gz")
    assert not os.path.exists(out)

    good = write_jsonl(tmp_path / "good.jsonl", reviews)
    checked = run_cli(["verify", source, "-r", good])
    assert checked.exit_code == 65, checked.output
    _one_error_line(checked.stderr, "in.jsonl.gz")

    quarantined = [
        {"id": row["id"], "item": row, "error": {"kind": "transient"}, "attempts": 6}
        for row in reviews
    ]
    bad = _damaged_gzip(tmp_path / "out.quarantine.jsonl.gz", quarantined)
    retried = run_cli(["retry", bad, "-o", str(tmp_path / "again.jsonl"), *_options(sim)])
    assert retried.exit_code == 65, retried.output
    _one_error_line(retried.stderr, "out.quarantine.jsonl.gz")


def test_a_named_pipe_called_parquet_is_refused_without_being_opened(
    sim: BackgroundSimulator, tmp_path: Path
) -> None:
    pipe = tmp_path / "items.parquet"
    os.mkfifo(pipe)
    # Were it opened, holding the other end keeps the open from blocking: a bug fails, never hangs.
    holder = os.open(pipe, os.O_RDWR | os.O_NONBLOCK)
    try:
        ran = run_cli(["run", str(pipe), "-o", str(tmp_path / "out.jsonl"), *_options(sim)])
        assert ran.exit_code == 65, ran.output
        assert "items.parquet" in ran.stderr and "not a regular file" in ran.stderr
        checked = run_cli(["verify", str(pipe), "-r", write_jsonl(tmp_path / "r.jsonl", [])])
        assert checked.exit_code == 65, checked.output
    finally:
        os.close(holder)


def test_a_pretty_printed_json_array_is_read_element_by_element(
    sim: BackgroundSimulator, tmp_path: Path
) -> None:
    elements: list[object] = [
        {"id": f"r-{n}", "text": f"review {n}", "score": n / 2} for n in range(9)
    ]
    elements[4] = ["not", "an", "object"]
    source = tmp_path / "in.json"
    source.write_bytes(orjson.dumps(elements, option=orjson.OPT_INDENT_2))
    out, bad = str(tmp_path / "out.jsonl"), str(tmp_path / "out.quarantine.jsonl")
    ran = run_cli(["run", str(source), "-o", out, *_options(sim)])
    assert ran.exit_code == 1, ran.output  # the element that is no object is quarantined
    results = read_jsonl(out)
    assert [row["id"] for row in results] == [f"r-{n}" for n in range(9) if n != 4]
    assert results[1]["score"] == 0.5 and isinstance(results[2]["score"], float)
    (quarantined,) = read_jsonl(bad)
    assert quarantined["source"] == {"file": str(source), "line": 5}  # its index, from 1
    assert quarantined["item"] == '["not","an","object"]'
    checked = run_cli(["verify", str(source), "-r", out, "--quarantine", bad])
    assert checked.exit_code == 0, checked.output
    assert "9 input items" in checked.stdout


def test_a_json_array_cut_mid_element_is_exit_65_with_where(
    sim: BackgroundSimulator, tmp_path: Path
) -> None:
    source = tmp_path / "in.json"
    source.write_bytes(b'[\n  {"id": "a", "text": "x"},\n  {"id": "b", "text": \n')
    ran = run_cli(["run", str(source), "-o", str(tmp_path / "out.jsonl"), *_options(sim)])
    assert ran.exit_code == 65, ran.output
    (line,) = ran.stderr.strip().splitlines()
    assert "in.json" in line and "after element 1" in line
