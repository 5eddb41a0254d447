"""Start-up stays light: `import cli.app` (what every `sluice ...` does first) and
`sluice --version` import typer, the option declarations and small pipeline.core
pieces, never the engine's heavy libraries; each command imports those when it runs,
and only those its work needs (pyarrow for a Parquet file, rich for a terminal's bar).

A budget of modules, not of seconds: counts do not depend on the machine's load."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.simulator.answers import chat_content
from pipeline.simulator.background import BackgroundSimulator

ROOT = Path(__file__).resolve().parents[2]

# Top-level packages only the commands that use them may import, when they run.
HEAVY = frozenset(
    {
        "pyarrow",
        "rich",
        "jinja2",
        "diskcache",
        "aiohttp",
        "jsonschema",
        "prometheus_client",
        "opentelemetry",
        "ijson",
        "ray",
    }
)
# Modules `import cli.app` adds to a bare interpreter's: 126 when this was written
# (676 before the commands imported the engine lazily), with ~20% headroom.
CLI_APP_MODULE_BUDGET = 150
# Dataclasses among the modules a run imports before its first item: 26 when this was
# written (63 before the values made once became NamedTuples), with ~20% headroom.
RUN_DATACLASS_BUDGET = 32
# What `sluice run` imports before its first item.
RUN_MODULES = "cli.app, cli.run, cli.run_config, cli.run_options, cli.after_run, pipeline.run.root"
# A run's own imports reported on stderr, with no key to send.
RUN_ENV = {"PYTHONPROFILEIMPORTTIME": "1", "OPENAI_API_KEY": ""}


def imported_modules(args: list[str], env: Mapping[str, str] | None = None) -> list[str]:
    """The modules a Python process imports, read from its -X importtime report
    ("import time: self [us] | cumulative | imported package", one line a module)."""
    result = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    names = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line.split("|")
        if len(fields) == 3 and fields[2].strip() != "imported package":
            names.append(fields[2].strip())
    assert names, "no -X importtime report on stderr"
    return names


def heavy_among(names: list[str]) -> set[str]:
    return {name.split(".")[0] for name in names} & HEAVY


def test_importing_the_cli_leaves_the_heavy_libraries_alone() -> None:
    names = imported_modules(["-X", "importtime", "-c", "import cli.app"])
    assert "cli.app" in names
    assert heavy_among(names) == set()


def test_importing_the_cli_stays_within_its_module_budget() -> None:
    bare = set(imported_modules(["-X", "importtime", "-c", "pass"]))
    added = set(imported_modules(["-X", "importtime", "-c", "import cli.app"])) - bare
    assert len(added) <= CLI_APP_MODULE_BUDGET, sorted(added)


def test_a_run_starts_within_its_dataclass_budget() -> None:
    """Python 3.11 compiles each method a dataclass generates on its own (six for a frozen
    one), ~0.5 ms a class at every start: values that never change once made are
    NamedTuples (one compiled method), and only what is mutable, or needs field
    factories, is a dataclass."""
    count = (
        f"import {RUN_MODULES}; import dataclasses, sys; "
        "print(sum(1 for module in list(sys.modules.values()) "
        "if module.__name__.split('.')[0] in ('cli', 'pipeline') "
        "for value in vars(module).values() if isinstance(value, type) "
        "and dataclasses.is_dataclass(value) and value.__module__ == module.__name__))"
    )
    result = subprocess.run(
        [sys.executable, "-c", count], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert 0 < int(result.stdout) <= RUN_DATACLASS_BUDGET


def test_version_is_answered_before_the_command_tree_is_imported() -> None:
    names = imported_modules(["-m", "cli", "--version"], env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert "cli.entry" in names
    assert "typer" not in names and "cli.app" not in names  # cli/entry.py answers it


def test_version_with_verbose_imports_no_heavy_library() -> None:
    names = imported_modules(
        ["-m", "cli", "--version", "--verbose"], env={"PYTHONPROFILEIMPORTTIME": "1"}
    )
    assert "cli.app" in names
    assert heavy_among(names) == set()
    # --version is answered while the flags are parsed (cli/app.py), before typer
    # converts any option value.
    assert "pydantic" not in names


def test_a_run_without_a_schema_leaves_the_schema_validator_alone(
    sim: BackgroundSimulator, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id": 1, "text": "a"}\n')
    run = _run_args(sim, source, tmp_path / "out.jsonl", "--no-cache", "--no-state", "-q")
    names = imported_modules(run, env=RUN_ENV)
    assert "pipeline.run.root" in names
    assert "jsonschema" not in names  # only a --schema (or a workflow's) needs it
    # Plain option values are converted without pydantic (cli/quick_options.py).
    assert "pydantic" not in names
    # A template of text and fields alone is rendered without Jinja (prepare/templates.py).
    assert "jinja2" not in names
    # Workflows and spans are built by the runs that have them (run/assembly.py, telemetry.py).
    assert not [name for name in names if name.startswith("pipeline.workflow.")]
    assert "pipeline.observe.trace" not in names
    assert "pipeline.observe.spans" not in names
    # So are --where's parser and, unless an OTEL_ variable may name a collector, OTLP's.
    assert "pipeline.prepare.where" not in names
    if not any(name.startswith("OTEL_") for name in os.environ):
        assert "pipeline.observe.otel" not in names


def test_a_run_answered_from_the_cache_imports_neither_the_http_client_nor_diskcache(
    sim: BackgroundSimulator, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id": 1, "text": "a"}\n{"id": 2, "text": "b"}\n')
    output = tmp_path / "out.jsonl"
    run = _run_args(sim, source, output, "--cache-dir", str(tmp_path / "cache"), "-q")
    first = {name.split(".")[0] for name in imported_modules(run, env=RUN_ENV)}
    assert {"aiohttp", "diskcache"} <= first  # it sent, and made the cache
    again = imported_modules([*run, "--fresh"], env=RUN_ENV)
    # The cache's table is read without diskcache once the cache holds its settings.
    assert {"aiohttp", "diskcache"}.isdisjoint({name.split(".")[0] for name in again})
    rows = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    assert [row["cached"] for row in rows] == [True, True]


def _run_args(sim: BackgroundSimulator, source: Path, output: Path, *extra: str) -> list[str]:
    return [
        "-m", "cli", "run", str(source), "-o", str(output), "-m", "sim-chat",
        "-p", "Review: {{ text }}", "--base-url", sim.base_url, *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("display", [["-q"], []], ids=["quiet", "lines"])
def test_a_jsonl_run_leaves_pyarrow_and_rich_alone(
    sim: BackgroundSimulator, tmp_path: Path, display: list[str]
) -> None:
    """Arrow is for Parquet files, rich for the bar on a terminal: a JSONL run, quiet or
    printing lines (stderr is a pipe here), checkpointed in its default state directory
    and answered through the response cache, needs neither (nor ijson, for JSON arrays)."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id": 1, "text": "great"}\n')
    output = tmp_path / "out.jsonl"
    run = _run_args(sim, source, output, *display)
    names = imported_modules(run, env=RUN_ENV)
    assert {"pyarrow", "rich", "ijson"}.isdisjoint(heavy_among(names))
    rows = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    assert [(row["id"], row["output"]) for row in rows] == [(1, _answer("great"))]


