"""The README's exit-code table is the contract: every code it lists is one sluice uses,
every code sluice uses is listed, and the everyday mistakes land on the row it says."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core import errors
from pipeline.run.interrupts import SIGNAL_EXIT_CODES
from pipeline.run.result import EXIT_ERROR_RATE, EXIT_OK
from tests.conftest import run_cli, write_jsonl

README = Path(__file__).resolve().parents[2] / "README.md"


def _table() -> dict[int, str]:
    text = README.read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {
        int(code): meaning for code, meaning in re.findall(r"^\| (\d+) \| (.+) \|$", section, re.M)
    }


def _codes_in_the_code() -> set[int]:
    raised = {
        cls.exit_code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.SluiceError)
    }
    return raised | {EXIT_OK, EXIT_ERROR_RATE} | set(SIGNAL_EXIT_CODES.values())


def test_the_table_lists_exactly_the_codes_sluice_exits_with() -> None:
    assert set(_table()) == _codes_in_the_code()


def _run(args: list[str], tmp_path: Path) -> tuple[int, str]:
    result = run_cli(args)
    assert "Traceback" not in result.output + result.stderr
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("case", "args", "code"),
    [
        ("no --model", ["run", "in.jsonl", "-o", "o.jsonl", "-p", "{{ t }}"], 2),
        ("unknown flag", ["run", "in.jsonl", "-o", "o.jsonl", "--no-such-flag"], 2),
        ("no --output", ["run", "in.jsonl"], 2),
        ("output is the input", ["run", "in.jsonl", "-o", "./in.jsonl", "-m", "m"], 2),
        ("unknown format", ["run", "in.csv", "-o", "o.jsonl", "-m", "m"], 2),
        ("missing input", ["run", "gone.jsonl", "-o", "o.jsonl", "-m", "m"], 66),
        (
            "missing --prompt-file",
            ["run", "in.jsonl", "-o", "o.jsonl", "-m", "m", "--prompt-file", "gone.j2"],
            66,
        ),
        ("input is a directory", ["run", "adir.jsonl", "-o", "o.jsonl", "-m", "m"], 66),
        ("unreadable Parquet", ["run", "bad.parquet", "-o", "o.jsonl", "-m", "m"], 65),
        ("missing output directory", ["run", "in.jsonl", "-o", "no/o.jsonl", "-m", "m"], 73),
        (
            "bad base URL",
            ["run", "in.jsonl", "-o", "o.jsonl", "-m", "m", "--base-url", "ftp://x"],
            78,
        ),
        ("bad template", ["run", "in.jsonl", "-o", "o.jsonl", "-m", "m", "-p", "{{ x"], 78),
    ],
)
def test_everyday_mistakes_exit_with_the_code_the_table_gives(
    sim, tmp_path: Path, case: str, args: list[str], code: int
) -> None:
    write_jsonl(tmp_path / "in.jsonl", [{"t": "a"}])
    (tmp_path / "adir.jsonl").mkdir()
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    base = [] if "--base-url" in args else ["--base-url", sim.base_url]
    exit_code, stderr = _run([*args, *base], tmp_path)
    assert exit_code == code, f"{case}: {stderr}"
    assert code in _table()
    if case not in ("unknown flag", "no --output"):  # the parser's own usage message
        assert len(stderr.strip().splitlines()) == 1, stderr


def test_sluice_alone_prints_the_help_and_exits_0() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli"], capture_output=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0
    assert b"Usage: " in result.stdout and b"run" in result.stdout


def test_version_with_v_names_the_install_location() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "--version", "-v"], capture_output=True, timeout=60
    )
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("sluice ")
    location = Path(lines[1].removeprefix("installed in "))
    assert (location / "pipeline" / "__init__.py").is_file()
    assert (location / "cli" / "app.py").is_file()


def test_interrupt_codes_match_the_signals() -> None:
    assert SIGNAL_EXIT_CODES == {signal.SIGINT: 130, signal.SIGTERM: 143}