def test_a_parquet_run_imports_pyarrow_when_it_reads_and_writes(
    sim: BackgroundSimulator, tmp_path: Path
) -> None:
    source = tmp_path / "in.parquet"
    pq.write_table(
        pa.table({"id": [1, 2], "text": ["great", "awful"], "score": [0.5, 0.25]}), source
    )
    output = tmp_path / "out.parquet"
    run = _run_args(sim, source, output, "-q")
    names = imported_modules(run, env=RUN_ENV)
    assert "pyarrow" in heavy_among(names)
    assert "rich" not in heavy_among(names)
    table = pq.read_table(output)
    assert table.schema.names == ["id", "text", "score", "output", "usage", "cached"]
    assert table.column("output").to_pylist() == [_answer("great"), _answer("awful")]


def _answer(text: str) -> str:
    return chat_content([{"role": "user", "content": f"Review: {text}"}])


# Runs a command line as the console script does, then tells, as the process ends, how
# the garbage collector was set while the run's work was going on.
GC_PROBE = """
import atexit, gc, sys
import pipeline.run.root as root

seen = {}
real_run = root.run

async def run(*args, **kwargs):
    seen["threshold"], seen["frozen"] = gc.get_threshold(), gc.get_freeze_count()
    return await real_run(*args, **kwargs)

root.run = run
atexit.register(lambda: print("gc", seen["threshold"][0], seen["frozen"] > 0, file=sys.stderr))
threshold = gc.get_threshold()[0]
sys.argv = ["sluice", *sys.argv[1:]]
import cli.entry
print("before", threshold, file=sys.stderr)
cli.entry.main()
"""


def test_the_collector_waits_through_start_up_and_collects_as_usual_once_a_run_works(
    sim: BackgroundSimulator, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id": 1, "text": "a"}\n')
    run = _run_args(sim, source, tmp_path / "out.jsonl", "--no-cache", "-q")[2:]
    result = subprocess.run(
        [sys.executable, "-c", GC_PROBE, *run],
        capture_output=True, text=True, cwd=ROOT, stdin=subprocess.DEVNULL, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stderr.split()
    usual = lines[lines.index("before") + 1]
    # The start-up objects are frozen, and the usual threshold is back, before the work.
    assert lines[lines.index("gc") + 1 :][:2] == [usual, "True"]
